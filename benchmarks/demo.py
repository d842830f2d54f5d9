"""Benchmark: the whole demo from nothing (synthetic set -> features -> two runs -> evaluations), per stage.

    python benchmarks/demo.py [--images 200] [--epochs 8] [--sequential] [--keep DIR] [--json]

Runs `python -m medcap demo` with the given settings (default: the demo's own) in a fresh, empty
artifacts folder, as a user's first click does; the converted VGG16 weights in the user cache are
reused (they are converted once per machine, by `scripts/setup.sh`'s first feature run or this).
Prints the wall-clock total and each stage's seconds from the demo's status (`timings`): with the
runs side by side (the default) the train/evaluate stages of the two presets overlap, so they do not
add up to the total. Also prints the first model caption of each run, to show they are not degenerate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from medcap.experiments.demo import DemoOptions
    from medcap.runs.folder import RunDir

    d = DemoOptions()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=d.n_images)
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--sequential", action="store_true", help="the two runs one after the other")
    ap.add_argument("--keep", type=Path, help="artifacts folder to use and keep (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="medcap-demo-bench-") as tmp:
        root = (args.keep or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MEDCAP_ARTIFACTS": str(root), "MEDCAP_EXAMPLES": "off",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        cmd = [sys.executable, "-m", "medcap", "demo", "--images", str(args.images), "--epochs", str(args.epochs),
               "--json", *(["--sequential"] if args.sequential else [])]
        start = time.monotonic()
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        total = time.monotonic() - start
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            print(f"demo failed (exit {done.returncode})")
            return 1
        status = json.loads(done.stdout)
        captions = {}
        for preset, run_id in (status.get("runs") or {}).items():
            evals = [e.predictions for e in RunDir(root / "runs" / run_id).evals()]
            if evals:
                import pandas as pd

                df = pd.read_csv(evals[0], keep_default_na=False)
                captions[preset] = {"first_caption": df["prediction"].iloc[0],
                                    "distinct_captions": int(df["prediction"].nunique()), "images": len(df)}
        result = {"total_s": round(total, 1), "timings_s": status.get("timings", {}), "cpus": os.cpu_count(),
                  "options": status.get("options", {}), "captions": captions}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    mode = "one after the other" if args.sequential else "side by side"
    print(f"demo ({args.images} images, {args.epochs} epochs max, runs {mode}, {os.cpu_count()} CPUs): "
          f"{result['total_s']} s in all")
    for stage, seconds in result["timings_s"].items():
        print(f"  {stage:<20} {seconds:>7.1f} s")
    for preset, info in captions.items():
        print(f"  {preset}: {info['distinct_captions']} distinct captions over {info['images']} test images; "
              f"first: {info['first_caption']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
