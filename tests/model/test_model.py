"""The captioning model: shapes, normalisation, masking, both attention kinds, rebuild from config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medcap.config import RunConfig  # noqa: E402
from medcap.model import (  # noqa: E402
    GridAttention,
    PaddingMask,
    ZeroAttention,
    build_model,
    compile_model,
    custom_objects,
    has_grid_attention,
)

V, D, N = 30, 12, 6


def tiny_cfg(**kw: object) -> RunConfig:
    base = {"embed_dim": 16, "lstm_units": 16, "dense_units": 16, "attn_units": 8, "dropout": 0.2, "seed": 0}
    base.update(kw)
    return RunConfig(**base)


def inputs(prefix: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(prefix)
    return {
        "global": rng.random((n, D), dtype=np.float32),
        "grid": rng.random((n, 49, 512), dtype=np.float32),
        "prefix": np.asarray(prefix, dtype=np.int32),
    }


PREFIX = np.array(
    [[2, 5, 6, 0, 0], [2, 0, 0, 0, 0], [2, 7, 8, 9, 10], [2, 4, 0, 0, 0], [2, 5, 5, 5, 0], [2, 29, 0, 0, 0]]
)


def test_output_shapes_and_normalisation() -> None:
    model = build_model(tiny_cfg(), V, D)
    out = model(inputs(PREFIX), training=False)
    probs, att = np.asarray(out["probs"]), np.asarray(out["attention"])
    assert probs.shape == (N, V)
    assert att.shape == (N, 5, 49)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(att.sum(axis=2), 1.0, atol=1e-5)
    assert (att >= 0).all() and (probs > 0).all()
    assert has_grid_attention(model)


@pytest.mark.parametrize("attention", ["grid", "self"])
def test_padding_does_not_change_probs(attention: str) -> None:
    model = build_model(tiny_cfg(attention=attention), V, D)
    x = inputs(PREFIX)
    short = model({**x, "prefix": PREFIX[:, :5]}, training=False)["probs"]
    longer = np.zeros((N, 12), dtype=np.int32)
    longer[:, :5] = PREFIX
    padded = model({**x, "prefix": longer}, training=False)["probs"]
    np.testing.assert_allclose(np.asarray(short), np.asarray(padded), atol=1e-5)
    # the prefix does matter: a different word changes the prediction
    other = PREFIX.copy()
    other[:, 1] = 11
    changed = model({**x, "prefix": other}, training=False)["probs"]
    pad_diff = np.abs(np.asarray(padded) - np.asarray(short)).max()
    assert np.abs(np.asarray(changed) - np.asarray(short)).max() > max(1e-6, 10 * pad_diff)


def test_self_attention_ignores_grid_and_has_zero_maps() -> None:
    model = build_model(tiny_cfg(attention="self"), V, D)
    assert not has_grid_attention(model)
    x = inputs(PREFIX)
    a = model(x, training=False)
    b = model({**x, "grid": np.zeros_like(x["grid"])}, training=False)
    np.testing.assert_allclose(np.asarray(a["probs"]), np.asarray(b["probs"]), atol=1e-6)
    assert np.asarray(a["attention"]).shape == (N, 5, 49)
    assert not np.asarray(a["attention"]).any()


def test_grid_changes_prediction_with_grid_attention() -> None:
    model = build_model(tiny_cfg(), V, D)
    x = inputs(PREFIX)
    a = model(x, training=False)["probs"]
    b = model({**x, "grid": np.zeros_like(x["grid"])}, training=False)["probs"]
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4


@pytest.mark.parametrize("score", ["additive", "dot"])
def test_rebuild_from_config_and_weights_gives_identical_outputs(tmp_path: Path, score: str) -> None:
    cfg = tiny_cfg(layers=2, attention_score=score)
    model = build_model(cfg, V, D)
    x = inputs(PREFIX, seed=3)
    before = model(x, training=False)
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    again = build_model(RunConfig.from_dict(cfg.to_dict()), V, D)
    fresh = again(x, training=False)["probs"]
    assert np.abs(np.asarray(fresh) - np.asarray(before["probs"])).max() > 1e-6  # different init
    again.load_weights(path)
    after = again(x, training=False)
    np.testing.assert_array_equal(np.asarray(after["probs"]), np.asarray(before["probs"]))
    np.testing.assert_array_equal(np.asarray(after["attention"]), np.asarray(before["attention"]))


def test_custom_layers_config_round_trip() -> None:
    layer = GridAttention(8, score="dot", region_positions=False, l2=1e-4, name="ga")
    clone = GridAttention.from_config(layer.get_config())
    assert (clone.units, clone.score, clone.region_positions, clone.l2, clone.name) == (8, "dot", False, 1e-4, "ga")
    assert PaddingMask.from_config(PaddingMask(pad_id=0).get_config()).pad_id == 0
    assert ZeroAttention.from_config(ZeroAttention(regions=49).get_config()).regions == 49
    # registered under the medcap package: deserialisable by name
    ser = keras.saving.serialize_keras_object(layer)
    assert ser["registered_name"] == "medcap>GridAttention"
    assert isinstance(keras.saving.deserialize_keras_object(ser), GridAttention)
    assert set(custom_objects()) == {"FeatureScale", "GridAttention", "LastState", "PaddingMask", "ZeroAttention"}
    with pytest.raises(ValueError, match="score"):
        GridAttention(8, score="cosine")


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="attention"):
        build_model(tiny_cfg(attention="spatial"), V, D)
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(tiny_cfg(), 3, D)


def test_compiled_loss_and_accuracy_are_on_the_next_word_probs() -> None:
    cfg = tiny_cfg(l2=0.0)
    model = compile_model(build_model(cfg, V, D), cfg, jit_compile=False)
    x = inputs(PREFIX)
    probs = np.asarray(model(x, training=False)["probs"])
    y = probs.argmax(axis=1)
    y[:2] = (y[:2] + 1) % V  # two of six targets are not the top word
    got = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    assert set(got) == {"loss", "accuracy"}
    assert got["loss"] == pytest.approx(-np.log(probs[np.arange(N), y]).mean(), rel=1e-4)
    assert got["accuracy"] == pytest.approx(4 / 6)


def test_mixed_precision_keeps_float32_outputs() -> None:
    model = build_model(tiny_cfg(mixed_precision=True), V, D)
    out = model(inputs(PREFIX[:2]), training=False)
    assert out["probs"].dtype == "float32" and out["attention"].dtype == "float32"
    np.testing.assert_allclose(np.asarray(out["probs"]).sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("state", ["last", "last_context"])
def test_decoder_state_uses_the_last_real_position(state: str) -> None:
    """decoder_state last/last_context: state paths reach the decoder; padding changes nothing; "none" has none."""
    with_state = build_model(tiny_cfg(decoder_state=state), V, D)
    without = build_model(tiny_cfg(decoder_state="none"), V, D)
    names = {layer.name for layer in with_state.layers}
    assert {"last_state", "state_proj"} <= names
    assert ("last_context" in names) == (state == "last_context")
    assert "last_state" not in {layer.name for layer in without.layers}
    padded = np.array([[2, 5, 6, 0, 0]])
    trimmed = padded[:, :3]
    a = np.asarray(with_state(inputs(padded), training=False)["probs"])
    b = np.asarray(with_state(inputs(trimmed), training=False)["probs"])
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="decoder_state"):
        build_model(tiny_cfg(decoder_state="mean"), V, D)


def test_configs_without_decoder_state_load_as_none() -> None:
    """Runs saved before the field existed rebuild their original model (no state path)."""
    assert RunConfig().decoder_state == "last_context"
    assert RunConfig.from_dict({"name": "old"}).decoder_state == "none"
    assert RunConfig.from_dict(RunConfig().to_dict()).decoder_state == "last_context"
