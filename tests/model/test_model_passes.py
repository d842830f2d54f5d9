"""The model owns its inference passes and its feature scale; runs saved by older code still load.

- `model.passes.step(model.passes.encode(x), prefix)` equals the full model for every attention kind,
  decoder_state and BiLSTM depth (shared layer objects, so shared weights);
- the model takes raw features: its weightless FeatureScale layers apply the run's `feature_scale`;
- `tests/support/runs/legacy_run` was written by commit 5c9cdba (see make_legacy_run.py there): it loads with
  today's code, its weight file has exactly today's weight paths and it decodes to the recorded outputs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medcap.config import RunConfig  # noqa: E402
from medcap.model import FeatureScale, build_model, greedy_search  # noqa: E402
from tests.conftest import PROJECT_ROOT  # noqa: E402

LEGACY = PROJECT_ROOT / "tests" / "support" / "runs" / "legacy_run"
V, D = 30, 12
SCALE = {"global": 0.25, "grid": 3.0}
PREFIX = np.array([[2, 5, 6, 0, 0], [2, 0, 0, 0, 0], [2, 7, 8, 9, 10], [2, 29, 4, 0, 0]], dtype=np.int32)


def tiny_cfg(**kw: object) -> RunConfig:
    base = {"embed_dim": 8, "lstm_units": 8, "dense_units": 16, "attn_units": 8, "dropout": 0.2, "seed": 0}
    base.update(kw)
    return RunConfig(**base)


def raw_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((n, D), dtype=np.float32) * 5, rng.random((n, 49, 512), dtype=np.float32) * 2)


def encode(model: object, g: np.ndarray, grid: np.ndarray) -> list[np.ndarray]:
    """The encode pass's outputs as arrays (what the decoders keep per image)."""
    out = model.passes.encode([g, grid], training=False)
    return [np.asarray(t) for t in (out if isinstance(out, list | tuple) else [out])]


