"""The paper's CNN + BiLSTM + attention next-word model (section 3.1 made precise)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from medcap.config import ATTENTION_CHOICES, DECODER_STATE_CHOICES, RunConfig
from medcap.model.layers import (
    GRID_CHANNELS,
    GRID_REGIONS,
    FeatureScale,
    GridAttention,
    LastState,
    PaddingMask,
    ZeroAttention,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class InferencePasses:
    """A model's decoding passes: sub-models built from the full model's own layer objects (shared weights).

    encode: [global (B, D), grid (B, 49, 512)] raw features -> [image (B, H), keys (B, 49, A)]
            (attention="grid") or [image (B, H)] (attention="self"); run once per image.
    step:   [*encoded, prefix (B, T)] -> {"probs": (B, V), "attention": (B, T, 49)}; run once per word.
    `step(encode(x), prefix)` equals the full model on (x, prefix) at inference (dropout off).
    """

    encode: keras.Model
    step: keras.Model
    grid_maps: bool  # whether "attention" is a real map over the grid (False for attention="self")


@keras.saving.register_keras_serializable(package="medcap")
class CaptionModel(keras.Model):
    """Functional model whose compiled loss and metrics see only the "probs" output.

    Training targets are the plain next-word ids (B,); the "attention" output is a by-product.
    History keys are therefore `loss`, `accuracy`, `val_loss`, `val_accuracy`.
    `build_model` attaches the model's `passes` (InferencePasses) for decoding.
    """

    passes: InferencePasses | None = None

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, **kwargs: Any):
        if isinstance(y_pred, dict):
            y_pred = y_pred["probs"]  # (B, V)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, **kwargs)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None):
        if isinstance(y_pred, dict):
            y_pred = y_pred["probs"]  # (B, V)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)


@dataclass(frozen=True)
class _Layers:
    """Every layer of the model, created once and wired by the full model and the inference passes."""

    global_scale: FeatureScale
    grid_scale: FeatureScale
    global_dropout: keras.layers.Layer
    image_dense: keras.layers.Layer
    prefix_mask: keras.layers.Layer
    embedding: keras.layers.Layer
    embed_dropout: keras.layers.Layer
    bilstms: tuple[keras.layers.Layer, ...]
    attention: keras.layers.Layer  # GridAttention or AdditiveAttention
    zero_attention: keras.layers.Layer | None
    pool: keras.layers.Layer
    context_proj: keras.layers.Layer | None
    last_state: keras.layers.Layer | None
    state_proj: keras.layers.Layer | None
    last_context: keras.layers.Layer | None
    last_context_proj: keras.layers.Layer | None
    merge: keras.layers.Layer
    decoder_dense: keras.layers.Layer
    decoder_dropout: keras.layers.Layer
    probs: keras.layers.Layer
    attention_out: keras.layers.Layer


def _scale_of(feature_scale: Mapping[str, float] | None, key: str) -> float:
    value = (feature_scale or {}).get(key, 1.0)
    return 1.0 if value is None else float(value)


def _make_layers(cfg: RunConfig, vocab_size: int, feature_scale: Mapping[str, float] | None) -> _Layers:
    policy = "mixed_float16" if cfg.mixed_precision else "float32"
    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None

    def dense(units: int, name: str, activation: str | None = "relu") -> keras.layers.Dense:
        return keras.layers.Dense(units, activation=activation, kernel_regularizer=reg, name=name, dtype=policy)

    grid = cfg.attention == "grid"
    ctx_units = cfg.attn_units if grid else 2 * cfg.lstm_units
    with_state = cfg.decoder_state in ("last", "last_context")
    with_last_ctx = cfg.decoder_state == "last_context"
    if grid:
        attention: keras.layers.Layer = GridAttention(
            cfg.attn_units,
            score=cfg.attention_score,
            region_positions=cfg.region_positions,
            l2=cfg.l2,
            name="grid_attention",
            dtype=policy,
        )
    else:
        attention = keras.layers.AdditiveAttention(name="self_attention", dtype=policy)
    return _Layers(
        global_scale=FeatureScale(_scale_of(feature_scale, "global"), name="global_scale"),
        grid_scale=FeatureScale(_scale_of(feature_scale, "grid"), name="grid_scale"),
        global_dropout=keras.layers.Dropout(cfg.dropout, name="global_dropout", dtype=policy),
        image_dense=dense(cfg.dense_units, "image_dense"),
        prefix_mask=PaddingMask(name="prefix_mask"),
        embedding=keras.layers.Embedding(vocab_size, cfg.embed_dim, mask_zero=True, name="embedding", dtype=policy),
        embed_dropout=keras.layers.Dropout(cfg.dropout, name="embed_dropout", dtype=policy),
        bilstms=tuple(
            keras.layers.Bidirectional(
                keras.layers.LSTM(cfg.lstm_units, return_sequences=True, dtype=policy), name=f"bilstm_{i}", dtype=policy
            )
            for i in range(cfg.layers)
        ),
        attention=attention,
        zero_attention=None if grid else ZeroAttention(name="zero_attention"),
        pool=keras.layers.GlobalAveragePooling1D(name="context_pool", dtype=policy),
        context_proj=dense(cfg.dense_units, "context_proj", activation=None) if ctx_units != cfg.dense_units else None,
        last_state=LastState(name="last_state", dtype=policy) if with_state else None,
        state_proj=dense(cfg.dense_units, "state_proj", activation=None) if with_state else None,
        last_context=LastState(name="last_context", dtype=policy) if with_last_ctx else None,
        last_context_proj=dense(cfg.dense_units, "last_context_proj", activation=None) if with_last_ctx else None,
        merge=keras.layers.Add(name="merge", dtype=policy),
        decoder_dense=dense(cfg.dense_units, "decoder_dense"),
        decoder_dropout=keras.layers.Dropout(cfg.dropout, name="decoder_dropout", dtype=policy),
        probs=keras.layers.Dense(
            vocab_size, activation="softmax", kernel_regularizer=reg, name="probs", dtype="float32"
        ),
        attention_out=keras.layers.Activation("linear", name="attention", dtype="float32"),
    )


def _image_side(layers: _Layers, global_feats: Any, grid_feats: Any | None) -> list[Any]:
    """Raw features -> [image (B, H)] + [grid regions (B, 49, 512) scaled] when grid is given."""
    img = layers.global_scale(global_feats)  # (B, D) float32
    img = layers.global_dropout(img)  # (B, D)
    img = layers.image_dense(img)  # (B, H)
    return [img] if grid_feats is None else [img, layers.grid_scale(grid_feats)]  # (B, H), (B, 49, 512)


def _prefix_side(layers: _Layers, img: Any, regions: Any | None, prefix: Any, attend_mode: str) -> tuple[Any, Any]:
    """(image (B, H), regions or keys (B, 49, C|A) or None, prefix (B, T)) -> probs (B, V), attention (B, T, 49).

    `attend_mode` is GridAttention's mode: "full" (regions are scaled grid features) or "attend" (keys).
    """
    mask = layers.prefix_mask(prefix)  # (B, T) bool
    seq = layers.embedding(prefix)  # (B, T, E)
    seq = layers.embed_dropout(seq)  # (B, T, E)
    for bilstm in layers.bilstms:
        seq = bilstm(seq)  # (B, T, 2U)

    # attention, then the context averaged over the real prefix positions
    if layers.zero_attention is None:
        context, weights = layers.attention([seq, regions], mode=attend_mode)  # (B, T, A), (B, T, 49)
    else:
        context = layers.attention([seq, seq], mask=[mask, mask])  # (B, T, 2U)
        weights = layers.zero_attention(seq)  # (B, T, 49) zeros
    pooled = layers.pool(context, mask=mask)  # (B, A)
    if layers.context_proj is not None:
        pooled = layers.context_proj(pooled)  # (B, H)

    # decoder: image + attended context (+ the BiLSTM state at the last prefix position)
    merged = [img, pooled]
    if layers.last_state is not None and layers.state_proj is not None:
        merged.append(layers.state_proj(layers.last_state(seq, mask)))  # (B, H)
    if layers.last_context is not None and layers.last_context_proj is not None:  # where the last position looks
        merged.append(layers.last_context_proj(layers.last_context(context, mask)))  # (B, H)
    x = layers.merge(merged)  # (B, H)
    x = layers.decoder_dense(x)  # (B, H)
    x = layers.decoder_dropout(x)  # (B, H)
    return layers.probs(x), layers.attention_out(weights)  # (B, V), (B, T, 49)


def _inputs(global_dim: int) -> tuple[Any, Any, Any]:
    g_in = keras.Input(shape=(global_dim,), dtype="float32", name="global")  # (B, D)
    grid_in = keras.Input(shape=(GRID_REGIONS, GRID_CHANNELS), dtype="float32", name="grid")  # (B, 49, 512)
    prefix_in = keras.Input(shape=(None,), dtype="int32", name="prefix")  # (B, T)
    return g_in, grid_in, prefix_in


def _inference_passes(layers: _Layers, global_dim: int, name: str) -> InferencePasses:
    """Encode and step sub-models wired from `layers` (the full model's objects)."""
    grid = layers.zero_attention is None
    g_in, grid_in, _ = _inputs(global_dim)
    img, *regions = _image_side(layers, g_in, grid_in if grid else None)
    encoded = [img] + ([layers.attention(regions[0], mode="keys")] if grid else [])  # (B, H), (B, 49, A)
    encode = keras.Model(inputs=[g_in, grid_in], outputs=encoded, name=f"{name}_encode")

    enc_in = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=n) for t, n in zip(encoded, ("image", "keys"),
                                                                                  strict=False)]
    prefix_in = keras.Input(shape=(None,), dtype="int32", name="prefix")  # (B, T)
    probs, weights = _prefix_side(layers, enc_in[0], enc_in[1] if grid else None, prefix_in, "attend")
    step = keras.Model(inputs=[*enc_in, prefix_in], outputs={"probs": probs, "attention": weights},
                       name=f"{name}_step")
    return InferencePasses(encode=encode, step=step, grid_maps=grid)


