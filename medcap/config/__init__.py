"""A run's settings: `RunConfig` (`run`), the named presets (`presets`), the train command line (`args`).

`from medcap.config import RunConfig, ...` is the public way in; the modules say who owns what.
"""

from medcap.config.args import FLAG_NAMES, flag_for, train_cli_args
from medcap.config.presets import PRESET_CHOSEN, PRESETS
from medcap.config.run import (
    ATTENTION_CHOICES,
    ATTENTION_SCORE_CHOICES,
    BACKBONE_CHOICES,
    DECODE_FIELDS,
    DECODER_STATE_CHOICES,
    LONG_CAPTION_CHOICES,
    MODEL_FIELDS,
    PLUMBING_FIELDS,
    PRESET_CHOICES,
    PROTOCOL_CHOICES,
    SELECT_BY_CHOICES,
    SPLIT_BY_CHOICES,
    STRATEGY_CHOICES,
    RunConfig,
    choices,
    default,
    field_help,
    field_names,
    value_type,
)

__all__ = [
    "ATTENTION_CHOICES",
    "ATTENTION_SCORE_CHOICES",
    "BACKBONE_CHOICES",
    "DECODER_STATE_CHOICES",
    "DECODE_FIELDS",
    "FLAG_NAMES",
    "LONG_CAPTION_CHOICES",
    "MODEL_FIELDS",
    "PLUMBING_FIELDS",
    "PRESETS",
    "PRESET_CHOICES",
    "PRESET_CHOSEN",
    "PROTOCOL_CHOICES",
    "SELECT_BY_CHOICES",
    "SPLIT_BY_CHOICES",
    "STRATEGY_CHOICES",
    "RunConfig",
    "choices",
    "default",
    "field_help",
    "field_names",
    "flag_for",
    "train_cli_args",
    "value_type",
]
