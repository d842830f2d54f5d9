"""One image reader for files and uploads, one pixel limit, display copies, bounded memory on huge uploads."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.app import viz
from medcap.data import images
from medcap.data.images import (
    MAX_PIXELS,
    check_image,
    display_copy,
    open_image_rgb,
    open_upload_bytes,
)
from medcap.features.imageload import load_array

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def big_png(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A valid grayscale PNG of any size, written row by row (tiny when compressed, little memory here).

    Every row is the same left-to-right ramp (not a flat colour): row 0 is stored as is, the others
    with PNG's "Up" filter (all zero bytes: same as the row above), which compresses to almost nothing.
    """
    pixel_bytes = bit_depth // 8
    ramp = (np.arange(width, dtype=np.uint64) * ((1 << bit_depth) - 1) // max(width - 1, 1))
    first = b"\x00" + ramp.astype(">u2" if bit_depth == 16 else np.uint8).tobytes()  # filter None + pixels
    assert len(first) == 1 + width * pixel_bytes
    same_as_above = b"\x02" + bytes(width * pixel_bytes)  # filter Up, zero differences
    comp = zlib.compressobj(9)
    parts = [comp.compress(first)] + [comp.compress(same_as_above) for _ in range(height - 1)]
    parts.append(comp.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # grayscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def _png16(path: Path) -> Path:
    """A 16-bit grayscale PNG whose values are all above 255 (what convert('RGB') clips to white)."""
    arr = np.linspace(1000, 40000, 32 * 24).reshape(24, 32).astype(np.uint16)  # (24, 32)
    Image.fromarray(arr).save(path)
    return path


def test_one_pixel_limit_is_pil_default_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_PIXELS == 89_478_485 == 1024 * 1024 * 1024 // 4 // 3  # PIL's default MAX_IMAGE_PIXELS
    path = tmp_path / "mid.png"
    Image.new("L", (12, 12), 7).save(path)  # 144 px
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # over the limit but under PIL's own 2x error
    assert check_image(path) == "decompression_bomb"  # loaders
    with pytest.raises(ValueError, match=r"12 x 12 = 144 pixels.*limit of 100 pixels"):
        open_image_rgb(path)  # caption, features
    with pytest.raises(ValueError, match=r"12 x 12 = 144 pixels.*limit of 100 pixels"):
        load_array(path, 8)
    with pytest.raises(ValueError, match=r"^mid\.png: .*limit of 100 pixels"):
        open_upload_bytes(path.read_bytes(), "mid.png")  # dashboard uploads
    assert viz.thumbnail(path) is None  # dashboard display
    monkeypatch.setattr(images, "MAX_PIXELS", 144)
    assert check_image(path) is None and open_image_rgb(path).size == (12, 12)


def test_16bit_upload_matches_the_cli_pixels(tmp_path: Path) -> None:
    path = _png16(tmp_path / "d16.png")
    from_file = np.asarray(open_image_rgb(path))  # (24, 32, 3)
    from_upload = np.asarray(open_upload_bytes(path.read_bytes(), "d16.png"))  # (24, 32, 3)
    assert from_upload.shape == (24, 32, 3) and from_upload.dtype == np.uint8
    np.testing.assert_array_equal(from_upload, from_file)
    assert from_upload.min() == 0 and from_upload.max() == 255  # range-scaled, not clipped to solid white
    assert len(np.unique(from_upload)) > 100
    np.testing.assert_array_equal(np.asarray(viz.load_image(path)), from_file)


def test_rgba_upload_matches_the_cli_pixels(tmp_path: Path) -> None:
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[:2, ..., 3] = 255  # top half opaque red, bottom half transparent -> black
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, mode="RGBA").save(path)
    up = np.asarray(open_upload_bytes(path.read_bytes(), "rgba.png"))  # (4, 4, 3)
    np.testing.assert_array_equal(up, np.asarray(open_image_rgb(path)))
    assert up[0, 0].tolist() == [200, 0, 0] and up[3, 3].tolist() == [0, 0, 0]


def test_bad_uploads_get_clear_errors_naming_the_upload() -> None:
    with pytest.raises(ValueError, match=r"^scan\.png: the uploaded file is empty"):
        open_upload_bytes(b"", "scan.png")
    with pytest.raises(ValueError, match=r"^scan\.png: the uploaded file is 10\.5 MB; the limit is 10 MB$"):
        open_upload_bytes(b"x" * (10 * 2**20 + 2**19), "scan.png")
    with pytest.raises(ValueError, match=r"^scan\.png: the uploaded file is 20 bytes; the limit is 10 bytes$"):
        open_upload_bytes(b"x" * 20, "scan.png", max_bytes=10)
    with pytest.raises(ValueError, match=r"^notes\.png: not an image file PIL can read"):
        open_upload_bytes(b"root:x:0:0:root:/root:/bin/bash\n", "notes.png")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="PNG")
    with pytest.raises(ValueError, match=r"^cut\.png: corrupt image"):
        open_upload_bytes(buf.getvalue()[:60], "cut.png")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    with pytest.raises(ValueError, match=r"^a\.gif: is GIF; only PNG and JPEG are accepted"):
        open_upload_bytes(buf.getvalue(), "a.gif")
    assert open_upload_bytes(buf.getvalue(), "a.gif", formats=None).size == (8, 8)
    with pytest.raises(ValueError, match=r"^etc-passwd: "):  # the name is sanitised before it is echoed
        open_upload_bytes(b"", "../etc/passwd")