@pytest.mark.parametrize("attention", ["grid", "self"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("state", ["none", "last", "last_context"])
def test_step_on_encoded_image_equals_the_full_model(attention: str, layers: int, state: str) -> None:
    keras.utils.set_random_seed(7)
    model = build_model(tiny_cfg(attention=attention, layers=layers, decoder_state=state), V, D, SCALE)
    g, grid = raw_features(len(PREFIX), seed=1)
    full = model({"global": g, "grid": grid, "prefix": PREFIX}, training=False)
    encoded = encode(model, g, grid)
    assert len(encoded) == (2 if attention == "grid" else 1)  # image (+ region keys, computed once per image)
    step = model.passes.step([*encoded, PREFIX], training=False)
    np.testing.assert_allclose(np.asarray(step["probs"]), np.asarray(full["probs"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(step["attention"]), np.asarray(full["attention"]), rtol=1e-5, atol=1e-6)
    assert model.passes.grid_maps == (attention == "grid")
    # the passes are the model's own layer objects: no variable of their own
    own = {id(v) for v in model.weights}
    assert {id(v) for v in model.passes.encode.weights} <= own
    assert {id(v) for v in model.passes.step.weights} <= own
    assert len(model.passes.step.weights) > 0


def test_passes_follow_new_weights_and_the_grid() -> None:
    """Loading other weights into the model changes what the passes compute (shared variables)."""
    cfg = tiny_cfg(layers=2, decoder_state="last_context")
    keras.utils.set_random_seed(1)
    model = build_model(cfg, V, D)
    keras.utils.set_random_seed(2)
    other = build_model(cfg, V, D)
    g, grid = raw_features(4, seed=2)
    before = np.asarray(model.passes.step([*encode(model, g, grid), PREFIX])["probs"])
    model.set_weights(other.get_weights())
    after = np.asarray(model.passes.step([*encode(model, g, grid), PREFIX])["probs"])
    want = np.asarray(other({"global": g, "grid": grid, "prefix": PREFIX}, training=False)["probs"])
    assert np.abs(before - after).max() > 1e-4
    np.testing.assert_allclose(after, want, rtol=1e-5, atol=1e-6)


def test_mixed_precision_passes_match_the_full_model() -> None:
    model = build_model(tiny_cfg(mixed_precision=True), V, D, SCALE)
    g, grid = raw_features(len(PREFIX), seed=3)
    full = model({"global": g, "grid": grid, "prefix": PREFIX}, training=False)
    step = model.passes.step([*encode(model, g, grid), PREFIX])
    assert step["probs"].dtype == "float32" and step["attention"].dtype == "float32"
    np.testing.assert_allclose(np.asarray(step["probs"]), np.asarray(full["probs"]), atol=1e-3)


@pytest.mark.parametrize("attention", ["grid", "self"])
def test_the_model_scales_raw_features_itself(attention: str) -> None:
    """Raw features into a model built with a scale == scaled features into the same weights at scale 1."""
    cfg = tiny_cfg(attention=attention, decoder_state="last")
    scaled = build_model(cfg, V, D, SCALE)
    plain = build_model(cfg, V, D)  # no feature_scale: 1
    plain.set_weights(scaled.get_weights())
    assert len(plain.weights) == len(scaled.weights)  # the scale adds no variable
    g, grid = raw_features(len(PREFIX), seed=4)
    a = scaled({"global": g, "grid": grid, "prefix": PREFIX}, training=False)
    b = plain({"global": g * np.float32(0.25), "grid": grid * np.float32(3.0), "prefix": PREFIX}, training=False)
    np.testing.assert_allclose(np.asarray(a["probs"]), np.asarray(b["probs"]), rtol=1e-6, atol=1e-7)
    c = plain({"global": g, "grid": grid, "prefix": PREFIX}, training=False)
    assert np.abs(np.asarray(a["probs"]) - np.asarray(c["probs"])).max() > 1e-5  # the scale matters
    scales = {layer.name: layer.scale for layer in scaled.layers if isinstance(layer, FeatureScale)}
    assert scales["global_scale"] == 0.25
    assert {layer.name: layer.scale for layer in plain.layers if isinstance(layer, FeatureScale)}["global_scale"] == 1.0
    assert all(not layer.weights for layer in scaled.layers if isinstance(layer, FeatureScale))


def test_feature_scale_layer_config_round_trip() -> None:
    layer = FeatureScale(0.5, name="s")
    clone = FeatureScale.from_config(layer.get_config())
    assert (clone.scale, clone.name, clone.trainable) == (0.5, "s", False)
    np.testing.assert_array_equal(np.asarray(clone(np.array([[2.0, -4.0]], dtype=np.float32))), [[1.0, -2.0]])


def test_a_keras_model_without_passes_is_refused() -> None:
    inp = keras.Input(shape=(3,))
    other = keras.Model(inp, keras.layers.Dense(2)(inp))
    vocab = type("V", (), {"words": ["<pad>", "<unk>", "<start>", "<end>", "a"], "pad_id": 0, "unk_id": 1,
                           "start_id": 2, "end_id": 3})()
    with pytest.raises(TypeError, match="build_model"):
        greedy_search(other, np.zeros((1, 3), np.float32), None, vocab)


# --- a run folder written by the previous code (commit 5c9cdba) ---

def _legacy_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_legacy_run", LEGACY / "make_legacy_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def legacy() -> tuple[object, dict, np.ndarray, np.ndarray]:
    from medcap.inference.opened import load_run

    loaded = load_run(LEGACY)
    expected = json.loads((LEGACY / "expected.json").read_text())
    g, grid = _legacy_generator().fixed_features()
    return loaded, expected, g, grid


def test_legacy_run_weight_paths_are_unchanged(legacy: tuple, tmp_path: Path) -> None:
    """Today's model saves exactly the weight paths (and shapes) the old run's weight file holds."""
    h5py = pytest.importorskip("h5py")
    loaded, _, _, _ = legacy

    def model_datasets(path: Path) -> dict[str, tuple[int, ...]]:
        found: dict[str, tuple[int, ...]] = {}

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                found[name] = obj.shape

        with h5py.File(path, "r") as f:
            f["layers"].visititems(visit)
        return found

    out = tmp_path / "now.weights.h5"
    loaded.model.save_weights(out)
    old = model_datasets(LEGACY / "weights" / "best.weights.h5")
    assert len(old) == 30 and "dense_5/vars/0" in old  # six Dense layers, addressed by order
    assert model_datasets(out) == old


def test_legacy_run_loads_with_its_feature_scale(legacy: tuple) -> None:
    loaded, expected, _, _ = legacy
    assert loaded.config["feature_scale"] == expected["feature_scale"]
    scales = {layer.name: layer.scale for layer in loaded.model.layers if isinstance(layer, FeatureScale)}
    assert scales == {"global_scale": expected["feature_scale"]["global"],
                      "grid_scale": expected["feature_scale"]["grid"]}
    assert scales["global_scale"] != pytest.approx(1.0) and scales["grid_scale"] != pytest.approx(1.0)


def test_legacy_run_full_model_gives_the_old_probs_on_raw_features(legacy: tuple) -> None:
    loaded, expected, g, grid = legacy
    prefix = np.array(expected["prefixes"], dtype=np.int32)
    out = loaded.model({"global": g, "grid": grid.reshape(len(g), 49, 512), "prefix": prefix}, training=False)
    np.testing.assert_allclose(np.asarray(out["probs"]), expected["probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["attention"]), expected["attention"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["greedy", "beam3"])
def test_legacy_run_decodes_the_old_captions(legacy: tuple, mode: str) -> None:
    loaded, expected, g, grid = legacy
    caps = loaded.decode(g, grid, loaded.decode_options(beam_size=1 if mode == "greedy" else 3))
    want = expected[mode]
    assert [c.token_ids for c in caps] == [w["token_ids"] for w in want]
    assert [c.text for c in caps] == [w["text"] for w in want]
    assert any(c.words for c in caps)  # real captions, not all empty
    for c, w in zip(caps, want, strict=True):
        np.testing.assert_allclose(c.probs, w["probs"], rtol=1e-5)
        assert c.score == pytest.approx(w["score"], rel=1e-5)
        if w["attention"] is not None:  # the old code stored the mean over prefix positions
            np.testing.assert_allclose(c.attention_mean.reshape(-1, 49), w["attention"], atol=1e-6)


def test_runs_without_feature_scale_get_scale_one(legacy: tuple, tmp_path: Path) -> None:
    """An old config with no `feature_scale` (or null) rebuilds at scale 1."""
    import shutil

    from medcap.inference.opened import load_run

    run = tmp_path / "old"
    shutil.copytree(LEGACY, run, ignore=shutil.ignore_patterns("*.py", "expected.json"))
    config = json.loads((run / "config.json").read_text())
    for value in ("absent", None):
        if value == "absent":
            config.pop("feature_scale", None)
        else:
            config["feature_scale"] = None
        (run / "config.json").write_text(json.dumps(config))
        loaded = load_run(run)
        scales = {layer.name: layer.scale for layer in loaded.model.layers if isinstance(layer, FeatureScale)}
        assert scales == {"global_scale": 1.0, "grid_scale": 1.0}
