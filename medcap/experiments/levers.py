"""Decoding levers of a study: the variants each trained system is re-decoded with, and their selection.

Every variant re-decodes the same trained weights (no retraining). A retrieval-augmented system (one
whose decoding reads the caption memory) always gets its neural-only variant (`neural_only`: memory off)
beside it; the ablations switch one lever off at a time, the additions one lever on (`no_repeat_2gram`;
`facts_silent` for a system that constrains its captions by its findings line).

Selection (`study --select`): a lever setting may only be chosen on data that is not reported. Each fold's
validation split is carved, whole cases, from that fold's training cases (`medcap.data.splits.kfold_splits`):
an inner, case-disjoint split of the outer training fold. Every candidate variant is decoded on it, the
best by `metric` is chosen per fold and seed (ties: the first candidate in `candidates` order), and only
that choice is then read on the fold's test split. The test folds never take part in the choice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medcap.base.io import read_json
from medcap.config import RunConfig
from medcap.eval.hybrid import is_retrieval_augmented
from medcap.runs.folder import RunDir

log = logging.getLogger(__name__)

NEURAL_ONLY = "neural_only"
NEURAL_ONLY_OVERRIDES: dict[str, Any] = {"memory_k": 0}
# Decoding levers switched off one at a time on a system that uses them (decode-only: no retraining).
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_min_length": {"min_words": 0},
    "no_repeat_block": {"block_repeats": False},
    "plain_greedy": {"memory_k": 0, "min_words": 0, "block_repeats": False, "no_repeat_ngram": 0, "beam_size": 1},
    "no_facts_constrain": {"facts_constrain": False, "facts_silent": False},
}
# Decoding levers switched on, one at a time, on a system that can use them (decode-only as well).
ADDITIONS: dict[str, dict[str, Any]] = {
    "facts_silent": {"facts_silent": True},  # the caption states only the findings line's facts
    "no_repeat_2gram": {"no_repeat_ngram": 2},  # no 2-gram twice ("of the left ... of the left")
}
# An addition that only means something beside another setting of the system.
ADDITION_NEEDS: dict[str, str] = {"facts_silent": "facts_constrain"}
TEST_NAME = "study-test"
VAL_NAME = "study-val"
SELECTED = "selected"


def _changes(cfg: RunConfig, overrides: dict[str, Any]) -> bool:
    used = cfg.decode_settings()
    return any(used.get(field) != value for field, value in overrides.items())


def _usable(cfg: RunConfig, addition: str) -> bool:
    """Whether `cfg` has the setting an addition needs (`ADDITION_NEEDS`; most need none)."""
    need = ADDITION_NEEDS.get(addition)
    return need is None or bool(getattr(cfg, need))


def candidates(cfg: RunConfig, ablations: bool = True) -> dict[str, dict[str, Any]]:
    """Variant suffix -> decoding overrides: "" (the system as set), `neural_only` for a retrieval-augmented
    system, then (with `ablations`) every ablation that changes something and every addition it can use."""
    out: dict[str, dict[str, Any]] = {"": {}}
    if is_retrieval_augmented(cfg.decode_settings()):
        out[NEURAL_ONLY] = dict(NEURAL_ONLY_OVERRIDES)
    if ablations:
        out.update({k: v for k, v in ABLATIONS.items() if _changes(cfg, v)})
        out.update({k: v for k, v in ADDITIONS.items() if _changes(cfg, v) and _usable(cfg, k)})
    return out


def eval_name(split_name: str, suffix: str) -> str:
    """`study-test`, `study-test-neural_only`, `study-val-no_min_length`, ..."""
    return split_name + (f"-{suffix}" if suffix else "")


def evaluate_candidates(run: RunDir, cfg: RunConfig, n_boot: int) -> None:
    """Decode every candidate variant on the run's inner validation split (split "val"); resumable."""
    from medcap.eval.evaluate import evaluate_run

    for suffix, overrides in candidates(cfg).items():
        name = eval_name(VAL_NAME, suffix)
        if run.eval_dir(name).is_complete():
            continue
        log.info("study --select: %s on its validation split %s", run.path.name, suffix or "(as set)")
        evaluate_run(run.path, split="val", with_meteor=False, n_boot=n_boot, decode_settings=overrides,
                     name=name, with_reliance=False)


def choose(run_path: Path, cfg: RunConfig, metric: str) -> tuple[str, dict[str, float]]:
    """(chosen suffix, validation value of every candidate) from the run's validation evaluations."""
    run = RunDir(Path(run_path))
    scores: dict[str, float] = {}
    for suffix in candidates(cfg):
        ev = run.eval_dir(eval_name(VAL_NAME, suffix))
        if not ev.is_complete():
            raise ValueError(f"{ev.path}: validation evaluation missing (resume the study)")
        metrics = read_json(ev.metrics)
        if metrics.get("split") != "val":
            raise ValueError(f"{ev.metrics}: scored split {metrics.get('split')!r}, not the validation split")
        scores[suffix] = float(metrics["model"][metric]["value"])
    best = max(scores.values())
    return next(s for s, v in scores.items() if v == best), scores
