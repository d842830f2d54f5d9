"""The paper's CNN + BiLSTM + attention next-word model (section 3.1 made precise)."""

from __future__ import annotations

import logging
from typing import Any

import keras

from medcap.config import ATTENTION_CHOICES, DECODER_STATE_CHOICES, RunConfig
from medcap.model.layers import GRID_CHANNELS, GRID_REGIONS, GridAttention, LastState, PaddingMask, ZeroAttention

log = logging.getLogger(__name__)

@keras.saving.register_keras_serializable(package="medcap")
class CaptionModel(keras.Model):
    """Functional model whose compiled loss and metrics see only the "probs" output.

    Training targets are the plain next-word ids (B,); the "attention" output is a by-product.
    History keys are therefore `loss`, `accuracy`, `val_loss`, `val_accuracy`.
    """

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, **kwargs: Any):
        if isinstance(y_pred, dict):
            y_pred = y_pred["probs"]  # (B, V)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, **kwargs)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None):
        if isinstance(y_pred, dict):
            y_pred = y_pred["probs"]  # (B, V)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def build_model(cfg: RunConfig, vocab_size: int, global_dim: int, max_len: int = 21) -> keras.Model:
    """Build the functional next-word model.

    Inputs: {"global": (B, D) float, "grid": (B, 49, 512) float, "prefix": (B, T) int32, 0 = pad}.
    Outputs: {"probs": (B, V) float32 softmax, "attention": (B, T, 49) float32}.
    The prefix length T is free (masking makes right padding irrelevant); `max_len` is the training
    prefix length and only names the input's expected size in the summary. With attention="self" the
    "grid" input is ignored and "attention" is all zeros.
    Grid attention options: `cfg.attention_score` ("additive" | "dot"), `cfg.region_positions` (bool).
    """
    if cfg.attention not in ATTENTION_CHOICES:
        raise ValueError(f"unknown attention {cfg.attention!r}; choose one of {ATTENTION_CHOICES}")
    if vocab_size < 5:
        raise ValueError(f"vocab_size must be >= 5 (4 special tokens + words), got {vocab_size}")
    del max_len  # the model accepts any prefix length
    policy = "mixed_float16" if cfg.mixed_precision else "float32"
    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None

    def dense(units: int, name: str, activation: str | None = "relu") -> keras.layers.Dense:
        return keras.layers.Dense(units, activation=activation, kernel_regularizer=reg, name=name, dtype=policy)

    g_in = keras.Input(shape=(global_dim,), dtype="float32", name="global")  # (B, D)
    grid_in = keras.Input(shape=(GRID_REGIONS, GRID_CHANNELS), dtype="float32", name="grid")  # (B, 49, 512)
    prefix_in = keras.Input(shape=(None,), dtype="int32", name="prefix")  # (B, T)

    # image encoder
    img = keras.layers.Dropout(cfg.dropout, name="global_dropout", dtype=policy)(g_in)  # (B, D)
    img = dense(cfg.dense_units, "image_dense")(img)  # (B, H)

    # sequence encoder
    mask = PaddingMask(name="prefix_mask")(prefix_in)  # (B, T) bool
    seq = keras.layers.Embedding(vocab_size, cfg.embed_dim, mask_zero=True, name="embedding", dtype=policy)(
        prefix_in
    )  # (B, T, E)
    seq = keras.layers.Dropout(cfg.dropout, name="embed_dropout", dtype=policy)(seq)  # (B, T, E)
    for i in range(cfg.layers):
        seq = keras.layers.Bidirectional(
            keras.layers.LSTM(cfg.lstm_units, return_sequences=True, dtype=policy), name=f"bilstm_{i}", dtype=policy
        )(seq)  # (B, T, 2U)

    # attention, then the context averaged over the real prefix positions
    if cfg.attention == "grid":
        context, weights = GridAttention(
            cfg.attn_units,
            score=cfg.attention_score,
            region_positions=cfg.region_positions,
            l2=cfg.l2,
            name="grid_attention",
            dtype=policy,
        )([seq, grid_in])  # (B, T, A), (B, T, 49)
        ctx_units = cfg.attn_units
    else:
        context = keras.layers.AdditiveAttention(name="self_attention", dtype=policy)(
            [seq, seq], mask=[mask, mask]
        )  # (B, T, 2U)
        weights = ZeroAttention(name="zero_attention")(seq)  # (B, T, 49) zeros
        ctx_units = 2 * cfg.lstm_units
    pooled = keras.layers.GlobalAveragePooling1D(name="context_pool", dtype=policy)(context, mask=mask)  # (B, A)
    if ctx_units != cfg.dense_units:
        pooled = dense(cfg.dense_units, "context_proj", activation=None)(pooled)  # (B, H)

    # decoder: image + attended context (+ the BiLSTM state at the last prefix position)
    merged = [img, pooled]
    if cfg.decoder_state not in DECODER_STATE_CHOICES:
        raise ValueError(f"unknown decoder_state {cfg.decoder_state!r}; choose one of {DECODER_STATE_CHOICES}")
    if cfg.decoder_state in ("last", "last_context"):
        last = LastState(name="last_state", dtype=policy)(seq, mask)  # (B, 2U)
        merged.append(dense(cfg.dense_units, "state_proj", activation=None)(last))  # (B, H)
    if cfg.decoder_state == "last_context":  # where the last position looks now (the mean blurs it)
        last_ctx = LastState(name="last_context", dtype=policy)(context, mask)  # (B, A)
        merged.append(dense(cfg.dense_units, "last_context_proj", activation=None)(last_ctx))  # (B, H)
    x = keras.layers.Add(name="merge", dtype=policy)(merged)  # (B, H)
    x = dense(cfg.dense_units, "decoder_dense")(x)  # (B, H)
    x = keras.layers.Dropout(cfg.dropout, name="decoder_dropout", dtype=policy)(x)  # (B, H)
    probs = keras.layers.Dense(vocab_size, activation="softmax", kernel_regularizer=reg, name="probs", dtype="float32")(
        x
    )  # (B, V)
    weights = keras.layers.Activation("linear", name="attention", dtype="float32")(weights)  # (B, T, 49)

    model = CaptionModel(
        inputs={"global": g_in, "grid": grid_in, "prefix": prefix_in},
        outputs={"probs": probs, "attention": weights},
        name=f"medcap_{cfg.attention}",
    )
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


def has_grid_attention(model: Any) -> bool:
    """Whether the model's "attention" output is a real map over the grid (False for attention="self")."""
    layers = getattr(model, "layers", None)
    if layers is None:
        return True  # a plain callable (tests): trust its attention output
    return any(isinstance(layer, GridAttention) for layer in layers)
