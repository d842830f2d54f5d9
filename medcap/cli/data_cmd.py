"""`python -m medcap data`: load a dataset and report records, drops, caption lengths, split and leakage."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from medcap import config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command."""
    p = subparsers.add_parser("data", help="load a dataset and summarize it (drops, lengths, split, leakage)",
                              description="Load a dataset (KIND[:PATH]) and print a summary of what was kept, "
                                          "dropped, split and leaked.")
    p.add_argument("--dataset", default="synthetic",
                   help="KIND[:PATH]; KIND in synthetic, medpix, roco, medicat, iuxray, csv (default: synthetic)")
    p.add_argument("--max-words", type=int, default=config.default("max_words"),
                   help=f"longest caption kept, in words (default {config.default('max_words')})")
    p.add_argument("--long-captions", choices=config.LONG_CAPTION_CHOICES, default=config.default("long_captions"),
                   help=f"what to do with captions over --max-words (default {config.default('long_captions')})")
    p.add_argument("--split-by", choices=config.SPLIT_BY_CHOICES, default=config.default("split_by"),
                   help=f"{config.field_help('split_by')} (default {config.default('split_by')})")
    p.add_argument("--protocol", choices=config.PROTOCOL_CHOICES, default=config.default("protocol"),
                   help=f"{config.field_help('protocol')} (default {config.default('protocol')})")
    p.add_argument("--seed", type=int, default=config.default("seed"),
                   help=f"split seed (default {config.default('seed')})")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="also read image paths that resolve outside the dataset's folder (refused by default)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _stats(s: dict[str, Any]) -> str:
    return f"min {s['min']}, median {s['median']:g}, max {s['max']}"


def format_summary(s: dict[str, Any], seconds: float) -> str:
    """Human-readable summary text."""
    lines = [
        f"dataset          {s['dataset']}  ({s['kind']}, name {s['name']})",
        f"records read     {s['records_read']}",
        f"records kept     {s['records_kept']}",
        "dropped          " + (", ".join(f"{k} {v}" for k, v in s["dropped"].items()) or "none"),
        f"images found     {s['images_found']}",
        f"groups           {s['groups']} ({s['groups_kept']} after caption filtering)",
        f"caption words    before: {_stats(s['caption_words_before'])}; after: {_stats(s['caption_words_after'])}",
        f"vocabulary       {s['vocab_size']} (train split, min count {s['settings']['min_count']})",
    ]
    st = s["settings"]
    sizes = s["split_sizes"]
    lines.append(f"split            {st['protocol']} by {st['split_by']}, seed {st['seed']}: "
                 f"train {sizes['train']}, val {sizes['val']}, test {sizes['test']}")
    lk = s["leakage"]
    lines.append(f"leakage          groups shared train/test {lk['groups_shared_train_test']}, "
                 f"train/val {lk['groups_shared_train_val']}; test captions also in train "
                 f"{lk['test_captions_in_train_fraction']:.1%}")
    for reason, names in s["examples"].items():
        lines.append(f"  e.g. {reason}: {', '.join(names[:3])}")
    lines.append(f"time             {seconds:.1f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Handler: load, summarize, print."""
    from medcap.data import load_records, summarize

    start = time.perf_counter()
    result = load_records(args.dataset, allow_outside_root=args.allow_outside_root)
    summary = summarize(result, max_words=args.max_words, split_by=args.split_by, protocol=args.protocol,
                        seed=args.seed, long_captions=args.long_captions)
    seconds = time.perf_counter() - start
    log.info("data summary took %.2f s", seconds)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        sys.stdout.write(format_summary(summary, seconds) + "\n")
    return 0
