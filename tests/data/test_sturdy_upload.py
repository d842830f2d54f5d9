"""Issue 22, item 2: uploads decode at a bounded size, within a memory budget, a few at a time.

`medcap.data.bounded`: a 9000 x 9000 JPEG is decoded through libjpeg's DCT scaling (never whole), other
formats are reduced on load, the peak is estimated from the header and refused over the budget, and a
`DecodeGate` lets at most `slots` decodes run at once. The server-level figures are measured by
`benchmarks/upload_memory.py`.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.data.bounded import DecodeGate, decode_cost, open_bounded, target_size
from medcap.data.images import open_image_rgb

ROOT = Path(__file__).resolve().parents[2]

MAKE_JPEG = """
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
small = (rng.random((12, 12, 3)) * 255).astype(np.uint8)  # smooth colour noise
Image.fromarray(small).resize((9000, 9000), Image.Resampling.BICUBIC).save(sys.argv[1], quality=85, optimize=True)
"""

RSS_SCRIPT = """
import resource, sys
from medcap.data.bounded import DecodeGate, release_memory
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
data = open(sys.argv[1], "rb").read()
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
image = DecodeGate().upload(data, "big.jpg")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
size = image.size
del image
release_memory()
print(idle, peak, rss_mb(), size[0], size[1])
"""


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's upload: a 9000 x 9000 JPEG of smooth noise at quality 85 (about 1.6 MB)."""
    path = tmp_path_factory.mktemp("upload") / "big9000.jpg"
    subprocess.run([sys.executable, "-c", MAKE_JPEG, str(path)], check=True, timeout=300)
    return path


def test_a_9000_px_jpeg_decodes_small_and_within_the_budget(big_jpeg: Path) -> None:
    assert 1.0e6 < big_jpeg.stat().st_size < 2.5e6
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(big_jpeg)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    idle, peak, after = (float(v) for v in out[:3])
    assert (int(out[3]), int(out[4])) == (2048, 2048)
    # decoded whole, the 9000 x 9000 RGB image alone is 324 MB (open_upload_bytes peaks ~620 MB above idle)
    assert peak - idle < 150
    assert after - idle < 60  # handed back after the decode


def _png(mode: str, size: tuple[int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        arr = rng.integers(0, 4096, size=(size[1], size[0]), dtype=np.uint16)
        img = Image.fromarray(arr)  # uint16: mode I;16
    else:
        bands = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, size=(size[1], size[0], bands), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode=mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_an_image_within_the_target_gets_exactly_the_clis_pixels(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"scan-{mode.replace(';', '')}.png"
    path.write_bytes(_png(mode, (300, 200)))
    cli = np.asarray(open_image_rgb(path))  # what `python -m medcap caption` decodes
    upload = np.asarray(DecodeGate().upload(path.read_bytes(), path.name))
    np.testing.assert_array_equal(upload, cli)


def test_a_large_png_is_reduced_on_load_to_the_target(tmp_path: Path) -> None:
    arr = np.tile(np.linspace(0, 255, 5000, dtype=np.float32), (3000, 1)).astype(np.uint8)  # (3000, 5000)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    image = DecodeGate().upload(buf.getvalue(), "wide.png")
    assert image.size == (2048, 1229) and image.mode == "RGB"
    row = np.asarray(image)[600, :, 0].astype(float)  # the left-to-right ramp survives the reduction
    assert row[0] < 5 and row[-1] > 250 and np.all(np.diff(row) >= -1)


def test_exif_orientation_is_applied_to_the_reduced_image() -> None:
    img = Image.new("RGB", (4200, 1400), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    image = DecodeGate().upload(buf.getvalue(), "rotated.jpg")
    assert image.size == (683, 2048)  # portrait, as a viewer shows it


def test_an_image_over_the_budget_is_refused_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000), (40, 90, 160)).save(buf, format="PNG")  # a small file, 24 MB of RGB pixels
    data = buf.getvalue()
    cost = decode_cost("RGB", (3000, 2000))
    assert cost >= 3000 * 2000 * 4
    gate = DecodeGate(budget=16 * 2**20)
    with pytest.raises(ValueError, match=r"^scan.png: decoding this 3000 x 2000 PNG image needs about \d+ MB, over "
                                         r"the 16 MB one image may use here"):
        gate.upload(data, "scan.png")
    assert DecodeGate().upload(data, "scan.png").size == (2048, 1365)  # the default budget takes it


def test_the_gate_bounds_concurrent_decodes() -> None:
    gate = DecodeGate(slots=2, wait_s=0.0)
    assert gate.try_slot() and gate.try_slot()
    assert not gate.try_slot()  # a third decode waits for a free slot
    with pytest.raises(ValueError, match=r"^busy.png: the server is busy decoding other images"):
        gate.upload(_png("L", (10, 10)), "busy.png")
    gate.release()
    assert gate.upload(_png("L", (10, 10)), "next.png").size == (10, 10)  # a freed slot is used again
    assert gate.try_slot()


def test_bad_uploads_are_named_as_before(tmp_path: Path) -> None:
    gate = DecodeGate()
    with pytest.raises(ValueError, match=r"^x.png: not an image file PIL can read"):
        gate.upload(b"not an image", "x.png")
    with pytest.raises(ValueError, match=r"^e.png: the uploaded file is empty"):
        gate.upload(b"", "e.png")
    huge = tmp_path / "huge.png"
    Image.new("1", (13000, 13000)).save(huge)
    with pytest.raises(ValueError, match=r"^huge.png: image is too large \(13000 x 13000"):
        gate.upload(huge.read_bytes(), "huge.png")
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")
    with pytest.raises(ValueError, match="only PNG and JPEG are accepted"):
        gate.upload(gif.getvalue(), "anim.gif")
    with pytest.raises(ValueError, match="image file not found"):
        open_bounded(huge.parent / "missing.png", 64)


def test_target_size_keeps_the_aspect() -> None:
    assert target_size((9000, 9000), 2048) == (2048, 2048)
    assert target_size((4000, 1000), 2048) == (2048, 512)
    assert target_size((300, 200), 2048) == (300, 200)


def test_the_budget_takes_a_greyscale_9000_px_png_and_refuses_the_rgb_one() -> None:
    from medcap.data.bounded import DECODE_BUDGET

    assert decode_cost("L", (9000, 9000)) < DECODE_BUDGET  # 81 MB decoded, small copies after
    assert decode_cost("1", (9400, 9400)) < DECODE_BUDGET  # the largest 1-bit image under MAX_PIXELS
    assert decode_cost("RGB", (2250, 2250)) < DECODE_BUDGET  # the 9000 px JPEG after its 1/4 draft
    assert decode_cost("RGB", (9000, 9000)) > DECODE_BUDGET  # 324 MB of pixels
    progressive = decode_cost("RGB", (2250, 2250), source_size=(9000, 9000), progressive=True)
    assert progressive - decode_cost("RGB", (2250, 2250)) == 9000 * 9000 * 2 * 3  # libjpeg's coefficient buffer


def test_a_large_16_bit_png_is_scaled_to_8_bits_then_reduced() -> None:
    ramp = np.tile(np.linspace(0, 60000, 3000), (1000, 1)).astype(np.uint16)  # (1000, 3000)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    image = DecodeGate().upload(buf.getvalue(), "ramp16.png")
    assert image.size == (2048, 683) and image.mode == "RGB"
    row = np.asarray(image)[300, :, 0].astype(float)
    assert row[0] < 3 and row[-1] > 252 and np.all(np.diff(row) >= -1)  # range-scaled, not clipped at 255
