"""Benchmark: batched greedy decoding vs a per-image decoding loop (same model, same compiled pass).

    python benchmarks/decode.py [--images 1000] [--loop-images 50] [--vocab 1000]

The model has the default RunConfig size (untrained, random features), so captions never hit <end>
early: every image gets exactly `--words` words in both variants (`stop_at_end=False`), and the
per-image loop is timed on `--loop-images` images and reported per image. Goal: ratio >= 20x.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from types import SimpleNamespace

import numpy as np

log = logging.getLogger("benchmarks.decode")


def naive_greedy(model: object, g: np.ndarray, grid: np.ndarray, words: int) -> list[int]:
    """The textbook loop: one `model.predict` per word for one image (no <end> stop, like the others)."""
    prefix = [2]
    x = {"global": g[None].astype(np.float32), "grid": grid.reshape(1, 49, 512).astype(np.float32)}
    out: list[int] = []
    for _ in range(words):
        probs = model.predict({**x, "prefix": np.array([prefix], dtype=np.int32)}, verbose=0)["probs"][0]  # (V,)
        probs[[0, 1, 2, 3]] = -1.0
        out.append(int(probs.argmax()))
        prefix.append(out[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--loop-images", type=int, default=50)
    parser.add_argument("--naive-images", type=int, default=10, help="images for the model.predict-per-word loop")
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--global-dim", type=int, default=4096)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

    import keras

    from medcap.config import RunConfig
    from medcap.model import DecodeOptions, build_model, greedy_search

    keras.utils.set_random_seed(0)
    cfg = RunConfig()
    model = build_model(cfg, args.vocab, args.global_dim)
    words = ["<pad>", "<unk>", "<start>", "<end>"] + [f"w{i}" for i in range(args.vocab - 4)]
    vocab = SimpleNamespace(words=words, pad_id=0, unk_id=1, start_id=2, end_id=3)
    rng = np.random.default_rng(0)
    g = rng.random((args.images, args.global_dim), dtype=np.float32).astype(np.float16)  # (N, D) store dtype
    grid = rng.random((args.images, 7, 7, 512), dtype=np.float32).astype(np.float16)  # (N, 7, 7, 512)

    greedy_search(model, g[:2], grid[:2], vocab, DecodeOptions(max_words=2), batch_size=2)  # trace the pass once
    t0 = time.perf_counter()
    options = DecodeOptions(max_words=args.words)
    batched = greedy_search(model, g, grid, vocab, options, batch_size=args.batch_size, stop_at_end=False)
    t_batched = time.perf_counter() - t0
    n_loop = min(args.loop_images, args.images)
    t0 = time.perf_counter()
    loop = [
        greedy_search(model, g[i : i + 1], grid[i : i + 1], vocab, options, batch_size=1, stop_at_end=False)[0]
        for i in range(n_loop)
    ]
    t_loop = time.perf_counter() - t0
    n_naive = min(args.naive_images, args.images)
    naive_greedy(model, g[0], grid[0], args.words)  # warm-up: Keras traces its predict function per shape
    t0 = time.perf_counter()
    naive = [naive_greedy(model, g[i], grid[i], args.words) for i in range(n_naive)]
    t_naive = time.perf_counter() - t0
    same_naive = sum(a.token_ids == b for a, b in zip(batched, naive, strict=False))
    same = sum(a.token_ids == b.token_ids for a, b in zip(batched, loop, strict=False))
    batched_ips = args.images / t_batched
    loop_ips = n_loop / t_loop
    print(
        f"model: default RunConfig (embed/lstm/dense/attn 256, 1 BiLSTM layer), vocab {args.vocab}, "
        f"D {args.global_dim}, {args.words} words per caption"
    )
    print(f"{'variant':<28}{'images':>8}{'seconds':>10}{'images/s':>11}")
    print(
        f"{'batched greedy (b=' + str(args.batch_size) + ')':<28}{args.images:>8}{t_batched:>10.2f}{batched_ips:>11.2f}"
    )
    print(f"{'per-image loop':<28}{n_loop:>8}{t_loop:>10.2f}{loop_ips:>11.2f}")
    naive_ips = n_naive / t_naive if n_naive else float("nan")
    print(f"{'per-image model.predict':<28}{n_naive:>8}{t_naive:>10.2f}{naive_ips:>11.2f}")
    print(
        f"speed-up vs per-image loop (same compiled pass): {batched_ips / loop_ips:.1f}x (goal >= 20x); "
        f"identical captions {same}/{n_loop}"
    )
    print(
        f"speed-up vs per-image model.predict loop: {batched_ips / naive_ips:.1f}x; "
        f"identical captions {same_naive}/{n_naive}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
