"""Frozen settings: when each preset was fixed, on which data it was chosen, and what that means for a study.

A figure is a held-out test of a choice of settings only when the choice was made before, on other data
(or on inner validation folds of the same data: `study --select`). `medcap.config.PRESET_CHOSEN` records
each preset's date and data; a study whose dataset is the data a preset was chosen on marks that
preset's rows "chosen on this data".
"""

from __future__ import annotations

from typing import Any

from medcap.config import PRESET_CHOSEN

CHOSEN_ON: dict[str, str] = {
    "model-80": "the paper's settings (its MedICaT data), not tuned by medcap",
    "model-70": "the paper's settings (its MedICaT data), not tuned by medcap",
    "medcap-best": "the MedPix 2.0 dev sample (../shared/data/medpix-dev, 1,850 images): an earlier group split "
    "of it, then its levers kept or dropped from the case-disjoint 5-fold study's own ablations on the same "
    "images. Not frozen before that study: its headline there is not a held-out test of the choice; "
    "`study --select` chooses the levers on inner validation folds instead",
    "medcap-facts": "fixed before its study, not tuned on its folds, but not on unseen data either: its two "
    "caption levers (long captions truncated, no back-to-back repeats) come from medcap-best, whose ablations "
    "measured them on these same MedPix dev images, and the fact predictors' pooling (mean+max, as in the "
    "issue's own probe) had been compared with the global vector by a linear probe on this study's folds "
    "(mean+max 0.932 / 0.879 / 0.714 vs global 0.930 / 0.870 / 0.710 for modality / plane / region). Their "
    "C (0.1) and thresholds (wrong share 5% / 10% / 10%, the issue's goals, on case-grouped "
    "out-of-fold predictions of each training pool) were set without a test fold",
}


def dataset_folder_name(spec: str) -> str:
    """The last folder name of a dataset spec's path (`medpix:../shared/data/medpix-dev` -> `medpix-dev`)."""
    kind, _, path = spec.partition(":")
    return path.rstrip("/").rsplit("/", 1)[-1] if path else kind


def provenance(preset: str, dataset: str | None = None) -> dict[str, Any]:
    """When `preset` was fixed, the data it was chosen on and, given a study's `dataset` spec,
    `chosen_on_this_data` (the spec's folder is the one the preset was chosen on)."""
    record: dict[str, Any] = {**PRESET_CHOSEN.get(preset, {"fixed": "unknown", "data": None}),
                              "chosen_on": CHOSEN_ON.get(preset, "unknown")}
    if dataset is not None:
        record["chosen_on_this_data"] = bool(record["data"]) and dataset_folder_name(dataset) == record["data"]
    return record
