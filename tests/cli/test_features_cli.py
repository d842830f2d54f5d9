"""`python -m medcap features`: summary, JSON, export, reuse (tiny stand-in backbone, stubbed loader)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medcap.data
import medcap.features.extract as extract
from medcap.cli import main
from medcap.features.backbones import get_backbone
from tests.support.features import make_result, rgb, tiny_backbone, write_colour_images

COLOURS = {"p1": (255, 0, 0), "p2": (0, 255, 0), "p3": (0, 0, 255)}


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    paths = write_colour_images(tmp_path / "img", COLOURS)
    (tmp_path / "img" / "bad.png").write_bytes(b"")
    paths["bad"] = tmp_path / "img" / "bad.png"
    seen: list[str] = []

    def fake_load_records(spec: str, allow_outside_root: bool = False):
        seen.append(spec)
        return make_result(paths)

    def fake_get_backbone(name: str, precision: str = "float32"):
        assert (name, precision) == ("vgg16", "float32")
        return tiny_backbone()

    monkeypatch.setattr(medcap.data, "load_records", fake_load_records)
    monkeypatch.setattr(extract, "get_backbone", fake_get_backbone)
    return seen


def test_cli_json_export_and_reuse(tmp_path, toy_dataset, capsys):
    out = tmp_path / "out" / "f.npz"
    code = main(["features", "--dataset", "toy:here", "--export", str(out), "--json", "--no-progress"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert toy_dataset == ["toy:here"]
    assert info["reused"] is False
    assert info["count"] == 3 and info["candidates"] == 4 and info["skipped"] == 1
    assert info["skipped_images"][0]["image_id"] == "bad"
    assert info["global_dim"] == 3 and info["grid_shape"] == [7, 7, 3]
    assert info["weights_source"] == "test weights"
    assert info["images_per_s"] > 0

    with np.load(out) as npz:
        assert list(npz["ids"]) == ["p1", "p2", "p3"]
        assert npz["grid"].shape == (3, 7, 7, 3) and npz["global"].shape == (3, 3)
        np.testing.assert_allclose(npz["global"][1], rgb(COLOURS["p2"]), atol=1e-3)

    code = main(["features", "--dataset", "toy:here", "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "reused:         yes" in text
    assert "images:         3 of 4 (1 skipped)" in text
    assert "bad: " in text


def test_cli_unknown_backbone_is_a_clean_error(toy_dataset, monkeypatch, capsys):
    monkeypatch.setattr(extract, "get_backbone", get_backbone)  # the real registry
    code = main(["features", "--dataset", "toy:here", "--backbone", "lenet", "--no-progress"])
    assert code == 2
    assert capsys.readouterr().out == ""
