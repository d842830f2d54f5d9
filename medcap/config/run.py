"""`RunConfig`: the one typed configuration of a training run, saved as `config.json` in the run folder.

Every choice a run offers is a `Literal` here; the `*_CHOICES` tuples are derived from those
Literals and are what the CLI, the dashboard pages and the model builder offer and check. A
`RunConfig` is validated when it is made (`validate`), so a bad value names its field and what
was expected, whether it came from a flag or from an old `config.json`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from medcap.config.presets import PRESETS

log = logging.getLogger(__name__)

Preset = Literal["model-80", "model-70", "medcap-best", "medcap-facts"]
SplitProtocol = Literal["model-80", "model-70", "official", "kfold"]
SelectBy = Literal["val_loss", "val_cider"]
SplitBy = Literal["group", "image"]
LongCaptions = Literal["drop", "truncate"]
Backbone = Literal["vgg16", "resnet50", "densenet121", "efficientnetb0"]
Attention = Literal["grid", "self"]
AttentionScore = Literal["additive", "dot"]
DecoderState = Literal["last_context", "last", "none"]
Strategy = Literal["default", "mirrored", "multi_worker"]

PRESET_CHOICES: tuple[str, ...] = get_args(Preset)
PROTOCOL_CHOICES: tuple[str, ...] = get_args(SplitProtocol)
SPLIT_BY_CHOICES: tuple[str, ...] = get_args(SplitBy)
LONG_CAPTION_CHOICES: tuple[str, ...] = get_args(LongCaptions)
BACKBONE_CHOICES: tuple[str, ...] = get_args(Backbone)
ATTENTION_CHOICES: tuple[str, ...] = get_args(Attention)
ATTENTION_SCORE_CHOICES: tuple[str, ...] = get_args(AttentionScore)
DECODER_STATE_CHOICES: tuple[str, ...] = get_args(DecoderState)
STRATEGY_CHOICES: tuple[str, ...] = get_args(Strategy)
SELECT_BY_CHOICES: tuple[str, ...] = get_args(SelectBy)

# Fields that decide the model's architecture and weights layout (`build_model` reads only these).
MODEL_FIELDS = ("attention", "attention_score", "region_positions", "embed_dim", "lstm_units", "layers",
                "dense_units", "attn_units", "decoder_state", "dropout", "l2", "mixed_precision")
# Where inputs come from, not what is trained: never part of the model settings.
PLUMBING_FIELDS = ("feature_store",)
# How captions are searched at evaluation/captioning time (`medcap.model.decoding.DecodeOptions` has these
# fields, and max_words).
DECODE_FIELDS = ("beam_size", "length_penalty", "min_words", "block_repeats", "no_repeat_ngram", "memory_k",
                 "memory_lambda", "memory_temperature", "facts_constrain", "facts_silent")
# Keys older medcap versions kept in `extra`, now typed fields.
_LEGACY_EXTRA = ("attention_score", "region_positions", "feature_store")
# Fields older versions saved that no longer mean anything (dropped quietly).
_RETIRED = ("beam",)

# Lower bounds (inclusive unless in _EXCLUSIVE) and upper bounds (exclusive) of numeric fields.
_MIN: dict[str, float] = {"seed": 0, "split_seed": 0, "fold": 0, "n_folds": 2, "beam_size": 1, "length_penalty": 0.0,
                          "min_words": 0, "no_repeat_ngram": 0, "memory_k": 0, "memory_lambda": 0.0,
                          "memory_temperature": 0.0, "max_words": 1, "min_count": 1, "augment": 0, "embed_dim": 1,
                          "lstm_units": 1,
                          "layers": 1, "dense_units": 1, "attn_units": 1, "dropout": 0.0, "l2": 0.0,
                          "learning_rate": 0.0, "batch_size": 1, "epochs": 1, "patience": 1, "lr_patience": 1,
                          "lr_factor": 0.0, "min_lr": 0.0}
_EXCLUSIVE_MIN = ("lr_factor", "memory_temperature")
_MAX: dict[str, float] = {"dropout": 1.0}
_MAX_INCLUSIVE: dict[str, float] = {"lr_factor": 1.0, "memory_lambda": 1.0}


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RunConfig:
    """Every setting of one run. CLI flags override preset values; the whole thing is saved as JSON."""

    # identity and data
    name: str = field(default="", metadata=_help("label in the run folder name (sanitised)"))
    preset: Preset = field(default="model-80", metadata=_help(
        "paper preset: model-80 (80/10/10, batch 64) | model-70 (70/15/15, batch 128)"))
    dataset: str = field(default="synthetic", metadata=_help(
        "dataset spec KIND[:PATH], e.g. synthetic or medpix:../shared/data/medpix-dev"))
    protocol: SplitProtocol = field(default="model-80", metadata=_help(
        "split protocol: model-80 (80/10/10), model-70 (70/15/15) or the dataset's own split (official)"))
    split_by: SplitBy = field(default="group", metadata=_help(
        "keep groups (cases/papers/patients) whole, or split images freely"))
    seed: int = field(default=42, metadata=_help(
        "seed of the weights and the batch order (and of the split unless split_seed is set)"))
    split_seed: int | None = field(default=None, metadata=_help("seed of the split (none: seed)"))
    fold: int = field(default=0, metadata=_help("protocol kfold: the fold used as test split (0-based)"))
    n_folds: int = field(default=5, metadata=_help("protocol kfold: number of case-disjoint folds"))
    max_words: int = field(default=20, metadata=_help("longest caption kept, in words"))
    long_captions: LongCaptions = field(default="drop", metadata=_help(
        "what to do with captions over max_words"))
    min_count: int = field(default=2, metadata=_help("vocabulary minimum word count"))
    # image side
    backbone: Backbone = field(default="vgg16", metadata=_help(
        "CNN backbone: vgg16 (offline ImageNet weights) or a Keras one whose weights file is in the Keras cache"))
    augment: int = field(default=0, metadata=_help("augmented views per image in the feature store"))
    # model (paper section 3.1)
    attention: Attention = field(default="grid", metadata=_help(
        "grid: BiLSTM states attend over the 7x7 regions | self: self-attention over the prefix"))
    attention_score: AttentionScore = field(default="additive", metadata=_help(
        "grid attention score function"))
    region_positions: bool = field(default=True, metadata=_help(
        "grid attention: add a learned position vector to each of the 49 regions"))
    embed_dim: int = field(default=256, metadata=_help("word embedding size"))
    lstm_units: int = field(default=256, metadata=_help("BiLSTM units per direction"))
    layers: int = field(default=1, metadata=_help("stacked BiLSTM layers"))
    dense_units: int = field(default=256, metadata=_help("decoder width"))
    attn_units: int = field(default=256, metadata=_help("attention width"))
    decoder_state: DecoderState = field(default="last_context", metadata=_help(
        "last prefix position's BiLSTM state (+ attended context) into the decoder; "
        "runs saved before this setting load as none"))
    dropout: float = field(default=0.4, metadata=_help("dropout rate, in [0, 1)"))
    l2: float = field(default=1e-5, metadata=_help("L2 weight penalty"))
    # optimisation (paper section 4.2)
    learning_rate: float = field(default=1e-3, metadata=_help("Adam learning rate"))
    batch_size: int = field(default=64, metadata=_help("(prefix, next word) pairs per batch (preset's)"))
    epochs: int = field(default=12, metadata=_help("maximum epochs (early stopping may end sooner)"))
    patience: int = field(default=5, metadata=_help("early-stopping patience in epochs (best weights restored)"))
    lr_patience: int = field(default=2, metadata=_help("reduce-on-plateau patience in epochs"))
    lr_factor: float = field(default=0.5, metadata=_help("reduce-on-plateau factor, in (0, 1]"))
    min_lr: float = field(default=1e-5, metadata=_help("reduce-on-plateau floor"))
    mixed_precision: bool = field(default=False, metadata=_help("mixed_float16 (for GPUs)"))
    strategy: Strategy = field(default="default", metadata=_help(
        "distribution strategy: default (one device), mirrored (this machine's GPUs), multi_worker "
        "(MultiWorkerMirroredStrategy over the machines in TF_CONFIG)"))
    select_by: SelectBy = field(default="val_loss", metadata=_help(
        "which epoch is kept and drives early stopping: val_loss, or val_cider (greedy captions of the "
        "validation split scored by CIDEr each epoch: the checkpoint that writes the best captions)"))
    # decoding (evaluation and captioning); the defaults are plain greedy search
    beam_size: int = field(default=1, metadata=_help("beam size (1: greedy)"))
    length_penalty: float = field(default=0.0, metadata=_help(
        "beam search GNMT length penalty alpha (0: raw sum of log-probabilities)"))
    min_words: int = field(default=0, metadata=_help("no <end> before this many words"))
    block_repeats: bool = field(default=False, metadata=_help("never repeat the previous word"))
    no_repeat_ngram: int = field(default=0, metadata=_help("never repeat an n-gram of this size (0: off)"))
    memory_k: int = field(default=0, metadata=_help(
        "retrieval-aware decoding: nearest training captions mixed into each next-word distribution (0: off)"))
    memory_lambda: float = field(default=0.3, metadata=_help("weight of the caption memory, in [0, 1]"))
    memory_temperature: float = field(default=0.1, metadata=_help(
        "softmax temperature of the neighbours' cosine similarities"))
    facts_constrain: bool = field(default=False, metadata=_help(
        "never write a word that contradicts a sure fact of the image's findings line (needs --facts)"))
    facts_silent: bool = field(default=False, metadata=_help(
        "with --facts-constrain: the caption never states a fact the findings line is not sure of "
        "(every word of that fact banned), so it states only what the line states"))
    # clinical facts: image-level fact predictors beside the captioner
    facts: bool = field(default=False, metadata=_help(
        "fit fact predictors (modality, plane, body region) on the training labels after training: a findings "
        "line with every caption (facts.json; datasets without labels get none)"))
    # plumbing: where the inputs come from, not a model setting
    feature_store: str | None = field(default=None, metadata=_help(
        "train on this pre-extracted feature store folder (skip extraction)"))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, source: str = "") -> None:
        """ValueError naming the first field whose value has the wrong type, is not a choice or is out of range.

        Ints given for float fields become floats. `source` (e.g. "config.json") prefixes the message.
        """
        prefix = f"{source}: " if source else ""
        hints = _field_types()
        for f in dataclasses.fields(self):
            given = getattr(self, f.name)
            problem, value = _check(f.name, hints[f.name], given)
            if problem:
                raise ValueError(f"{prefix}{f.name} {problem}, got {given!r}")
            object.__setattr__(self, f.name, value)
        if self.fold >= self.n_folds:
            raise ValueError(f"{prefix}fold must be < n_folds ({self.n_folds}), got {self.fold}")

    @property
    def effective_split_seed(self) -> int:
        """The seed of the split: `split_seed`, else `seed` (runs saved before split_seed used seed for both)."""
        return self.seed if self.split_seed is None else self.split_seed

    def decode_settings(self) -> dict[str, Any]:
        """The decoding settings (DECODE_FIELDS) of this run."""
        return {k: getattr(self, k) for k in DECODE_FIELDS}

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> RunConfig:
        """Build a config from a paper preset (`model-80`, `model-70`) plus overrides (None ignored)."""
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESET_CHOICES)}, got {preset!r}")
        unknown = sorted(set(overrides) - set(field_names()))
        if unknown:
            raise ValueError(f"unknown run settings {unknown}; known: {', '.join(field_names())}")
        values = dict(PRESETS[preset])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_settings(self) -> dict[str, Any]:
        """The settings that decide the model's architecture (MODEL_FIELDS)."""
        return {k: getattr(self, k) for k in MODEL_FIELDS}

    @classmethod
    def from_dict(cls, data: Any, source: str = "run settings") -> RunConfig:
        """Rebuild from JSON; unknown keys (a newer or older medcap) are logged and ignored.

        Settings older versions kept in `extra` (attention_score, region_positions, feature_store) are
        read into their fields; runs saved before `decoder_state` existed load as "none" (no state path).
        A wrong-typed or unknown value raises ValueError naming `source`, the field and what was expected.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source}: run settings must be a JSON object, got {type(data).__name__}")
        data = {"decoder_state": "none", **data}
        extra = data.pop("extra", None) or {}
        if not isinstance(extra, dict):
            raise ValueError(f"{source}: extra must be a JSON object, got {extra!r}")
        for key in _LEGACY_EXTRA:
            if key in extra and key not in data:
                data[key] = extra[key]
        for key in _RETIRED:
            data.pop(key, None)
        known = set(field_names())
        unknown = sorted(set(data) - known) + [f"extra.{k}" for k in sorted(set(extra) - set(_LEGACY_EXTRA))]
        if unknown:
            log.warning("%s: ignoring unknown keys %s", source, unknown)
        values = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


def field_names() -> tuple[str, ...]:
    """Names of every RunConfig field, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(RunConfig))


