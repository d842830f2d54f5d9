"""The model's inference passes compiled for decoding: `encode` once per image batch, `step` once per word.

A `build_model` model carries its own encode / step sub-models (`model.passes`, `medcap.model.build`);
`compiled_passes` wraps them in `tf.function`s once and keeps the result on the model. Any other callable
taking {"global", "grid", "prefix"} and returning {"probs", "attention"} (hand-written test models) runs
whole at every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from medcap.model.build import InferencePasses
from medcap.model.layers import GRID_CHANNELS, GRID_REGIONS


@dataclass
class CompiledPasses:
    """Compiled inference passes: `encode` once per image batch, `step` once per generated word."""

    encode: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
    step: Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]]  # -> probs (B, V), mean map (B, 49), last (B, 49)


def _compile_own(passes: InferencePasses) -> CompiledPasses:
    """A `build_model` model's own encode / step sub-models, compiled once."""
    encode_model, step_model = passes.encode, passes.step

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, GRID_REGIONS, GRID_CHANNELS], tf.float32),
        ]
    )
    def encode_tf(g: tf.Tensor, grid: tf.Tensor) -> list[tf.Tensor]:
        out = encode_model([g, grid], training=False)  # [image (B, H), keys (B, 49, A)] or [image (B, H)]
        return list(out) if isinstance(out, list | tuple) else [out]

    @tf.function(reduce_retracing=True)
    def step(*args: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        out = step_model(list(args), training=False)
        probs = tf.cast(out["probs"], tf.float32)  # (B, V)
        att = tf.cast(out["attention"], tf.float32)  # (B, T, 49); decoding prefixes carry no padding
        return probs, tf.reduce_mean(att, axis=1), att[:, -1, :]  # (B, V), (B, 49), (B, 49)

    def encode(g: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(t.numpy() for t in encode_tf(g, grid))  # per-image arrays (b, ...)

    return CompiledPasses(encode=encode, step=step)


def _compile_callable(model: Callable[..., Any]) -> CompiledPasses:
    """A plain callable taking the input dict (hand-written test models): the whole model runs at every step."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, GRID_REGIONS, GRID_CHANNELS], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
        ]
    )
    def step(g: tf.Tensor, grid: tf.Tensor, prefix: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        out = model({"global": g, "grid": grid, "prefix": prefix}, training=False)
        probs = tf.cast(out["probs"], tf.float32)  # (B, V)
        att = tf.cast(out["attention"], tf.float32)  # (B, T, 49)
        return probs, tf.reduce_mean(att, axis=1), att[:, -1, :]  # (B, V), (B, 49), (B, 49)

    return CompiledPasses(encode=lambda g, grid: (g, grid), step=step)


def compiled_passes(model: Any) -> CompiledPasses:
    """The model's compiled inference passes (built once and kept on the model).

    A Keras model must come from `build_model` (it carries its `passes`); any other callable taking
    {"global", "grid", "prefix"} and returning {"probs", "attention"} runs whole at every step.
    """
    cached = getattr(model, "_medcap_compiled_passes", None)
    if cached is not None:
        return cached
    own = getattr(model, "passes", None)
    if isinstance(own, InferencePasses):
        passes = _compile_own(own)
    elif isinstance(model, keras.Model):
        raise TypeError(f"model {model.name!r} has no inference passes: build it with medcap.model.build_model")
    elif callable(model):
        passes = _compile_callable(model)
    else:
        raise TypeError(f"cannot decode with a {type(model).__name__}: not a model")
    with contextlib.suppress(AttributeError):  # objects that refuse new attributes: no caching
        model._medcap_compiled_passes = passes
    return passes