def build_model(
    cfg: RunConfig, vocab_size: int, global_dim: int, feature_scale: Mapping[str, float] | None = None
) -> CaptionModel:
    """Build the functional next-word model and its inference passes (`model.passes`).

    Inputs: {"global": (B, D) float, "grid": (B, 49, 512) float, "prefix": (B, T) int32, 0 = pad}: RAW
    store features; the model multiplies them by `feature_scale` ({"global": g, "grid": r}, 1 when absent
    or None) in weightless layers. The prefix length T is free (masking makes right padding irrelevant).
    Outputs: {"probs": (B, V) float32 softmax, "attention": (B, T, 49) float32}.
    With attention="self" the "grid" input is ignored and "attention" is all zeros.
    Grid attention options: `cfg.attention_score` ("additive" | "dot"), `cfg.region_positions` (bool).
    """
    if cfg.attention not in ATTENTION_CHOICES:
        raise ValueError(f"unknown attention {cfg.attention!r}; choose one of {ATTENTION_CHOICES}")
    if cfg.decoder_state not in DECODER_STATE_CHOICES:
        raise ValueError(f"unknown decoder_state {cfg.decoder_state!r}; choose one of {DECODER_STATE_CHOICES}")
    if vocab_size < 5:
        raise ValueError(f"vocab_size must be >= 5 (4 special tokens + words), got {vocab_size}")
    layers = _make_layers(cfg, vocab_size, feature_scale)
    g_in, grid_in, prefix_in = _inputs(global_dim)
    grid = cfg.attention == "grid"
    img, *regions = _image_side(layers, g_in, grid_in if grid else None)
    probs, weights = _prefix_side(layers, img, regions[0] if grid else None, prefix_in, "full")
    name = f"medcap_{cfg.attention}"
    model = CaptionModel(
        inputs={"global": g_in, "grid": grid_in, "prefix": prefix_in},
        outputs={"probs": probs, "attention": weights},
        name=name,
    )
    # a plain (untracked) attribute: the sub-models add nothing to the model's weights or weight file
    model.passes = _inference_passes(layers, global_dim, name)
    log.debug("built %s: %d parameters", model.name, model.count_params())
    return model


