"""After training: fit the run's fact predictors on its training images' labels, thresholds on validation.

Writes `facts.json` (`RunDir.facts`, `medcap.model.facts_head.FactPredictor`) when the run asks for facts
(`RunConfig.facts`) and its dataset labels at least one fact with two or more values on the training split.
Labels come from the dataset's own columns (`medcap.data.facts.label_facts`), never from captions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medcap.base.io import write_json
from medcap.data.facts import label_facts
from medcap.model.facts_head import LINE_FACTS, FactPredictor, fact_inputs
from medcap.runs.folder import RunDir
from medcap.train.prep import RunData

log = logging.getLogger(__name__)

# The grid pooled by mean and max: the best probe input on MedPix (benchmarks/probe.py); the global vector
# adds nothing there (without fc2 weights it is the mean of pool5).
FACT_INPUTS = "mean+max"


def split_inputs(data: RunData, split: str, inputs: str = FACT_INPUTS) -> tuple[np.ndarray, dict[str, list]]:
    """(inputs (n, F), {fact: labels}) of a split's images, in the split's image order."""
    ids = list(data.image_ids[split])
    if not ids:
        return np.zeros((0, 1), dtype=np.float32), {f: [] for f in LINE_FACTS}
    _, g, r = data.store.gather(ids)  # (n, D), (n, 7, 7, C)
    rows = data.table.set_index(data.table["image_id"].astype(str))
    facts = [label_facts(rows.loc[i].to_dict()) for i in ids]
    return fact_inputs(g, r, inputs), {f: [x.get(f) for x in facts] for f in LINE_FACTS}


def fit_facts(run_dir: Path, data: RunData, seed: int = 0) -> FactPredictor | None:
    """Fit on the run's training pool (train + val images; never test), thresholds from case-grouped out-of-fold
    predictions of the same images; write facts.json and return the predictor; None (and no file) when no fact
    has two labelled values."""
    x_train, y_train = split_inputs(data, "train")
    x_val, y_val = split_inputs(data, "val")
    x = np.concatenate([x_train, x_val]) if len(x_val) else x_train  # (N, F)
    labels = {f: list(y_train[f]) + (list(y_val[f]) if len(x_val) else []) for f in y_train}
    group_of = dict(zip(data.table["image_id"].astype(str), data.table["group"].astype(str), strict=True))
    ids = list(data.image_ids["train"]) + (list(data.image_ids["val"]) if len(x_val) else [])
    predictor = FactPredictor.fit(x, labels, [group_of[i] for i in ids], inputs=FACT_INPUTS, seed=seed)
    if not predictor.heads:
        log.warning("%s: no fact has two or more labelled values on the training split: no findings line", data.spec)
        return None
    write_json(RunDir(run_dir).facts, predictor.to_json())
    log.info("fact predictors written: %s", ", ".join(f"{f} (threshold {h.threshold:.2f})"
                                                      for f, h in predictor.heads.items()))
    return predictor
