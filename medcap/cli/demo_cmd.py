"""`demo`: synthetic set -> features -> Model-80 and Model-70 side by side, each evaluated (status: artifacts/demo)."""

from __future__ import annotations

import argparse
import json
from typing import Any

EXIT_CANCELLED = 143


def register(subparsers: Any) -> None:
    """Add the demo parser."""
    from medcap.experiments.demo import DemoOptions

    d = DemoOptions()
    p = subparsers.add_parser("demo", help="build the demo runs on a synthetic set (3.5-4.5 min on 2 busy CPU cores)")
    p.add_argument("--images", type=int, default=d.n_images, help=f"synthetic images (default {d.n_images})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"maximum epochs per model (default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (epochs)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help=f"learning rate (default {d.learning_rate})")
    p.add_argument("--sequential", action="store_true", help="train and evaluate the two runs one after the other")
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; print the two run folders (or the final status as JSON)."""
    from medcap.experiments.demo import DemoOptions, run_demo

    if args.images < 20 or args.epochs < 1 or args.lr <= 0:
        raise ValueError("demo: --images must be >= 20, --epochs >= 1 and --lr > 0")
    opts = DemoOptions(n_images=args.images, epochs=args.epochs, seed=args.seed, patience=args.patience,
                       learning_rate=args.lr, parallel=not args.sequential)
    status = run_demo(opts)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for preset, run in (status.get("runs") or {}).items():
            print(f"{preset}\t{run}")
    if status.get("state") == "cancelled":
        return EXIT_CANCELLED
    return 0 if status.get("state") == "finished" else 1
