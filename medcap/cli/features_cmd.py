"""`python -m medcap features`: extract (or reuse) a dataset's CNN feature store and print a summary.

Beyond one machine: `--shard I/N` (or `--shard tf-config`: the worker's index in `TF_CONFIG`) extracts
one disjoint part into its own store; `--merge STORE...` joins the N parts into the unsharded store.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from medcap import config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `features` command."""
    p = subparsers.add_parser(
        "features",
        help="extract CNN features of a dataset into a cached store (resumable, reused when unchanged)",
        description="Extract global + 7x7 grid CNN features of every readable image of a dataset.",
    )
    p.add_argument("--dataset", metavar="SPEC", help="dataset spec, e.g. medpix:PATH or synthetic:2000 "
                   "(required unless --merge)")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="also read image paths that resolve outside the dataset's folder (refused by default)")
    p.add_argument("--backbone", default=config.default("backbone"),
                   help=f"{', '.join(config.BACKBONE_CHOICES)}: {config.field_help('backbone')} "
                        f"(default {config.default('backbone')})")
    p.add_argument("--batch-size", type=int, default=32, help="images per backbone call (default 32)")
    p.add_argument("--augment", type=int, default=0, metavar="K", help="also store K augmented views per image")
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="backbone arithmetic: float32 (default); bfloat16 is ~2-3x faster on CPUs with "
                        "AVX512-BF16/AMX (features differ by ~1%%); float16 for GPUs")
    p.add_argument("--shard", metavar="I/N",
                   help="extract only shard I of N (0 <= I < N; contiguous blocks of the sorted image ids) into "
                        "its own store; 'tf-config' takes I and N from the TF_CONFIG worker index")
    p.add_argument("--merge", nargs="+", type=Path, metavar="STORE",
                   help="merge the N shard stores of one extraction into the unsharded store (no --dataset)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="with --merge: write the merged store here (default: where an unsharded extraction "
                        "would put it, so training and evaluation reuse it)")
    p.add_argument("--export", type=Path, metavar="FILE.npz", help="also write ids, grid and global to one .npz")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def summary(store, seconds: float) -> dict:  # store: FeatureStore
    """The printed summary of a store."""
    meta = store.meta
    extraction = meta.get("extraction", {})
    return {
        "store": str(store.path),
        "reused": bool(store.reused),
        "dataset": meta.get("dataset", {}).get("spec"),
        "count": len(store.ids),
        "candidates": meta.get("n_candidates"),
        "skipped": len(store.skipped),
        "skipped_images": store.skipped,
        "loader_skipped": meta.get("dataset", {}).get("loader_skipped", {}),
        "backbone": meta.get("backbone"),
        "weights_source": meta.get("weights_source"),
        "weights_sha256": meta.get("weights_sha256"),
        "global_dim": store.global_dim,
        "global_from": meta.get("global_from"),
        "precision": meta.get("precision", "float32"),
        "grid_shape": meta.get("grid_shape"),
        "augment": meta.get("augment", {}).get("k", 0),
        "images_per_s": extraction.get("images_per_s"),
        "extraction_seconds": extraction.get("seconds"),
        "device": extraction.get("device"),
        "seconds_this_run": round(seconds, 2),
        "shard": meta.get("shard"),
        "shards": len(meta.get("shards", [])),
    }


def export_npz(store, path: Path) -> None:  # store: FeatureStore
    """Write ids (N,), grid (N, 7, 7, C) and global (N, D) float16 to one .npz (atomic)."""
    import numpy as np

    from medcap.base import io

    arrays = {"ids": np.array(store.ids), "grid": np.asarray(store.grid()), "global": np.asarray(store.global_feats())}
    if store.augment_k:
        arrays["aug_global"] = np.asarray(store.aug_global())
        arrays["aug_grid"] = np.asarray(store.aug_grid())
    io.save_npz(path, **arrays)


def _text(info: dict) -> str:
    lines = [
        f"store:          {info['store']}",
        f"reused:         {'yes' if info['reused'] else 'no'}",
        f"images:         {info['count']} of {info['candidates']} ({info['skipped']} skipped)",
        f"backbone:       {info['backbone']} ({info['weights_source']})",
        f"global dim:     {info['global_dim']} ({info['global_from']}, {info['precision']})",
        f"grid:           {' x '.join(str(d) for d in info['grid_shape'])}",
        f"augment views:  {info['augment']}",
        f"images/s:       {info['images_per_s']} on {info['device']}"
        + (" (from the original extraction)" if info["reused"] else ""),
        f"time:           {info['seconds_this_run']} s",
    ]
    if info.get("shard"):
        sh = info["shard"]
        lines.append(f"shard:          {sh['index']}/{sh['count']} (rows {sh['rows'][0]}-{sh['rows'][1] - 1} of "
                     f"{sh['n_candidates_total']})")
    if info.get("shards"):
        lines.append(f"merged from:    {info['shards']} shards")
    lines += [f"skipped:        {s['image_id']}: {s['reason']}" for s in info["skipped_images"][:20]]
    if info["loader_skipped"]:
        counts = ", ".join(f"{why} {n}" for why, n in sorted(info["loader_skipped"].items()))
        lines.append(f"loader skipped: {counts} (records without a usable image)")
    if "export" in info:
        lines.append(f"exported:       {info['export']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Handler: load the dataset, ensure its features (or merge shards), print the summary (and export)."""
    from medcap.features.shard import parse_shard

    t0 = time.perf_counter()
    if args.merge:
        if args.dataset or args.shard:
            raise ValueError("--merge takes shard store folders only (no --dataset or --shard)")
        from medcap.features import merge_stores

        store = merge_stores(args.merge, out=args.out)
    else:
        if not args.dataset:
            raise ValueError("--dataset is required (or --merge STORE...)")
        if args.out:
            raise ValueError("--out goes with --merge")
        shard = parse_shard(args.shard) if args.shard else None
        from medcap.data import load_records
        from medcap.features import ensure_features

        result = load_records(args.dataset, allow_outside_root=args.allow_outside_root)
        store = ensure_features(result, backbone=args.backbone, batch_size=args.batch_size, augment=args.augment,
                                precision=args.precision, progress=not args.no_progress, shard=shard)
    info = summary(store, time.perf_counter() - t0)
    if args.export:
        export_npz(store, args.export)
        info["export"] = str(args.export)
        info["seconds_this_run"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(info, indent=2) if args.json else _text(info))
    return 0
