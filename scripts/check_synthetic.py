"""Acceptance check of a run trained on the synthetic demo set.

    python scripts/check_synthetic.py RUN [--split test] [--beam 1] [--store STORE] [--json]

Prints (1) the fraction of test images whose greedy caption names the true finding(s) and location(s)
(goal >= 0.80), (2) for the generated word naming a finding, the mean attention mass inside the true box
against the box's mean share of the image (goal: mass >= 2.5x share), (3) the run's stored greedy evaluation
of the split beside its 1-NN baseline (goal: higher BLEU-1 and CIDEr) and (4) distinct captions / images
(goal >= 0.80), printed beside the references' own share and the share of distinct image contents (study
kind, findings, locations, sizes): the most a captioner reaches that says each content one way.
`--store` names the feature store for a run that ships without one (the example bundle's runs, whose
`synthetic:N` set and store a demo build with the same settings recreates). Exit status 1 when a goal is
missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from medcap.eval.artifacts import read_metrics
from medcap.runs.folder import RunDir
from medcap.runs.index import resolve_run
from medcap.train.synthetic_check import check_run

GOAL_NAMED = 0.80
GOAL_RATIO = 2.5
GOAL_DISTINCT = 0.80


def stored_evaluation(run: str, split: str, beam: int) -> dict[str, Any] | None:
    """The run's stored evaluation of `split` with this beam and no caption memory: model and 1-NN
    BLEU-1/CIDEr; None when the run has none."""
    run_dir = resolve_run(run)
    for ev in RunDir(run_dir).evals():
        metrics = read_metrics(run_dir, ev.name)
        opts = metrics.get("decode_options") or {}
        if metrics.get("split") == split and opts.get("beam") == beam and not opts.get("memory_k"):
            model, nn = metrics["model"], metrics["baselines"]["nearest_neighbour"]
            return {"evaluation": ev.name, **{f"{who}{m}": _value(block[m]) for who, block in (("", model), ("nn_", nn))
                                              for m in ("bleu1", "cider")}}
    return None


def _value(entry: Any) -> float:
    """A metric as metrics.json stores it: {"value", "ci95"} (or a bare number)."""
    return float(entry["value"] if isinstance(entry, dict) else entry)


def _ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or id")
    parser.add_argument("--split", default="test")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--store", type=Path, help="feature store for a run shipped without one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    r = check_run(args.run, split=args.split, beam=args.beam, store=args.store)
    ev = stored_evaluation(args.run, args.split, args.beam)
    oks = {
        "named_ok": r["named_fraction"] >= GOAL_NAMED,
        "attention_ok": r["mass_over_share"] >= GOAL_RATIO,
        "beats_nn_ok": ev is not None and ev["bleu1"] > ev["nn_bleu1"] and ev["cider"] > ev["nn_cider"],
        "distinct_ok": r["distinct_captions"] >= GOAL_DISTINCT,
    }
    r["stored_evaluation"] = ev
    r["goals"] = {"named_fraction": GOAL_NAMED, "mass_over_share": GOAL_RATIO, "distinct_captions": GOAL_DISTINCT,
                  **oks}
    if args.json:
        print(json.dumps(r, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    else:
        print(f"run: {r['run']} ({r['split']} split, {r['n_images']} images, beam {r['beam']})")
        print(f"names true finding + location: {r['named_fraction']:.3f} (goal >= {GOAL_NAMED}) {_ok(oks['named_ok'])}")
        print(f"attention mass in true box: {r['mean_box_mass']:.3f} vs box share {r['mean_box_share']:.3f} "
              f"-> {r['mass_over_share']:.2f}x (goal >= {GOAL_RATIO}x) {_ok(oks['attention_ok'])}; "
              f"{r['n_findings_scored']} finding words scored, {r['findings_not_generated']} not generated, "
              f"median per-finding ratio {r['median_instance_ratio']:.2f}x")
        if ev is None:
            print(f"against 1-NN: no stored {args.split} evaluation with beam {args.beam} MISSED")
        else:
            print(f"against 1-NN ({ev['evaluation']}): BLEU-1 {ev['bleu1']:.3f} vs {ev['nn_bleu1']:.3f}, "
                  f"CIDEr {ev['cider']:.3f} vs {ev['nn_cider']:.3f} {_ok(oks['beats_nn_ok'])}")
        print(f"distinct captions / images: {r['distinct_captions']:.3f} (goal >= {GOAL_DISTINCT}) "
              f"{_ok(oks['distinct_ok'])}; references {r['distinct_references']:.3f}, distinct contents "
              f"(kind, findings, locations, sizes) {r['distinct_contents']:.3f}")
        for ex in r["examples"]:
            print(f"  {ex['image_id']}: {ex['caption']}")
    return 0 if all(oks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
