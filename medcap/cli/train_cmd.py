"""`train`, `grid` and `caption` commands (TensorFlow is imported inside the handlers only)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from medcap import config
from medcap.cli.checks import check_dataset, check_setting, check_settings
from medcap.config import flag_for

EXIT_CANCELLED = 143
EXIT_LOCKED = 3  # the run is being trained by another live process


# Fields whose default comes from the preset (the flag's help says so).
_PRESET_FIELDS = ("protocol", "batch_size")


def _add_run_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per RunConfig field (types, choices, help and defaults from medcap.config), then --json."""
    for name in config.field_names():
        if name in skip:
            continue
        kind, options = config.value_type(name), config.choices(name)
        default = config.default(name)
        shown = "the preset's" if name in _PRESET_FIELDS else "none" if default in ("", None) else default
        if name == "dataset":
            shown = "required unless --resume"
        help_text = f"{config.field_help(name)} (default: {shown})"
        if name == "preset":  # always given: the base every other flag overrides
            p.add_argument(flag_for(name), choices=options, default=default, help=help_text)
        elif kind is bool:
            p.add_argument(flag_for(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        else:
            p.add_argument(flag_for(name), dest=name, type=kind, choices=options, default=None, help=help_text)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(subparsers: Any) -> None:
    """Add the train, grid and caption parsers."""
    p = subparsers.add_parser("train", help="train a run (prints its folder)")
    _add_run_options(p)
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run (folder or id)")
    p.add_argument("--run-dir", metavar="DIR", type=Path,
                   help="train into this folder; when it already holds a run with the same settings, continue it "
                        "(re-running the same command resumes: what a cluster scheduler or multi-worker job needs)")
    p.set_defaults(func=cmd_train)

    g = subparsers.add_parser("grid", help="grid search over learning rate x layers (x decode beam)")
    _add_run_options(g, skip=("learning_rate", "layers"))
    g.add_argument("--lr", default="1e-3,5e-4", help="comma-separated learning rates")
    g.add_argument("--layers", default="1,2", help="comma-separated BiLSTM layer counts")
    g.add_argument("--beam", default="1,3", help="comma-separated beam sizes (decode-time)")
    g.add_argument("--seeds", default="", help="comma-separated init seeds (the split stays fixed), e.g. 1,2,3")
    g.set_defaults(func=cmd_grid)

    c = subparsers.add_parser("caption", help="caption image files with a trained run")
    c.add_argument("run", help="run folder or id")
    c.add_argument("images", nargs="+", help="image files")
    c.add_argument("--beam", type=int, default=1)
    c.add_argument("--json", action="store_true", help="JSON with per-word probabilities")
    c.set_defaults(func=cmd_caption)


def config_from_args(args: argparse.Namespace, exclude: tuple[str, ...] = ()) -> config.RunConfig:
    """RunConfig from the preset plus the flags that were given (names in `exclude` ignored).

    A bad value raises ValueError naming the setting and what it expects.
    """
    values = {k: getattr(args, k, None) for k in config.field_names() if k not in exclude and k != "preset"}
    if values.get("feature_store"):
        values["feature_store"] = str(Path(values["feature_store"]).resolve())
    return config.RunConfig.from_preset(args.preset, **values)


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
    from medcap.runs.index import read_history, read_status

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
    from medcap.runs.index import resolve_run

    resume = bool(args.resume)
    if args.resume:
        if args.run_dir:
            raise ValueError("train: give --resume RUN or --run-dir DIR, not both")
        run_dir = resolve_run(args.resume)
    else:
        if not args.dataset:
            raise ValueError("train: --dataset is required (or --resume RUN)")
        cfg = config_from_args(args)
        check_dataset(cfg.dataset)  # before any run folder exists: no failed run for a typo
        if args.run_dir:
            run_dir = args.run_dir.resolve()
            resume = _holds_same_run(run_dir, cfg)
    from medcap.base.locks import LockedError
    from medcap.train.runner import RunCancelled, resume_run, train_run

    try:
        run_dir = resume_run(run_dir) if resume else train_run(cfg, run_dir=args.run_dir and run_dir)
    except RunCancelled:
        return EXIT_CANCELLED
    except LockedError as exc:  # nothing was touched: the other process owns the run
        print(f"train: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:  # status.json already says failed, with the error
        print(f"training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if run_dir is None:  # a non-chief worker of a multi-worker run: the chief wrote the run
        print(json.dumps({"run_dir": None, "role": "worker"}) if args.json else "worker done (the chief wrote the run)")
        return 0
    print(json.dumps(_summary(run_dir), indent=2) if args.json else str(run_dir))
    return 0


def _holds_same_run(run_dir: Path, cfg: config.RunConfig) -> bool:
    """Whether `run_dir` already holds a run (to be continued); ValueError when its settings differ from `cfg`."""
    from medcap.runs.folder import RunDir
    from medcap.runs.index import read_config

    if not RunDir(run_dir).config.is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise ValueError(f"train --run-dir {run_dir}: the folder is not empty and holds no run (no config.json)")
        return False
    saved = read_config(run_dir).get("run")
    if not isinstance(saved, dict):
        raise ValueError(f"{RunDir(run_dir).config}: missing or malformed; cannot continue this run")
    given = cfg.to_dict()
    differ = [f"{k}: {saved.get(k)!r} there, {given[k]!r} given" for k in given if saved.get(k) != given[k]]
    if differ:
        raise ValueError(f"train --run-dir {run_dir}: the folder holds a run with other settings ("
                         + "; ".join(differ) + "); use another folder, or the same settings to continue it")
    return True


def cmd_grid(args: argparse.Namespace) -> int:
    """Run the grid; print the results folder (or the table as JSON)."""
    if not args.dataset:
        raise ValueError("grid: --dataset is required")
    lrs, layers, beams = _floats(args.lr, "--lr"), _ints(args.layers, "--layers"), _ints(args.beam, "--beam")
    if not (lrs and layers and beams):
        raise ValueError("grid: --lr, --layers and --beam each need at least one value")
    cfg = config_from_args(args, exclude=("learning_rate", "layers"))
    check_dataset(cfg.dataset)  # every value checked before the grid folder or a run exists
    check_settings("learning_rate", lrs, "grid --lr")
    check_settings("layers", layers, "grid --layers")
    check_settings("beam_size", beams, "grid --beam")
    seeds = check_settings("seed", _ints(args.seeds, "--seeds"), "grid --seeds") if args.seeds else None
    from medcap.base.io import read_json
    from medcap.experiments.grid import run_grid
    from medcap.train.runner import RunCancelled

    try:
        grid_dir = run_grid(cfg, lrs, layers, beams, seeds=seeds)
    except RunCancelled:
        return EXIT_CANCELLED
    if args.json:
        print(json.dumps({"grid_dir": str(grid_dir), "results": read_json(grid_dir / "results.json")}, indent=2))
    else:
        print(str(grid_dir))
    return 0


def cmd_caption(args: argparse.Namespace) -> int:
    """Caption image files; one line per image (or JSON with per-word probabilities)."""
    check_setting("beam_size", args.beam, "caption --beam")
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"caption: no such image file(s): {', '.join(missing)}")
    from medcap.inference.opened import load_run

    loaded = load_run(args.run)
    results = []
    for path in args.images:  # one bad image never stops the others
        try:
            cap = loaded.caption_images([path], loaded.decode_options(beam_size=args.beam))[0]
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
