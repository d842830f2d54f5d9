"""`demo`: synthetic dataset -> features -> Model-80 and Model-70 -> evaluation (progress in artifacts/demo)."""

from __future__ import annotations

import argparse
import json
from typing import Any

EXIT_CANCELLED = 143


def register(subparsers: Any) -> None:
    """Add the demo parser."""
    from medcap.demo import DemoOptions

    d = DemoOptions()
    p = subparsers.add_parser("demo", help="build the demo runs on a synthetic set (a few minutes on a CPU)")
    p.add_argument("--images", type=int, default=d.n_images, help=f"synthetic images (default {d.n_images})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"maximum epochs per model (default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (epochs)")
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; print the two run folders (or the final status as JSON)."""
    from medcap.demo import DemoOptions, run_demo

    if args.images < 20 or args.epochs < 1:
        raise ValueError("demo: --images must be >= 20 and --epochs >= 1")
    status = run_demo(DemoOptions(n_images=args.images, epochs=args.epochs, seed=args.seed, patience=args.patience))
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for preset, run in (status.get("runs") or {}).items():
            print(f"{preset}\t{run}")
    if status.get("state") == "cancelled":
        return EXIT_CANCELLED
    return 0 if status.get("state") == "finished" else 1