def field_help(name: str) -> str:
    """One-line help of a field (shared by the CLI and the dashboard)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(RunConfig)}[name]


def default(name: str) -> Any:
    """A field's default value (before any preset)."""
    return {f.name: f.default for f in dataclasses.fields(RunConfig)}[name]


def choices(name: str) -> tuple[str, ...] | None:
    """The allowed values of a Literal field (None for free fields)."""
    return _literal_choices(_field_types()[name])


def value_type(name: str) -> type:
    """The Python type of a field's value: str, int, float or bool (str for choice and optional-path fields)."""
    hint = _field_types()[name]
    if _literal_choices(hint) is not None:
        return str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def _literal_choices(hint: Any) -> tuple[str, ...] | None:
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


_TYPE_WORDS = {int: "an int", float: "a number", bool: "true or false", str: "a string"}


def _check(name: str, hint: Any, value: Any) -> tuple[str | None, Any]:
    """(problem or None, value as stored) for one field."""
    options = _literal_choices(hint)
    if options is not None:
        return (None if value in options and isinstance(value, str) else f"must be one of {', '.join(options)}"), value
    optional = type(None) in typing.get_args(hint)
    if value is None:
        return (None if optional else f"must be {_TYPE_WORDS[value_type(name)]}"), value
    kind = value_type(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if not ok:
        return f"must be {_TYPE_WORDS[kind]}{' or null' if optional else ''}", value
    if kind is float and not math.isfinite(value):
        return "must be a finite number", value
    return _range_problem(name, value), value


def _range_problem(name: str, value: Any) -> str | None:
    low, high, top = _MIN.get(name), _MAX.get(name), _MAX_INCLUSIVE.get(name)
    if low is not None:
        if name in _EXCLUSIVE_MIN and value <= low:
            return f"must be > {low:g}"
        if value < low:
            return f"must be >= {low:g}"
    if high is not None and value >= high:
        return f"must be < {high:g}"
    if top is not None and value > top:
        return f"must be <= {top:g}"
    return None


# `train` flags whose name is not the field name with dashes.