def compile_model(model: keras.Model, cfg: RunConfig, jit_compile: bool | str = "auto") -> keras.Model:
    """Adam(cfg.learning_rate), sparse categorical cross-entropy and accuracy on "probs" only.

    `jit_compile` is passed to Keras ("auto" picks XLA where supported; False traces faster on CPU).
    """
    model.compile(
        jit_compile=jit_compile,
        optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def traced_probs(model: keras.Model) -> Any:
    """The model's forward pass traced once as a graph, returning {"probs": (B, V)} (inference mode).

    3-4x faster than eager Keras calls on CPU for many batches (next-word metrics over every test pair);
    the same kernels in graph mode, so probabilities agree with eager calls to float rounding (~5e-7).
    """
    fn = tf.function(lambda x: {"probs": model(x, training=False)["probs"]}, reduce_retracing=True)

    def call(x: dict[str, Any], training: bool = False) -> dict[str, Any]:
        if training:
            raise ValueError("traced_probs is for inference only")
        return fn(x)

    return call


def has_grid_attention(model: Any) -> bool:
    """Whether the model's "attention" output is a real map over the grid (False for attention="self")."""
    passes = getattr(model, "passes", None)
    if isinstance(passes, InferencePasses):
        return passes.grid_maps
    layers = getattr(model, "layers", None)
    if layers is None:
        return True  # a plain callable (tests): trust its attention output
    return any(isinstance(layer, GridAttention) for layer in layers)
