"""Atomic writes: the target appears whole or not at all, with ordinary permissions and its own suffixes."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from medcap.base.io import atomic_path, read_json, safe_name, save_npz, save_weights, write_json


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    target = tmp_path / "status.json"
    write_json(target, {"state": "running"})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"state": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_written_files_are_world_readable(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", [1])
    save_npz(tmp_path / "b.npz", x=np.arange(3))
    for name in ("a.json", "b.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert np.load(tmp_path / "b.npz")["x"].tolist() == [0, 1, 2]


def test_temp_name_keeps_the_whole_target_name(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "best.weights.h5") as tmp:
        assert tmp.name.endswith("-best.weights.h5") and tmp.name.startswith(".tmp")
        tmp.write_bytes(b"x")


def test_save_weights_round_trip(tmp_path: Path) -> None:
    import keras

    tmp_path = tmp_path / "out"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    save_weights(model, tmp_path / "w.weights.h5")
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(model.get_weights()[0], other.get_weights()[0])
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights.h5"]


@pytest.mark.parametrize(("raw", "safe"), [("../../etc/passwd", "etc-passwd"), ("my run 1", "my-run-1"),
                                          ("..", "unnamed"), ("a/b\\c", "a-b-c")])
def test_safe_name(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe
