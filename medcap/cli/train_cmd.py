"""`train`, `grid` and `caption` commands (TensorFlow is imported inside the handlers only)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

EXIT_CANCELLED = 143


def _add_run_options(p: argparse.ArgumentParser, with_lr_layers: bool = True) -> None:
    p.add_argument("--preset", default="model-80", help="paper preset: model-80 (80/10/10, batch 64) | model-70")
    p.add_argument("--dataset", help="dataset spec KIND[:PATH], e.g. synthetic or medpix:../shared/data/medpix-dev")
    p.add_argument("--protocol", choices=["model-80", "model-70", "official"], help="split protocol (preset's)")
    p.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", help="label in the run folder name (sanitised)")
    if with_lr_layers:
        p.add_argument("--lr", type=float, dest="learning_rate")
        p.add_argument("--layers", type=int, help="stacked BiLSTM layers")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--attention", choices=["grid", "self"])
    p.add_argument("--decoder-state", choices=["last_context", "last", "none"],
                   help="last prefix position's BiLSTM state (+ attended context) into the decoder")
    p.add_argument("--dropout", type=float)
    p.add_argument("--mixed-precision", action="store_true", default=None, help="mixed_float16 (for GPUs)")
    p.add_argument("--strategy", choices=["default", "mirrored"])
    p.add_argument("--feature-store", help="train on this pre-extracted feature store folder (skip extraction)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(subparsers: Any) -> None:
    """Add the train, grid and caption parsers."""
    p = subparsers.add_parser("train", help="train a run (prints its folder)")
    _add_run_options(p)
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run (folder or id)")
    p.set_defaults(func=cmd_train)

    g = subparsers.add_parser("grid", help="grid search over learning rate x layers (x decode beam)")
    _add_run_options(g, with_lr_layers=False)
    g.add_argument("--lr", default="1e-3,5e-4", help="comma-separated learning rates")
    g.add_argument("--layers", default="1,2", help="comma-separated BiLSTM layer counts")
    g.add_argument("--beam", default="1,3", help="comma-separated beam sizes (decode-time)")
    g.set_defaults(func=cmd_grid)

    c = subparsers.add_parser("caption", help="caption image files with a trained run")
    c.add_argument("run", help="run folder or id")
    c.add_argument("images", nargs="+", help="image files")
    c.add_argument("--beam", type=int, default=1)
    c.add_argument("--json", action="store_true", help="JSON with per-word probabilities")
    c.set_defaults(func=cmd_caption)


_OVERRIDES = ("dataset", "protocol", "epochs", "seed", "name", "learning_rate", "layers", "batch_size",
              "patience", "attention", "decoder_state", "dropout", "mixed_precision", "strategy")


def config_from_args(args: argparse.Namespace, exclude: tuple[str, ...] = ()) -> Any:
    """RunConfig from the preset plus the flags that were given (names in `exclude` ignored)."""
    from medcap.config import RunConfig

    values = {k: getattr(args, k, None) for k in _OVERRIDES if k not in exclude}
    store = getattr(args, "feature_store", None)
    if store:
        values["extra"] = {"feature_store": str(Path(store).resolve())}
    cfg = RunConfig.from_preset(args.preset, **values)
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.layers < 1:
        raise ValueError("--epochs, --batch-size and --layers must be >= 1")
    return cfg


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"{flag}: expected comma-separated numbers, got {text!r}") from exc


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"{flag}: expected comma-separated integers, got {text!r}") from exc


def _summary(run_dir: Path) -> dict[str, Any]:
    from medcap.runs import read_history, read_status

    status = read_status(run_dir)
    hist = read_history(run_dir)
    out: dict[str, Any] = {"run_dir": str(run_dir), "run_id": run_dir.name, "state": status.get("state"),
                           "epochs_run": len(hist), "best_val_loss": status.get("best_val_loss"),
                           "best_epoch": status.get("best_epoch")}
    if len(hist):
        out["last"] = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                       for k, v in hist.iloc[-1].to_dict().items()}
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) one run; print its folder (or a JSON summary)."""
    from medcap.runs import resolve_run

    if args.resume:
        run_dir = resolve_run(args.resume)
    else:
        if not args.dataset:
            raise ValueError("train: --dataset is required (or --resume RUN)")
        cfg = config_from_args(args)
    from medcap.train.runner import RunCancelled, resume_run, train_run

    try:
        run_dir = resume_run(run_dir) if args.resume else train_run(cfg)
    except RunCancelled:
        return EXIT_CANCELLED
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:  # status.json already says failed, with the error
        print(f"training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(_summary(run_dir), indent=2) if args.json else str(run_dir))
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    """Run the grid; print the results folder (or the table as JSON)."""
    if not args.dataset:
        raise ValueError("grid: --dataset is required")
    lrs, layers, beams = _floats(args.lr, "--lr"), _ints(args.layers, "--layers"), _ints(args.beam, "--beam")
    if not (lrs and layers and beams):
        raise ValueError("grid: --lr, --layers and --beam each need at least one value")
    cfg = config_from_args(args, exclude=("learning_rate", "layers"))
    from medcap.io import read_json
    from medcap.train.grid import run_grid
    from medcap.train.runner import RunCancelled

    try:
        grid_dir = run_grid(cfg, lrs, layers, beams)
    except RunCancelled:
        return EXIT_CANCELLED
    if args.json:
        print(json.dumps({"grid_dir": str(grid_dir), "results": read_json(grid_dir / "results.json")}, indent=2))
    else:
        print(str(grid_dir))
    return 0


def cmd_caption(args: argparse.Namespace) -> int:
    """Caption image files; one line per image (or JSON with per-word probabilities)."""
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"caption: no such image file(s): {', '.join(missing)}")
    from medcap.inference import load_run

    loaded = load_run(args.run)
    results = []
    for path in args.images:  # one bad image never stops the others
        try:
            cap = loaded.caption_images([path], beam=args.beam)[0]
            results.append({"image": path, "caption": cap.text, "words": list(cap.words),
                            "probs": [round(float(p), 5) for p in cap.probs], "score": float(cap.score)})
        except (OSError, ValueError) as exc:
            results.append({"image": path, "error": f"{type(exc).__name__}: {exc}"})
    if args.json:
        print(json.dumps({"run": str(loaded.run_dir), "beam": args.beam, "captions": results}, indent=2))
    else:
        for r in results:
            print(f"{r['image']}\t{r.get('caption', 'ERROR: ' + r.get('error', ''))}")
    return 1 if any("error" in r for r in results) else 0
