"""The named presets of a run (`RunConfig.from_preset`) and when and on what data each was fixed."""

from __future__ import annotations

from typing import Any

# medcap-facts: Model-80's architecture, split and batch; long captions truncated for training; no back-to-back
# repeats; fact predictors with a findings line, and decoding that never contradicts a sure fact. No caption memory.
# The paper's Table 2 presets (split protocol and batch size); everything else is shared. medcap-best: Model-80's
# split and batch, long captions truncated for training, retrieval-augmented decoding (caption memory k 4), min
# length 6, no back-to-back repeats; NOT fixed before the MedPix study that reports it (PRESET_CHOSEN).
PRESETS: dict[str, dict[str, Any]] = {
    "model-80": {"preset": "model-80", "protocol": "model-80", "batch_size": 64},
    "model-70": {"preset": "model-70", "protocol": "model-70", "batch_size": 128},
    "medcap-best": {"preset": "medcap-best", "protocol": "model-80", "batch_size": 64, "long_captions": "truncate",
                    "block_repeats": True, "min_words": 6, "memory_k": 4, "memory_lambda": 0.3,
                    "memory_temperature": 0.1},
    "medcap-facts": {"preset": "medcap-facts", "protocol": "model-80", "batch_size": 64, "long_captions": "truncate",
                     "block_repeats": True, "facts": True, "facts_constrain": True},
}
# When each preset was fixed and the data (folder name) it was chosen on; `medcap.experiments.frozen` reads it.
PRESET_CHOSEN: dict[str, dict[str, str | None]] = {
    "model-80": {"fixed": "the paper (Table 2)", "data": None},
    "model-70": {"fixed": "the paper (Table 2)", "data": None},
    "medcap-best": {"fixed": "2026-11-28 (commit a76174a)", "data": "medpix-dev"},
    "medcap-facts": {"fixed": "2026-12-05 (commit d987729), before any study of it", "data": "medpix-dev"},
}
