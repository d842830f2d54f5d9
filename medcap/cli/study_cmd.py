"""`study` command: case-disjoint k-fold comparison of systems against 1-NN retrieval (TensorFlow inside)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medcap import config
from medcap.cli.checks import check_dataset, check_setting


def register(subparsers: Any) -> None:
    """Add the study parser."""
    s = subparsers.add_parser("study", help="case-disjoint k-fold study: systems vs 1-NN and most-frequent "
                              "(resumable; results under artifacts/studies/)")
    s.add_argument("--dataset", help="dataset spec KIND[:PATH] (not needed with --resume)")
    s.add_argument("--folds", type=int, default=5, help="number of case-disjoint folds (default 5)")
    s.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")
    s.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="init seeds: every fold and system trained once per seed; CIs resample cases, then a "
                   "seed per case (default: one run with each preset's own seed)")
    s.add_argument("--select", action="store_true",
                   help="choose each system's decoding levers per fold on the fold's inner validation split "
                   "(carved from its training cases), never on the test folds; reported as <system>:selected")
    s.add_argument("--select-metric", default="cider", choices=("bleu1", "bleu4", "rouge_l", "cider"),
                   help="what --select maximises on validation (default cider)")
    s.add_argument("--systems", default="model-80,medcap-best",
                   help=f"comma-separated presets to compare ({', '.join(config.PRESET_CHOICES)}; "
                   "default model-80,medcap-best)")
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a RunConfig setting for every system, e.g. --set epochs=8 (repeatable)")
    s.add_argument("--no-meteor", action="store_true", help="skip METEOR (no JVM)")
    s.add_argument("--no-ablations", action="store_true", help="skip the decoding ablations")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    s.add_argument("--name", default="", help="label in the study folder name")
    s.add_argument("--resume", type=Path, metavar="STUDY", help="continue a killed study (its folder)")
    s.add_argument("--json", action="store_true", help="print results.json")
    s.set_defaults(func=cmd_study)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """FIELD=VALUE items -> {field: value}; values are read as JSON when they parse (numbers, true/false)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in config.field_names():
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of the run settings")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def parse_seeds(text: str | None) -> list[int] | None:
    """'1,2,3' -> [1, 2, 3] (distinct, in the given order); None or '' -> None."""
    if not text:
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated whole numbers, e.g. 1,2,3") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: expected distinct seeds >= 0, e.g. 1,2,3")
    return seeds


def cmd_study(args: argparse.Namespace) -> int:
    from medcap.experiments.study import STUDY_FILE, StudySettings, pooled_frame, run_study, study_notes

    if args.resume is not None:
        if not (args.resume / STUDY_FILE).is_file():
            what = "holds no study (no study.json)" if args.resume.is_dir() else "does not exist"
            raise FileNotFoundError(f"study --resume {args.resume}: the folder {what}; a study's folder is under "
                                    "artifacts/studies/")
        folder = run_study(folder=args.resume)
    else:
        if not args.dataset:
            raise ValueError("--dataset is required (or --resume STUDY)")
        check_dataset(args.dataset)  # everything is checked before the study folder exists
        check_setting("n_folds", args.folds, "study --folds")
        check_setting("split_seed", args.seed, "study --seed")
        if args.n_boot < 1:
            raise ValueError(f"study --n-boot: must be >= 1, got {args.n_boot}")
        sets = parse_sets(args.set)
        systems = {name.strip(): {"preset": name.strip(), **sets} for name in args.systems.split(",") if name.strip()}
        for name in systems:
            if name not in config.PRESET_CHOICES:
                raise ValueError(f"--systems: unknown preset {name!r}; choose from {', '.join(config.PRESET_CHOICES)}")
        settings = StudySettings(dataset=args.dataset, folds=args.folds, seed=args.seed, systems=systems,
                                 with_meteor=not args.no_meteor, n_boot=args.n_boot, ablations=not args.no_ablations,
                                 seeds=parse_seeds(args.seeds), select=args.select, select_metric=args.select_metric)
        folder = run_study(settings, name=args.name)
    results = json.loads((folder / "results.json").read_text())
    if args.json:
        sys.stdout.write(json.dumps({**results, "folder": str(folder)}, indent=2) + "\n")
    else:
        seeds = results.get("seeds")
        print(f"study {folder.name}: {results['dataset']}, {results['folds']} case-disjoint folds, "
              f"{results['n_images']} test images in {results['n_groups']} cases"
              + (f", init seeds {seeds}" if seeds else ""))
        print(pooled_frame(results, ("bleu1", "bleu4", "cider")).to_string(index=False))
        print("\n".join(study_notes(results)))
        print(f"folder: {folder}")
    return 0
