"""Benchmark: lazy pairs pipeline vs materialised arrays (every pair with its own grid copy).

    python benchmarks/train.py [--pairs 4000,16000] [--steps 40] [--images 300]

Same random feature store (float16 memmap, N images) and captions for both variants; each
(variant, pair count) runs in its own subprocess so its peak RSS (ru_maxrss) is its own. Throughput
is pairs/s over `--steps` training steps after a warm-up step (tracing and data setup excluded), default model size.
Goals: lazy >= 0.9x the materialised pairs/s; lazy peak RSS flat in the number of pairs.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("benchmarks.train")
VOCAB, DIM = 1000, 4096


def make_data(folder: Path, n_images: int, n_pairs: int) -> tuple[np.memmap, np.memmap, np.ndarray, list[list[int]]]:
    """A float16 memmap store and captions (5..20 words) giving exactly n_pairs pairs."""
    from medcap.base.io import atomic_path

    rng = np.random.default_rng(0)
    arrays = []
    for name, shape in (("global", (n_images, DIM)), ("grid", (n_images, 7, 7, 512))):
        path = folder / f"{name}.f16"
        if not path.exists():
            with atomic_path(path) as tmp:
                mm = np.memmap(tmp, dtype=np.float16, mode="w+", shape=shape)
                for lo in range(0, n_images, 64):
                    mm[lo : lo + 64] = rng.random((min(64, n_images - lo), *shape[1:]), dtype=np.float32)
                mm.flush()
                del mm
        arrays.append(np.memmap(path, dtype=np.float16, mode="r", shape=shape))
    captions: list[list[int]] = []
    total = 0
    while total < n_pairs:
        n = int(min(rng.integers(5, 21), n_pairs - total - 1))
        captions.append(rng.integers(4, VOCAB, size=max(n, 0)).tolist())
        total += len(captions[-1]) + 1
    rows = rng.integers(0, n_images, size=len(captions))
    return arrays[0], arrays[1], rows, captions


def worker(variant: str, n_pairs: int, steps: int, n_images: int, folder: Path) -> dict:
    import keras

    from medcap.config import RunConfig
    from medcap.model import build_model, compile_model, make_pairs_dataset, pairs_for

    g, grid, rows, captions = make_data(folder, n_images, n_pairs)
    cfg = RunConfig()
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(cfg, VOCAB, DIM), cfg, jit_compile=False)
    bs = cfg.batch_size
    if variant == "lazy":
        data = make_pairs_dataset(g, grid, rows, captions, bs, seed=0, num_epochs=None)
        fit = {"x": data}
    else:  # every pair with its own float32 copy of its image's features
        cap, prefix, target = pairs_for(captions)
        r = rows[cap]  # (P,)
        x = {
            "global": np.asarray(g[r], dtype=np.float32),  # (P, D)
            "grid": np.asarray(grid[r], dtype=np.float32).reshape(len(r), 49, 512),  # (P, 49, 512)
            "prefix": prefix,  # (P, 21)
        }
        fit = {"x": x, "y": target, "batch_size": bs, "shuffle": True}
    model.fit(**fit, epochs=1, steps_per_epoch=1, verbose=0)  # warm-up: tracing
    clock = StepClock()
    model.fit(**fit, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[clock])
    seconds = clock.seconds
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "pairs": n_pairs, "pairs_per_s": steps * bs / seconds, "peak_rss_mb": rss_mb}


def _step_clock_class() -> type:
    import keras

    class _StepClock(keras.callbacks.Callback):
        """Seconds from the end of the first step to the end of the last (data-adapter setup excluded)."""

        def __init__(self) -> None:
            super().__init__()
            self.start = 0.0
            self.seconds = 0.0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            if batch == 0:
                self.start = now
            self.seconds = now - self.start

    return _StepClock


def StepClock() -> object:  # noqa: N802 - a factory that reads like the class it returns
    """A Keras callback timing the steps after the first (keras is imported lazily)."""
    return _step_clock_class()()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="4000,16000")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--worker", choices=["lazy", "materialised"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    if args.worker:
        sys.stdout.write(json.dumps(worker(args.worker, int(args.pairs), args.steps, args.images, args.folder)) + "\n")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="medcap-bench-") as tmp:
        make_data(Path(tmp), args.images, 10)  # write the store once, outside the timed workers
        for n in (int(p) for p in args.pairs.split(",")):
            for variant in ("materialised", "lazy"):
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    variant,
                    "--pairs",
                    str(n),
                    "--steps",
                    str(args.steps),
                    "--images",
                    str(args.images),
                    "--folder",
                    tmp,
                ]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
    print(f"store: {args.images} images, D {DIM}, float16 memmap; default model; batch 64; {args.steps} timed steps")
    print(f"{'pairs':>7} {'variant':<14}{'pairs/s':>9}{'peak RSS MB':>13}")
    for r in results:
        print(f"{r['pairs']:>7} {r['variant']:<14}{r['pairs_per_s']:>9.1f}{r['peak_rss_mb']:>13.0f}")
    for n in sorted({r["pairs"] for r in results}):
        lazy = next(r for r in results if r["pairs"] == n and r["variant"] == "lazy")
        mat = next(r for r in results if r["pairs"] == n and r["variant"] == "materialised")
        print(f"{n} pairs: lazy/materialised throughput {lazy['pairs_per_s'] / mat['pairs_per_s']:.2f}x (goal >= 0.9x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
