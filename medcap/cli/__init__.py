"""`python -m medcap <command>`: argparse subcommands, each defined in its own module here.

Each command module exposes `register(subparsers)`, which adds its parser(s) and sets
`func=handler` where `handler(args) -> int`. Command modules import heavy libraries
(TensorFlow) inside their handlers only, so `--help` is instant.
Results go to stdout (`--json` for machine-readable output); progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "medcap.cli.data_cmd",
    "medcap.cli.features_cmd",
    "medcap.cli.train_cmd",
    "medcap.cli.eval_cmd",
    "medcap.cli.demo_cmd",
    "medcap.cli.study_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medcap", description="Medical image captioning toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:
        logging.getLogger("medcap").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
