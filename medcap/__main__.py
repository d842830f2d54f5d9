"""`python -m medcap ...` entry point."""

from medcap.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
