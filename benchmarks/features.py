"""Feature extraction speed: medcap pipeline vs the bare model vs a per-image predict loop.

Run: `.venv/bin/python benchmarks/features.py [--images 256] [--batch-size 32] [--dataset SPEC]`
On the same images, after one warm-up batch:
  (a) `ensure_features` end to end (read, decode, resize, batched inference, float16 store writes)
      into a throw-away artifacts folder;
  (b) the bare compiled model on batches decoded beforehand (this machine's limit);
  (c) a naive loop: per image decode + `preprocess_input` + `model.predict(x[None])`.
Prints images/s of each, the ratios (a)/(b) (goal >= 0.9) and (a)/(c) (goal >= 1.5), and the machine.
Default images: the first N of ../shared/data/medpix-dev when present, else the synthetic set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("benchmarks.features")


def cpu_model() -> str:
    """CPU model name (lscpu, else platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def default_dataset(n: int) -> str:
    """The MedPix sample beside the project when present, else a synthetic set."""
    medpix = PROJECT_ROOT.parent / "shared" / "data" / "medpix-dev"
    if (medpix / "Descriptions.json").is_file():
        return f"medpix:{medpix}"
    return f"synthetic:{max(n, 64)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dataset", default=None, help="dataset spec (default: medpix-dev if present, else synthetic)")
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="precision of (a) and (b); the naive loop (c) always runs plain float32")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    import tensorflow as tf

    from medcap.data import load_records
    from medcap.features import ensure_features, imageload
    from medcap.features.backbones import get_backbone

    spec = args.dataset or default_dataset(args.images)
    result = load_records(spec)
    table = result.table.sort_values("image_id").iloc[: args.images].reset_index(drop=True)
    result.table = table
    result.name = f"bench-{result.name}"
    n = len(table)
    paths = list(table["image_path"])
    bb = get_backbone(args.backbone, args.precision)
    size = bb.input_size
    fn = bb.feature_fn()
    warm = np.stack([imageload.load_array(p, size) for p in paths[: args.batch_size]])  # (B, S, S, 3)
    fn(warm)  # trace + warm-up, excluded from every timing

    # (a) medcap pipeline end to end, into a throw-away artifacts folder
    with tempfile.TemporaryDirectory(prefix="medcap-bench-") as tmp:
        os.environ["MEDCAP_ARTIFACTS"] = tmp
        t0 = time.perf_counter()
        store = ensure_features(result, backbone=bb, batch_size=args.batch_size, progress=False)
        a_s = time.perf_counter() - t0
        assert len(store.ids) + len(store.skipped) == n
    a = n / a_s
    log.info("(a) pipeline: %.2f img/s", a)

    # (b) bare compiled model on pre-decoded batches
    decoded = np.stack([imageload.load_array(p, size) for p in paths])  # (N, S, S, 3) uint8
    t0 = time.perf_counter()
    for i in range(0, n, args.batch_size):
        glob, grid = fn(decoded[i : i + args.batch_size])  # (B, D), (B, 7, 7, C)
        glob.numpy(), grid.numpy()
    b = n / (time.perf_counter() - t0)
    log.info("(b) bare model: %.2f img/s", b)

    # (c) naive per-image loop with Keras predict (same weights)
    import keras

    from medcap.features import vgg_weights

    if args.backbone != "vgg16" or bb.global_dim != 512:
        raise SystemExit("the per-image loop baseline is implemented for the converted VGG16 only")
    model = vgg_weights.build_notop_vgg16(size)
    model.predict(keras.applications.vgg16.preprocess_input(warm[:1].astype(np.float32)), verbose=0)
    t0 = time.perf_counter()
    for p in paths:
        x = imageload.load_array(p, size).astype(np.float32)[None]  # (1, S, S, 3)
        grid = model.predict(keras.applications.vgg16.preprocess_input(x), verbose=0)  # (1, 7, 7, 512)
        grid.mean(axis=(1, 2))  # (1, 512)
    c = n / (time.perf_counter() - t0)
    log.info("(c) per-image predict loop: %.2f img/s", c)

    figures = {
        "dataset": spec,
        "images": n,
        "batch_size": args.batch_size,
        "backbone": f"{bb.name} ({bb.weights_source}, global {bb.global_dim})",
        "precision_a_b": args.precision,
        "a_pipeline_img_s": round(a, 2),
        "b_bare_model_img_s": round(b, 2),
        "c_per_image_loop_img_s": round(c, 2),
        "ratio_a_over_b": round(a / b, 3),
        "ratio_a_over_c": round(a / c, 3),
        "goals": {"a_over_b": ">= 0.9", "a_over_c": ">= 1.5"},
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "tensorflow": tf.__version__,
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        m = figures["machine"]
        print(f"images: {n} from {spec}, batch {args.batch_size}, backbone {figures['backbone']}, "
              f"precision (a)/(b) {args.precision}, (c) float32")
        print(f"machine: {m['cpu']}, {m['cores']} cores, GPUs: {m['gpus'] or 'none'}, TF {m['tensorflow']}, "
              f"load avg at end {m['load_avg_1m_at_end']}")
        print(f"(a) medcap pipeline end to end: {a:8.2f} img/s")
        print(f"(b) bare model, pre-decoded:    {b:8.2f} img/s")
        print(f"(c) per-image predict loop:     {c:8.2f} img/s")
        print(f"(a)/(b) = {a / b:.3f} (goal >= 0.9)   (a)/(c) = {a / c:.3f} (goal >= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