def test_display_copy_bounds_the_longest_side() -> None:
    wide = Image.new("RGB", (3000, 1500), (9, 9, 9))
    small = display_copy(wide)
    assert small.size == (1024, 512) and small.mode == "RGB"
    assert display_copy(wide, max_side=100).size == (100, 50)
    tiny = Image.new("L", (20, 10))
    copy = display_copy(tiny)
    assert copy.size == (20, 10) and copy is not tiny
    with pytest.raises(ValueError, match="max_side"):
        display_copy(tiny, 0)


def test_big_png_helper_writes_a_real_image() -> None:
    for depth in (8, 16):
        with Image.open(io.BytesIO(big_png(300, 20, depth))) as img:
            img.load()
            arr = np.asarray(img)  # (20, 300)
        assert img.size == (300, 20) and arr[:, 0].tolist() == [0] * 20
        assert arr[:, -1].tolist() == [(1 << depth) - 1] * 20


_MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path
from medcap.data.images import display_copy, open_upload_bytes
out = {}
for name in sys.argv[1:]:
    data = Path(name).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:
        shown = display_copy(open_upload_bytes(data, Path(name).name))
        result = list(shown.size)
    except ValueError as exc:
        result = str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out[Path(name).name] = {"result": result, "peak_rss_increase_mb": (after - before) / 1024}
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's unit")
def test_huge_uploads_stay_within_a_memory_bound(tmp_path: Path) -> None:
    """A 194 KB 13000 x 13000 PNG is refused from its header; a 9000 x 9000 16-bit one (under the
    limit) is decoded and shown at <= 1024 px. Peak RSS of a fresh process, not time, is bounded."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(big_png(13000, 13000, 8))
    assert len(huge.read_bytes()) < 400_000  # small file, 169 megapixels
    deep = tmp_path / "deep16.png"
    deep.write_bytes(big_png(9000, 9000, 16))  # 81 MP: under the limit, 162 MB decoded
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(huge), str(deep)], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, check=True)
    out = json.loads(proc.stdout)
    assert "13000 x 13000 = 169,000,000 pixels" in out["huge.png"]["result"]
    assert out["huge.png"]["peak_rss_increase_mb"] < 100  # refused before decoding
    assert out["deep16.png"]["result"] == [1024, 1024]
    assert out["deep16.png"]["peak_rss_increase_mb"] < 1536  # was ~2 GB with whole-image float64 scaling
