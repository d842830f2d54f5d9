"""medcap.app.viz: attention overlays with a real colormap, labelled figures, safe image reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcap.app import attention, viz


def test_colormap_lut_endpoints_are_inferno() -> None:
    lut = attention.colormap_lut("Inferno")
    assert lut.shape == (256, 3)
    assert tuple(lut[0]) == (0, 0, 4)
    assert tuple(lut[-1]) == (252, 255, 164)


def test_upsample_keeps_a_flat_map_flat_and_has_image_shape() -> None:
    up = attention.upsample_attention(np.full((7, 7), 0.5), (70, 35))
    assert up.shape == (35, 70)
    assert np.allclose(up, 0.5)
    with pytest.raises(ValueError, match="2-D"):
        attention.upsample_attention(np.zeros(7), (10, 10))


def test_overlay_puts_the_top_colour_on_the_attended_cell() -> None:
    att = np.zeros((7, 7))
    att[2:5, 4:7] = 1.0  # a block around row 3, column 5: interpolation keeps its centre at 1
    black = Image.new("RGB", (70, 70))
    over = np.asarray(attention.attention_overlay(black, att, alpha=1.0))  # (70, 70, 3)
    assert tuple(over[35, 55]) == (252, 255, 164)  # centre of cell (3, 5)
    assert tuple(over[0, 0]) == (0, 0, 4)  # far corner: the scale's bottom
    half = np.asarray(attention.attention_overlay(Image.new("RGB", (70, 70), (200, 200, 200)), att, alpha=0.5))
    assert tuple(half[0, 0]) == (100, 100, 102)  # 50/50 blend of grey and the bottom colour


def test_overlay_of_an_all_zero_map_is_the_bottom_colour() -> None:
    over = np.asarray(attention.attention_overlay(Image.new("L", (14, 14)), np.zeros((7, 7)), alpha=1.0))
    assert (over == np.array([0, 0, 4])).all()


def test_attention_figure_has_a_colour_bar_and_scaled_boxes() -> None:
    att = np.random.default_rng(0).random((7, 7))
    boxes = [{"finding": "nodule", "box": [0.1, 0.2, 0.5, 0.6]}, {"finding": "bad"}]
    fig = attention.attention_figure(Image.new("RGB", (200, 100)), att, title="t", boxes=boxes)
    image, heat, legend = fig.data
    assert image.type == "image" and heat.type == "heatmap"
    assert legend.marker.colorbar.title.text == "attention weight"
    assert legend.marker.cmax == pytest.approx(float(att.max()))
    expected = np.asarray(attention.attention_overlay(Image.new("RGB", (200, 100)), att, alpha=0.55))
    assert np.array_equal(np.asarray(image.z), expected)  # exact colormap blend
    assert heat.dx == pytest.approx(200 / 7) and heat.dy == pytest.approx(100 / 7)
    (shape,) = fig.layout.shapes  # the malformed box is skipped
    assert (shape.x0, shape.y0, shape.x1, shape.y1) == pytest.approx((20, 20, 100, 60))
    assert fig.layout.annotations[0].text == "true: nodule"


def test_attention_strip_one_panel_per_word_and_one_colour_bar() -> None:
    maps = np.random.default_rng(1).random((4, 7, 7))
    fig = attention.attention_strip(Image.new("RGB", (64, 64)), maps, ["a", "small", "lesion", "here"], cols=3)
    kinds = [t.type for t in fig.data]
    assert kinds.count("image") == 4 and kinds.count("scatter") == 1
    assert fig.data[-1].marker.showscale
    assert [a.text for a in fig.layout.annotations] == ["1. a", "2. small", "3. lesion", "4. here"]
    with pytest.raises(ValueError):
        attention.attention_strip(Image.new("RGB", (8, 8)), np.zeros((0, 7, 7)), [])


def test_history_figure_labels_train_and_validation() -> None:
    hist = pd.DataFrame({"epoch": [1, 2], "loss": [3.0, 2.0], "val_loss": [3.2, 2.5]})
    fig = viz.history_figure({"run-a": hist, "empty": pd.DataFrame()}, "loss")
    assert [t.name for t in fig.data] == ["run-a · train", "run-a · validation"]
    assert fig.layout.xaxis.title.text == "epoch"
    assert "nats" in fig.layout.yaxis.title.text
    assert fig.layout.title.text == "Loss per epoch"


def test_metric_bars_error_bars_are_asymmetric() -> None:
    table = pd.DataFrame(
        [{"series": "A", "metric": "BLEU-1", "value": 0.3, "lo": 0.25, "hi": 0.4}],
    )
    fig = viz.metric_bars(table)
    (bar,) = fig.data
    assert list(bar.error_y.array) == pytest.approx([0.1])
    assert list(bar.error_y.arrayminus) == pytest.approx([0.05])
    assert fig.layout.yaxis.title.text.startswith("score (BLEU")


def test_small_figures_have_titles_and_units() -> None:
    assert viz.histogram([1, 2, 2], "T", "caption length (words)").layout.xaxis.title.text == "caption length (words)"
    bars = viz.word_bars([("ct", 5), ("mri", 2)])
    assert list(bars.data[0].y) == ["mri", "ct"]  # most frequent on top
    probs = viz.word_probabilities(["a", "b"], [0.5, 0.25])
    assert list(probs.data[0].x) == ["1. a", "2. b"]
    assert viz.split_bars({"train": 8, "val": 1, "test": 1}).layout.yaxis.title.text == "images"


def test_thumbnail_and_load_image(tmp_path: Path) -> None:
    Image.new("L", (400, 200), 128).save(tmp_path / "ok.png")
    thumb = viz.thumbnail(tmp_path / "ok.png", 100)
    assert thumb is not None and thumb.size == (100, 50) and thumb.mode == "RGB"
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert viz.thumbnail(tmp_path / "broken.png") is None
    with pytest.raises(ValueError, match=r"broken\.png"):
        viz.load_image(tmp_path / "broken.png")
