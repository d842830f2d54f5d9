"""Custom Keras layers of the captioning model, registered so a run rebuilds from config + weights."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "medcap"
GRID_REGIONS = 49  # 7 x 7 VGG conv5 grid
GRID_CHANNELS = 512


@keras.saving.register_keras_serializable(package=PACKAGE)
class PaddingMask(keras.layers.Layer):
    """Boolean mask of real tokens in a right-padded prefix (id 0 = padding)."""

    def __init__(self, pad_id: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, prefix: Any) -> Any:
        return ops.not_equal(prefix, self.pad_id)  # (B, T) bool

    def compute_output_spec(self, prefix: Any) -> Any:
        return keras.KerasTensor(prefix.shape, dtype="bool")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pad_id": self.pad_id}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeatureScale(keras.layers.Layer):
    """Multiply raw features by a fixed factor (the run's `feature_scale`); float32, no variables.

    The factor is a config argument, so weight files hold nothing for this layer.
    """

    def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(trainable=False, **kwargs)
        self.scale = float(scale)

    def call(self, features: Any) -> Any:
        return ops.multiply(ops.cast(features, "float32"), self.scale)  # same shape, float32

    def compute_output_spec(self, features: Any) -> Any:
        return keras.KerasTensor(features.shape, dtype="float32")

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "scale": self.scale}
        config.pop("trainable", None)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class LastState(keras.layers.Layer):
    """The state at the last real (unpadded) position of a right-padded sequence: (B, T, F), mask (B, T) -> (B, F)."""

    def call(self, states: Any, mask: Any) -> Any:
        last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)  # (B,)
        return ops.take_along_axis(states, last[:, None, None], axis=1)[:, 0, :]  # (B, F)

    def compute_mask(self, states: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, states_shape: Any, mask_shape: Any = None) -> tuple:
        return (states_shape[0], states_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class GridAttention(keras.layers.Layer):
    """Prefix states attend over the 49 image regions (Bahdanau additive or scaled dot-product).

    Keys and values are the regions projected by one Dense(units) (plus a learned embedding of each
    region's position when `region_positions`, so the context can say *where* the attended region is).
    Returns `[context (B, T, units), weights (B, T, regions)]`; weights sum to 1 over the regions and
    are computed in float32 (also under mixed precision).

    `mode` splits the layer for decoding (same weights): "keys" maps regions (B, R, C) to their
    keys (B, R, A) (once per image), "attend" takes `[states, keys]` instead of `[states, regions]`.
    """

    MODES = ("full", "keys", "attend")

    def __init__(
        self,
        units: int,
        score: str = "additive",
        regions: int = GRID_REGIONS,
        region_positions: bool = True,
        l2: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if score not in ("additive", "dot"):
            raise ValueError(f"GridAttention: score must be 'additive' or 'dot', got {score!r}")
        self.units = int(units)
        self.score = score
        self.regions = int(regions)
        self.region_positions = bool(region_positions)
        self.l2 = float(l2)
        reg = keras.regularizers.L2(self.l2) if self.l2 > 0 else None
        self.region_proj = keras.layers.Dense(
            self.units, kernel_regularizer=reg, name="region_proj", dtype=self.dtype_policy
        )
        self.query_proj = keras.layers.Dense(
            self.units, use_bias=False, kernel_regularizer=reg, name="query_proj", dtype=self.dtype_policy
        )
        if self.score == "additive":
            self.score_vec = keras.layers.Dense(1, use_bias=False, name="score_vec", dtype=self.dtype_policy)

    def build(self, input_shape: Any) -> None:
        query_shape, region_shape = input_shape
        self.query_proj.build(query_shape)
        self.region_proj.build(region_shape)
        if self.score == "additive":
            self.score_vec.build((*query_shape[:-1], region_shape[1], self.units))
        if self.region_positions:
            self.position = self.add_weight(
                name="position",
                shape=(self.regions, self.units),
                initializer=keras.initializers.RandomNormal(stddev=1.0),
            )

    def call(self, inputs: Any, mask: Any = None, mode: str = "full") -> Any:
        # Padded positions still get (ignored) weights: the pooling downstream masks them.
        if mode == "keys":
            return self.project_regions(inputs)  # (B, R, C) -> (B, R, A)
        states, regions = inputs  # (B, T, Q), (B, R, C) or keys (B, R, A) when mode="attend"
        return self.attend(states, regions if mode == "attend" else self.project_regions(regions))

    def project_regions(self, regions: Any) -> Any:
        """Keys (= values) of the regions: (B, R, C) -> (B, R, A). Decoding computes them once per image."""
        keys = self.region_proj(regions)  # (B, R, A)
        if self.region_positions:
            keys = keys + ops.cast(self.position, keys.dtype)[None]  # (B, R, A)
        return keys

    def attend(self, states: Any, keys: Any) -> list[Any]:
        """[context (B, T, A), weights (B, T, R) float32] of states (B, T, Q) over projected regions (B, R, A)."""
        query = self.query_proj(states)  # (B, T, A)
        if self.score == "additive":
            hidden = ops.tanh(query[:, :, None, :] + keys[:, None, :, :])  # (B, T, R, A)
            scores = ops.squeeze(self.score_vec(hidden), axis=-1)  # (B, T, R)
        else:
            scores = ops.einsum("bta,bra->btr", query, keys) / (self.units**0.5)  # (B, T, R)
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)  # (B, T, R) float32
        context = ops.einsum("btr,bra->bta", ops.cast(weights, keys.dtype), keys)  # (B, T, A)
        return [context, weights]

    def compute_mask(self, inputs: Any, mask: Any = None, mode: str = "full") -> Any:
        return None if mode == "keys" else [None, None]

    def compute_output_shape(self, input_shape: Any, mode: str = "full") -> Any:
        if mode == "keys":
            return (*input_shape[:-1], self.units)
        query_shape, region_shape = input_shape
        return [(*query_shape[:-1], self.units), (*query_shape[:-1], region_shape[1])]

    def compute_output_spec(self, inputs: Any, mask: Any = None, mode: str = "full") -> Any:
        if mode not in self.MODES:
            raise ValueError(f"GridAttention: mode must be one of {self.MODES}, got {mode!r}")
        if mode == "keys":
            return keras.KerasTensor(self.compute_output_shape(inputs.shape, mode), dtype=self.compute_dtype)
        states, regions = inputs
        ctx_shape, w_shape = self.compute_output_shape((states.shape, regions.shape))
        return [
            keras.KerasTensor(ctx_shape, dtype=self.compute_dtype),
            keras.KerasTensor(w_shape, dtype="float32"),
        ]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "score": self.score,
            "regions": self.regions,
            "region_positions": self.region_positions,
            "l2": self.l2,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroAttention(keras.layers.Layer):
    """All-zero attention map (B, T, regions) for attention="self", which has no image maps."""

    def __init__(self, regions: int = GRID_REGIONS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.regions = int(regions)

    def call(self, states: Any, mask: Any = None) -> Any:
        return ops.zeros((ops.shape(states)[0], ops.shape(states)[1], self.regions), dtype="float32")  # (B, T, R)

    def compute_mask(self, states: Any, mask: Any = None) -> None:
        return None

    def compute_output_spec(self, states: Any, mask: Any = None) -> Any:
        return keras.KerasTensor((*states.shape[:-1], self.regions), dtype="float32")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "regions": self.regions}


def custom_objects() -> dict[str, type]:
    """The custom layers by name (for `keras.saving` APIs that ask for them)."""
    return {cls.__name__: cls for cls in (FeatureScale, PaddingMask, GridAttention, LastState, ZeroAttention)}
