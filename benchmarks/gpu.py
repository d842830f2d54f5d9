"""One short accelerator check on the synthetic set: extraction, training and decoding speed, device named.

    .venv/bin/python benchmarks/gpu.py [--images 2000] [--batch-size 64] [--train-steps 0] [--json]
    .venv/bin/python benchmarks/gpu.py --images 64 --train-steps 5        # a quick CPU check

In a throw-away artifacts folder:
1. VGG16 feature extraction of the synthetic images (`ensure_features`): images/s in float32 and in
   mixed precision (float16 on a GPU, bfloat16 on a CPU), model build excluded (the store's own figure;
   it includes the first batch's tracing, which dominates with only a few batches: use >= 1,000 images).
2. training (`python -m medcap train --preset model-80 --epochs 1` on the float32 store) at batch 64 and
   128: pairs/s from the run's live step counter (status.json write times, first step excluded);
   `--train-steps K` stops the batch-64 run after K timed steps; the batch-128 run always finishes its
   epoch, because decoding needs a trained run.
3. batched greedy and beam-3 decoding of every image with that run: images/s.
Prints a markdown table naming the device (TensorFlow's GPU name, nvidia-smi, or the CPU model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.features import cpu_model  # noqa: E402
from benchmarks.scale import TrainWatch, _env, run_measured  # noqa: E402

log = logging.getLogger("benchmarks.gpu")


def device_name() -> str:
    """The accelerator's name: TensorFlow's device details, else nvidia-smi, else the CPU model."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
            except (ValueError, RuntimeError):
                names.append(gpu.name)
        return ", ".join(names)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False).stdout.strip()
        if out:
            return f"{out} (nvidia-smi; TensorFlow sees no GPU)"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


def extract(spec: str, batch_size: int, precision: str) -> tuple[float | None, str]:
    """images/s of one VGG16 extraction (a new store: the precision is part of the fingerprint)."""
    from medcap.data import load_records
    from medcap.features import ensure_features

    store = ensure_features(load_records(spec), backbone="vgg16", batch_size=batch_size, precision=precision,
                            progress=False)
    return store.meta["extraction"].get("images_per_s"), str(store.path)


def train(folder: Path, spec: str, store: str, batch: int, cap: int) -> tuple[dict[str, Any], Path | None]:
    """One training process at `batch`; pairs/s and its run folder when it finished."""
    artifacts = Path(os.environ["MEDCAP_ARTIFACTS"])
    watch = TrainWatch(artifacts / "runs", cap)
    cmd = [sys.executable, "-m", "medcap", "train", "--preset", "model-80", "--dataset", spec, "--feature-store",
           store, "--epochs", "1", "--batch-size", str(batch), "--name", f"gpu-b{batch}"]
    res = run_measured(cmd, _env(artifacts), folder, f"train-b{batch}", monitor=watch)
    pairs_s, timed = watch.rate(batch)
    out = {"batch": batch, "pairs_per_s": pairs_s, "timed_s": timed, "rc": res["rc"],
           "timed_steps": (watch.points[-1][1] - watch.points[0][1]) if len(watch.points) > 1 else 0}
    if pairs_s is None:
        out["note"] = "fewer than 2 step reports (epoch too short to time: use more --images)"
    if res["rc"] not in (0, 143):
        out["error"] = res["stderr_tail"][-1500:]
    return out, (watch.run_dir if res["rc"] == 0 and not watch.stopped else None)


def decode_worker(run: Path) -> dict[str, Any]:
    """Greedy and beam-3 decoding of every image of the run's dataset (batched): images/s."""
    from medcap.eval.evaluate import decode_captions, prepare

    prep = prepare(run, None, "all")
    ev = prep.evalset
    decode_captions(prep.loaded, prep.evalset, beam_size=1)  # warm-up: tracing
    out: dict[str, Any] = {"n_images": len(ev)}
    for label, beam in (("greedy", 1), ("beam3", 3)):
        t = time.perf_counter()
        decode_captions(prep.loaded, ev, beam_size=beam)
        out[f"{label}_img_s"] = len(ev) / (time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="synthetic images (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64, help="extraction batch size")
    parser.add_argument("--train-steps", type=int, default=0, help="timed steps of the batch-64 run (0: full epoch)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--worker", choices=["decode"], help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.worker == "decode":
        print(json.dumps(decode_worker(args.run)))
        return 0

    spec = f"synthetic:{args.images}"
    with tempfile.TemporaryDirectory(prefix="medcap-gpu-") as tmp:
        folder = Path(tmp)
        os.environ["MEDCAP_ARTIFACTS"] = str(folder / "artifacts")
        device = device_name()
        mixed = "float16" if "CPU:" not in device else "bfloat16"
        figures: dict[str, Any] = {"device": device, "images": args.images, "mixed": mixed}
        figures["extract_float32_img_s"], store = extract(spec, args.batch_size, "float32")
        figures[f"extract_{mixed}_img_s"], _ = extract(spec, args.batch_size, mixed)
        run = None
        for batch in (64, 128):
            result, finished = train(folder, spec, store, batch, args.train_steps if batch == 64 else 0)
            figures[f"train_b{batch}"] = result
            run = finished or run
        if run is not None:
            res = run_measured([sys.executable, __file__, "--worker", "decode", "--run", str(run)],
                               _env(folder / "artifacts"), folder, "decode")
            if res["rc"] == 0:
                figures["decode"] = json.loads(res["stdout"].strip().splitlines()[-1])
            else:
                figures["decode_error"] = res["stderr_tail"][-1500:]

    dec = figures.get("decode") or {}

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.1f}"

    print(f"device: {device}; synthetic:{args.images}")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| feature extraction float32 (img/s, batch {args.batch_size}) | {f(figures['extract_float32_img_s'])} |")
    print(f"| feature extraction mixed {mixed} (img/s) | {f(figures[f'extract_{mixed}_img_s'])} |")
    for batch in (64, 128):
        tr = figures[f"train_b{batch}"]
        print(f"| training Model-80 batch {batch} (pairs/s, {tr['timed_steps']} timed steps) | "
              f"{f(tr['pairs_per_s'])} |")
    print(f"| greedy decoding, batched (img/s, {dec.get('n_images', '-')} images) | {f(dec.get('greedy_img_s'))} |")
    print(f"| beam-3 decoding, batched (img/s) | {f(dec.get('beam3_img_s'))} |")
    for key in ("decode_error",):
        if figures.get(key):
            print(f"{key}: {figures[key]}")
    for batch in (64, 128):
        tr = figures[f"train_b{batch}"]
        for key in ("note", "error"):
            if tr.get(key):
                print(f"train batch {batch} {key}: {tr[key]}")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
