"""The one typed configuration of a training run, saved as `config.json` in the run folder."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

Protocol = Literal["model-80", "model-70", "official"]

# The paper's Table 2 presets (split protocol and batch size); everything else is shared.
PRESETS: dict[str, dict[str, Any]] = {
    "model-80": {"preset": "model-80", "protocol": "model-80", "batch_size": 64},
    "model-70": {"preset": "model-70", "protocol": "model-70", "batch_size": 128},
}


@dataclass
class RunConfig:
    """Every setting of one run. CLI flags override preset values; the whole thing is saved as JSON."""

    # identity and data
    name: str = ""
    preset: str = "model-80"
    dataset: str = "synthetic"
    protocol: str = "model-80"  # model-80 (80/10/10) | model-70 (70/15/15) | official
    split_by: str = "group"  # group | image
    seed: int = 42
    max_words: int = 20
    long_captions: str = "drop"  # drop | truncate
    min_count: int = 2  # vocabulary minimum word count
    # image side
    backbone: str = "vgg16"
    augment: int = 0  # augmented views per image in the feature store
    # model (paper section 3.1)
    attention: str = "grid"  # grid (BiLSTM states attend over the 7x7 regions) | self
    embed_dim: int = 256
    lstm_units: int = 256  # per direction
    layers: int = 1  # stacked BiLSTM layers
    dense_units: int = 256
    attn_units: int = 256
    # last_context: the BiLSTM state and attended context at the last prefix position also feed the decoder
    # | last: the state only | none: image + mean context only (runs saved before this field load as none)
    decoder_state: str = "last_context"
    dropout: float = 0.4
    l2: float = 1e-5
    # optimisation (paper section 4.2)
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 12  # synthetic demo: best val_loss near epoch 11 (~12 min on 2 CPU cores)
    patience: int = 5  # early stopping on val_loss, best weights restored
    lr_patience: int = 2  # reduce-on-plateau
    lr_factor: float = 0.5
    min_lr: float = 1e-5
    mixed_precision: bool = False
    strategy: str = "default"  # default | mirrored
    # decoding used by evaluation
    beam: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> RunConfig:
        """Build a config from a paper preset (`model-80`, `model-70`) plus overrides (None ignored)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        values = dict(PRESETS[preset])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild from JSON; unknown keys (a newer or older medcap) are logged and ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {"decoder_state": "none", **data}  # runs saved before the field existed: no state path
        unknown = sorted(set(data) - known)
        if unknown:
            log.warning("config: ignoring unknown keys %s", unknown)
        return cls(**{k: v for k, v in data.items() if k in known})
