"""Image validation reasons and robust RGB conversion."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.data import images
from medcap.data.images import check_image, check_images, index_images, open_image_rgb


def _save(img: Image.Image, path: Path, fmt: str | None = None) -> Path:
    img.save(path, format=fmt)
    return path


def _gray(path: Path, size: int = 16) -> Path:
    return _save(Image.new("L", (size, size), 128), path)


def test_good_png_and_jpeg_pass(tmp_path: Path) -> None:
    assert check_image(_gray(tmp_path / "a.png")) is None
    assert check_image(_save(Image.new("RGB", (32, 32), (10, 20, 30)), tmp_path / "b.jpg")) is None


def test_missing_empty_and_not_an_image(tmp_path: Path) -> None:
    assert check_image(tmp_path / "nope.png") == "missing_file"
    (tmp_path / "empty.png").write_bytes(b"")
    assert check_image(tmp_path / "empty.png") == "empty_file"
    (tmp_path / "text.png").write_text("this is not an image\n")
    assert check_image(tmp_path / "text.png") == "not_an_image"
    (tmp_path / "folder.png").mkdir()
    assert check_image(tmp_path / "folder.png") == "missing_file"


def test_truncated_files_are_corrupt(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for name in ("t.jpg", "t.png"):
        buf = io.BytesIO()
        noise.save(buf, format="JPEG" if name.endswith("jpg") else "PNG")
        data = buf.getvalue()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        assert check_image(tmp_path / name) == "corrupt_image", name
    (tmp_path / "head.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # signature, no valid chunks
    assert check_image(tmp_path / "head.png") == "corrupt_image"


def test_decompression_bomb_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = _gray(tmp_path / "big.png", size=20)  # 400 px: over 2x the limit -> PIL raises
    mid = _gray(tmp_path / "mid.png", size=12)  # 144 px: over the limit, under 2x -> PIL only warns
    small = _gray(tmp_path / "small.png", size=8)  # 64 px: fine
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    assert check_images([big, mid, small]) == ["decompression_bomb", "decompression_bomb", None]
    with pytest.raises(ValueError, match=r"big\.png.*decompression-bomb"):
        open_image_rgb(big)


def test_check_images_keeps_order(tmp_path: Path) -> None:
    good = _gray(tmp_path / "g.png")
    paths = [good, tmp_path / "missing.png", good]
    assert check_images(paths, workers=2) == [None, "missing_file", None]
    assert check_images([]) == []


def test_open_rgba_composites_on_black(tmp_path: Path) -> None:
    arr = np.zeros((2, 2, 4), dtype=np.uint8)  # (H, W, RGBA)
    arr[0, 0] = (200, 100, 50, 255)  # opaque
    arr[0, 1] = (200, 100, 50, 0)  # fully transparent
    arr[1, 0] = (200, 100, 50, 128)  # half
    img = open_image_rgb(_save(Image.fromarray(arr, mode="RGBA"), tmp_path / "rgba.png"))
    assert img.mode == "RGB"
    out = np.asarray(img)
    assert tuple(out[0, 0]) == (200, 100, 50)
    assert tuple(out[0, 1]) == (0, 0, 0)
    assert abs(int(out[1, 0, 0]) - 100) <= 1


def test_open_la_and_palette_transparency(tmp_path: Path) -> None:
    la = Image.fromarray(np.array([[[90, 255], [90, 0]]], dtype=np.uint8), mode="LA")
    out = np.asarray(open_image_rgb(_save(la, tmp_path / "la.png")))
    assert out.shape == (1, 2, 3)
    assert tuple(out[0, 0]) == (90, 90, 90) and tuple(out[0, 1]) == (0, 0, 0)
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 1
    out = np.asarray(open_image_rgb(_save(pal, tmp_path / "p.png")))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 1]) == (0, 0, 0)


def test_open_grayscale_gives_equal_channels(tmp_path: Path) -> None:
    out = np.asarray(open_image_rgb(_gray(tmp_path / "g.png")))
    assert out.shape == (16, 16, 3)
    assert (out == 128).all()


def test_open_16bit_scaled_by_range(tmp_path: Path) -> None:
    arr = np.array([[1000, 2000, 3000]], dtype=np.uint16)  # (1, 3)
    img16 = Image.fromarray(arr)
    assert img16.mode.startswith("I;16")
    path = _save(img16, tmp_path / "d16.png")
    assert check_image(path) is None
    out = np.asarray(open_image_rgb(path))
    assert out[0, :, 0].tolist() == [0, 128, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_open_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"gone\.png.*not found"):
        open_image_rgb(tmp_path / "gone.png")
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.jpg.*empty"):
        open_image_rgb(tmp_path / "zero.jpg")
    (tmp_path / "t.png").write_text("hello")
    with pytest.raises(ValueError, match=r"t\.png.*not an image"):
        open_image_rgb(tmp_path / "t.png")


def test_index_images_prefers_png_and_ignores_other_files(tmp_path: Path) -> None:
    _gray(tmp_path / "a.jpg")
    _gray(tmp_path / "a.png")
    _gray(tmp_path / "b.jpeg")
    (tmp_path / "notes.txt").write_text("x")
    found = index_images(tmp_path)
    assert sorted(found) == ["a", "b"]
    assert found["a"].name == "a.png"
    assert index_images(tmp_path / "absent") == {}
