"""`evaluate` and `compare` commands (TensorFlow is imported inside the handlers only)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medcap.eval.artifacts import ci_text, num_text
from medcap.eval.metrics import CORPUS_METRICS
from medcap.runs.folder import EVAL_SPLITS

NEXT_WORD_ORDER = ("accuracy", "accuracy_excl_unk", "unk_target_rate", "n_pairs")
EXTRA_NEXT_WORD = ("precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted",
                   "f1_weighted")
HEALTH_ORDER = ("adjacent_repeat_share", "repeated_bigram_share", "distinct_captions", "distinct_words",
                "mean_length", "reference_mean_length")


def register(subparsers: Any) -> None:
    """Add the evaluate and compare parsers."""
    e = subparsers.add_parser("evaluate", help="evaluate a run: metrics with 95%% CIs, baselines, predictions")
    e.add_argument("run", help="run folder or id")
    e.add_argument("--dataset", help="another dataset KIND[:PATH] (default: the run's own)")
    e.add_argument("--split", default=None, choices=EVAL_SPLITS,
                   help="images: the run's split (own dataset) or the dataset's own split; default test on the "
                   "run's own dataset (with or without --dataset), all on another dataset")
    e.add_argument("--include-training-images", action="store_true",
                   help="allow --split all on the run's own dataset (it then scores the run's training images)")
    e.add_argument("--decode", default=None, help="greedy | beam:K (default: the run's own decoding settings)")
    e.add_argument("--length-penalty", type=float, default=None,
                   help="beam search GNMT length penalty alpha (default: the run's, 0 for the paper's presets)")
    e.add_argument("--allow-changed-data", action="store_true",
                   help="evaluate even if the dataset changed since training (recorded in metrics.json)")
    e.add_argument("--feature-store", help="use this feature store folder for --dataset (skip extraction)")
    e.add_argument("--no-meteor", action="store_true", help="skip METEOR (no JVM)")
    e.add_argument("--json", action="store_true", help="print metrics.json")
    e.set_defaults(func=cmd_evaluate)

    c = subparsers.add_parser("compare", help="paired bootstrap comparison of two runs on the same images")
    c.add_argument("run_a", help="run A folder or id")
    c.add_argument("run_b", help="run B folder or id")
    c.add_argument("--dataset", help="compare on this dataset KIND[:PATH] (its --split, default all)")
    c.add_argument("--split", default=None, choices=EVAL_SPLITS)
    c.add_argument("--decode", default=None, help="greedy | beam:K (default: each run's own decoding settings)")
    c.add_argument("--feature-store", help="feature store folder for --dataset (skip extraction)")
    c.add_argument("--no-meteor", action="store_true", help="skip METEOR (no JVM)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_compare)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{float(x):.{digits}f}"


def _ci(ci: Any) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-"


def format_metrics(metrics: dict[str, Any]) -> str:
    """A plain-text table: metric, value and 95% case-level CI for the model and both baselines, image reliance,
    then next-word metrics (the paper's definition first), caption health and clinical
    facts. Older files show "-"."""
    neural = metrics.get("model_neural_only")
    systems = {"model": metrics["model"], **({"model, neural only": neural} if neural else {}), **metrics["baselines"]}
    boot = metrics.get("bootstrap") or {}
    unit = f"{boot['n_groups']} cases" if boot.get("unit") == "group" else "images (older evaluation)"
    lines = [f"{metrics['run_id']} ({metrics.get('run_label', '-')}) on {metrics['dataset']}",
             f"scored: {metrics['images']}; role: {metrics.get('split_role', 'not recorded')}; "
             f"n={metrics['n_images']}; decode {metrics['decode']}; 95% CIs resample {unit}"]
    if metrics.get("retrieval_augmented"):
        opts = metrics.get("decode_options") or {}
        lines.append(f"model: RETRIEVAL-AUGMENTED (caption memory of the {opts.get('memory_k', '?')} nearest training "
                     f"captions, lambda {opts.get('memory_lambda', '?')}); 'neural only' = same weights, memory off")
    rel = metrics.get("image_reliance") or {}
    reliance, neural_rel = rel.get("metrics") or {}, rel.get("neural_part") or {}
    columns = {"image reliance": reliance, **({"reliance, memory held": neural_rel} if neural_rel else {})}
    columns = {k: v for k, v in columns.items() if v}
    header = "".join(f"{name:>30}" for name in (*systems, *columns))
    lines.append(f"{'metric':<10}" + header)
    for key in CORPUS_METRICS:
        cells = []
        for sc in systems.values():
            m = sc.get(key)
            cells.append(f"{_fmt(m['value'])} {_ci(m['ci95'])}" if m else "skipped")
        for values in columns.values():
            r = values.get(key)
            cells.append(f"{_fmt(r['value'])} {_ci(r['ci95'])}" if r else "-")
        lines.append(f"{key:<10}" + "".join(f"{c:>30}" for c in cells))
    nw = metrics["next_word"]
    paper = nw.get("paper_definition") or {}
    lines.append("next-word (model): " + ", ".join(f"{k} {_fmt(nw.get(k))}" for k in NEXT_WORD_ORDER)
                 + f", majority baseline {_fmt((nw.get('majority_baseline') or {}).get('accuracy'))}")
    lines.append("next-word, the paper's definition (Keras P/R at 0.5): "
                 + ", ".join(f"{k} {_fmt(paper.get(k))}" for k in ("precision", "recall", "f1")))
    lines.append("next-word, other averages: " + ", ".join(f"{k} {_fmt(nw.get(k))}" for k in EXTRA_NEXT_WORD))
    health = (metrics.get("caption_health") or {}).get("model")
    if health:
        enforced = set(health.get("enforced_by_decoding") or [])
        lines.append("caption health (model): " + ", ".join(
            f"{k} {_fmt(health.get(k))}{' (enforced by decoding)' if k in enforced else ''}" for k in HEALTH_ORDER))
    from medcap.eval.facts_score import facts_lines

    lines.extend(facts_lines(metrics.get("clinical_facts")))  # fact x system; nothing for older evaluations
    for key, why in metrics.get("skipped", {}).items():
        lines.append(f"skipped {key}: {why}")
    return "\n".join(lines)


def format_compare(res: dict[str, Any]) -> str:
    """A plain-text paired table: metric, A, B, B - A, 95% CI of B - A, share of resamples with B > A."""
    lines = [f"A = {res['run_a']} ({res['preset_a']}), B = {res['run_b']} ({res['preset_b']})",
             f"images: {res['images']}; n={res['n_images']} in {(res.get('bootstrap') or {}).get('n_groups', '?')} "
             f"cases; {res['n_resamples']} paired resamples of cases, seed {res['seed']}",
             f"{'metric':<10}{'A':>9}{'B':>9}{'B-A':>10}{'95% CI of B-A':>26}{'P(B>A)':>9}"]
    for key in CORPUS_METRICS:
        m = res["metrics"].get(key)
        if m is None:
            continue
        diff, ci = num_text(m["diff"], 4, signed=True), ci_text(m["ci95"], 4, signed=True)  # tiny: 1.2e-05
        lines.append(f"{key:<10}{_fmt(m['a']):>9}{_fmt(m['b']):>9}{diff:>10}{ci:>26}"
                     f"{_fmt(m['share_b_gt_a'], 3):>9}")
    for key, why in res.get("skipped", {}).items():
        lines.append(f"skipped {key}: {why}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from medcap.base.io import read_json
    from medcap.eval.evaluate import evaluate_run
    from medcap.runs.folder import EvalDir

    out = evaluate_run(args.run, dataset=args.dataset, split=args.split, decode=args.decode,
                       feature_store=args.feature_store, with_meteor=not args.no_meteor,
                       length_penalty=args.length_penalty, allow_changed_data=args.allow_changed_data,
                       include_training_images=args.include_training_images)
    metrics = read_json(EvalDir(out).metrics)
    if args.json:
        sys.stdout.write(json.dumps({**metrics, "folder": str(out)}, indent=2) + "\n")
    else:
        print(format_metrics(metrics))
        print(f"folder: {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from medcap.eval.compare import compare_runs

    res = compare_runs(args.run_a, args.run_b, dataset=args.dataset, split=args.split, decode=args.decode,
                       feature_store=args.feature_store, with_meteor=not args.no_meteor)
    if args.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    else:
        print(format_compare(res))
    return 0
