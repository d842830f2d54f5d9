"""The findings line on the study's case-disjoint MedPix folds, without training a captioner.

Run: `.venv/bin/python benchmarks/facts_line.py --store FEATURE_STORE [--folds 5] [--json]`

For each of the k folds of `medcap study` (`medcap.data.splits.kfold_splits` over the images with a usable
caption, long ones truncated, split seed 0), fits the fact predictors exactly as `train --facts` does
(`medcap.model.facts_head.FactPredictor`: mean+max pooled grid, one logistic head per fact, thresholds from
case-grouped out-of-fold predictions of the training pool) on the fold's training pool (train + val images)
and scores the findings line on its test images with the evaluation's scorer (`medcap.eval.facts_score`):
per fact, the share of all test images where it is stated and right, and the share of stated facts that are
wrong. Prints the pooled figure and each fold's.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from medcap.data.facts import label_facts
from medcap.data.loaders import load_records
from medcap.data.splits import kfold_splits
from medcap.data.text import prepare_captions
from medcap.eval.facts_score import score_facts
from medcap.features.store import open_store
from medcap.model.facts_head import LINE_FACTS, FactPredictor, fact_inputs, sure_facts

FACTS = ("modality", "plane", "region")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a complete VGG16 feature store of the dataset")
    parser.add_argument("--dataset", default="medpix:../shared/data/medpix-dev")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = load_records(args.dataset)
    table, _ = prepare_captions(result.table, max_words=20, long_captions="truncate")
    table = table.reset_index(drop=True)
    labels = {str(r["image_id"]): label_facts(r) for r in table.to_dict("records")}
    store = open_store(Path(args.store))
    groups = dict(zip(table["image_id"].astype(str), table["group"].astype(str), strict=True))

    def inputs(ids: list[str]) -> tuple[np.ndarray, dict[str, list]]:
        _, g, r = store.gather(ids)  # (n, D), (n, 7, 7, C)
        return fact_inputs(g, r, "mean+max"), {f: [labels[i].get(f) for i in ids] for f in LINE_FACTS}

    per_fold, pooled_pred, pooled_truth, pooled_groups = [], [], [], []
    for fold, split in enumerate(kfold_splits(table, k=args.folds, seed=0)):
        pool = split["train"] + split["val"]  # the run's training pool, as `train --facts` fits it
        x_tr, y_tr = inputs(pool)
        x_te, _ = inputs(split["test"])
        predictor = FactPredictor.fit(x_tr, y_tr, [groups[i] for i in pool])
        pred = [sure_facts(p) for p in predictor.predict(x_te)]
        truth = [labels[i] for i in split["test"]]
        scores = score_facts(pred, truth, [groups[i] for i in split["test"]], FACTS, 1000, 0)
        per_fold.append({"fold": fold, "n_test": len(split["test"]),
                         "thresholds": {f: round(h.threshold, 3) for f, h in predictor.heads.items()},
                         **{f: {k: scores[f][k] for k in ("correct", "wrong_of_stated", "not_stated")} for f in FACTS}})
        pooled_pred += pred
        pooled_truth += truth
        pooled_groups += [groups[i] for i in split["test"]]
    pooled = score_facts(pooled_pred, pooled_truth, pooled_groups, FACTS, 1000, 0)
    out = {"folds": per_fold, "pooled": {f: {k: pooled[f][k] for k in ("correct", "correct_ci", "wrong_of_stated",
                                                                      "wrong_of_stated_ci", "not_stated")}
                                         for f in FACTS}}
    if args.json:
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return 0
    sys.stdout.write("fact      correct of all [95% CI]   wrong of stated   not stated   (pooled over folds)\n")
    for f in FACTS:
        p = pooled[f]
        sys.stdout.write(f"{f:9} {p['correct']:.3f} [{p['correct_ci'][0]:.3f}, {p['correct_ci'][1]:.3f}]"
                         f"      {p['wrong_of_stated'] or 0:.3f}             {p['not_stated']:.3f}\n")
    for row in per_fold:
        shares = ", ".join(f"{f} {row[f]['correct']:.3f}/{row[f]['wrong_of_stated'] or 0:.3f}" for f in FACTS)
        sys.stdout.write(f"fold {row['fold']}: {shares}  thresholds {row['thresholds']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
