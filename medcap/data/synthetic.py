"""The embedded default demo dataset: seeded, radiology-like synthetic images with captions and boxes.

`ensure_synthetic(n, seed)` generates `n` images once into
`artifacts/datasets/synthetic-<n>-seed<seed>/` and returns that folder:

- `images/syn-00001.png` ...: 8-bit grayscale, 256 x 256; half chest films (XR, PA), half axial CT
  slices, with anatomy jitter, texture and noise.
- `records.jsonl`: one JSON object per line: `image_id`, `file` (relative), `caption`, `group`
  (= image_id), `modality` ("XR"/"CT"), `plane` ("PA"/"axial"), `boxes` (list of `finding`,
  `location`, `size` ("small"/"large"), `box` [x0, y0, x1, y1] as fractions of width/height, tight
  around the pixels the lesion changed).
- `meta.json`: generator version, n, seed and counts.

Each image has 0 (25%), 1 (55%) or 2 (20%) findings out of `FINDINGS`, at a location out of
`LOCATIONS`. Location is the patient's side (the patient's right is the image's left) and the
vertical third of that lung field (on CT, anterior = top third). Finding, location and size are drawn
independently, except effusion (lower zones only) and fracture (chest films only, on a rib, drawn
twice as often there so that all findings are about equally common). Item `i`
is drawn from its own generator seeded with (seed, i), so generation is parallel and reproducible.
Generation runs in a temporary sibling folder renamed into place at the end: an interrupted run never
leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medcap.base import paths
from medcap.base.io import atomic_path, read_json, write_json, write_text
from medcap.data.synthetic_draw import SIZE, Anatomy, Lesion, render, rib_curve
from medcap.data.synthetic_text import (
    FINDINGS,
    LOCATIONS,
    SIZES,
    caption_names_findings,
    finding_word_positions,
    make_caption,
)

__all__ = [
    "FINDINGS",
    "GENERATOR_VERSION",
    "LOCATIONS",
    "SIZES",
    "ItemSpec",
    "caption_names_findings",
    "ensure_synthetic",
    "finding_word_positions",
    "read_records",
    "render_item",
    "sample_item",
]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # bump when images or captions change: older folders are regenerated
_N_FINDINGS_P = (0.25, 0.55, 0.20)  # share of images with 0, 1, 2 findings
_SERIAL_BELOW = 200  # smaller sets are generated in-process
# Characteristic size in px (radius; effusion: height; fracture: length) by finding and size.
_RADIUS = {
    "nodule": {"small": (19.0, 22.0), "large": (25.0, 29.0)},
    "mass": {"small": (30.0, 34.0), "large": (38.0, 43.0)},
    "cavity": {"small": (20.0, 23.0), "large": (28.0, 32.0)},
    "consolidation": {"small": (24.0, 28.0), "large": (34.0, 40.0)},
    "effusion": {"small": (26.0, 32.0), "large": (46.0, 54.0)},
    "fracture": {"small": (40.0, 46.0), "large": (64.0, 74.0)},
}
_CT_EFFUSION_SCALE = 0.8  # CT effusions layer posteriorly in a shorter lung field than a film's


class ItemSpec:
    """Everything drawn for one image before rendering (deterministic given seed and index)."""

    def __init__(self, index: int, anatomy: Anatomy, lesions: list[Lesion], noise_seed: int, caption: str) -> None:
        self.index = index
        self.anatomy = anatomy
        self.lesions = lesions
        self.noise_seed = noise_seed
        self.caption = caption

    @property
    def image_id(self) -> str:
        """'syn-00001' for index 0."""
        return f"syn-{self.index + 1:05d}"


def _allowed(finding: str) -> tuple[str, ...]:
    if finding == "effusion":
        return tuple(loc for loc in LOCATIONS if " lower " in loc)
    return LOCATIONS


def _extent(lesion: Lesion, anatomy: Anatomy) -> tuple[float, float, float, float]:
    """Approximate box (px) of a lesion, for keeping two lesions apart."""
    if lesion.finding == "effusion":
        cx, cy, ax, ay = anatomy.lung(lesion.location.split()[0])
        return cx - ax, cy + ay - 1.6 * lesion.radius, cx + ax, cy + ay
    if lesion.finding == "fracture":
        return lesion.x - 12, lesion.y - lesion.radius / 2 - 6, lesion.x + 12, lesion.y + lesion.radius / 2 + 6
    r = lesion.radius * 1.35
    return lesion.x - r, lesion.y - r, lesion.x + r, lesion.y + r


def _overlap(a: tuple[float, ...], b: tuple[float, ...], margin: float = 4.0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def _draw_lesion(rng: np.random.Generator, anatomy: Anatomy, finding: str) -> Lesion:
    allowed = _allowed(finding)
    location = allowed[int(rng.integers(len(allowed)))]
    size = SIZES[int(rng.integers(2))]
    radius = float(rng.uniform(*_RADIUS[finding][size])) * anatomy.scale
    if finding == "effusion" and anatomy.kind == "CT":
        radius *= _CT_EFFUSION_SCALE
    jitter = 10.0 if anatomy.kind == "XR" else 7.0
    zx, zy = anatomy.zone_centre(location)
    x, y = zx + rng.uniform(-jitter, jitter), zy + rng.uniform(-jitter, jitter)
    if finding == "fracture":  # centre the fracture on the rib nearest the drawn point
        side = location.split()[0]
        rib_ys = [float(rib_curve(anatomy, side, i, x)) for i in range(9)]
        y = min(rib_ys, key=lambda ry: abs(ry - y))
    return Lesion(finding, location, size, x, y, radius, int(rng.integers(2**31)))


def sample_item(seed: int, index: int) -> ItemSpec:
    """Draw study kind, anatomy jitter, findings and caption of item `index` (pure, seeded by (seed, index))."""
    rng = np.random.default_rng([seed, index])
    kind = "XR" if rng.random() < 0.5 else "CT"
    anatomy = Anatomy(kind, float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)), float(rng.uniform(0.95, 1.05)))
    n_findings = int(rng.choice(3, p=_N_FINDINGS_P))
    options = tuple(f for f in FINDINGS if kind == "XR" or f != "fracture")
    weights = np.array([2.0 if f == "fracture" else 1.0 for f in options])  # fracture: films only, so twice there
    weights /= weights.sum()
    lesions: list[Lesion] = []
    for _ in range(n_findings):
        for _attempt in range(100):
            finding = options[int(rng.choice(len(options), p=weights))]
            lesion = _draw_lesion(rng, anatomy, finding)
            box = _extent(lesion, anatomy)
            clash = any(
                o.finding == finding or o.location == lesion.location or _overlap(_extent(o, anatomy), box)
                for o in lesions
            )
            if not clash:
                lesions.append(lesion)
                break
    caption = make_caption(rng, kind, [(les.finding, les.location, les.size) for les in lesions])
    return ItemSpec(index, anatomy, lesions, int(rng.integers(2**31)), caption)


def render_item(spec: ItemSpec, draw_lesions: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Render an item: (uint8 image (256, 256), its record without `file`)."""
    pixels, boxes = render(spec.anatomy, spec.lesions, spec.noise_seed, draw_lesions)
    record: dict[str, Any] = {
        "image_id": spec.image_id,
        "caption": spec.caption,
        "group": spec.image_id,
        "modality": spec.anatomy.kind,
        "plane": "PA" if spec.anatomy.kind == "XR" else "axial",
        "boxes": [
            {"finding": les.finding, "location": les.location, "size": les.size, "box": box}
            for les, box in zip(spec.lesions, boxes, strict=True)
        ],
    }
    return pixels, record


def _render_chunk(folder: str, seed: int, indices: list[int]) -> list[dict[str, Any]]:
    """Render and save items `indices` into `folder/images/`; return their records in order."""
    records = []
    for index in indices:
        pixels, rec = render_item(sample_item(seed, index))
        rel = f"images/{rec['image_id']}.png"
        with atomic_path(Path(folder) / rel) as tmp:
            Image.fromarray(pixels, mode="L").save(tmp, format="PNG", compress_level=1)
        records.append({"image_id": rec["image_id"], "file": rel, **{k: v for k, v in rec.items() if k != "image_id"}})
    return records


def _generate(folder: Path, n: int, seed: int, workers: int) -> list[dict[str, Any]]:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    if workers <= 1 or n < _SERIAL_BELOW:
        return _render_chunk(str(folder), seed, list(range(n)))
    chunk = max(1, min(50, -(-n // (workers * 4))))  # several chunks per worker, at most 50 items each
    chunks = [list(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
    args = ([str(folder)] * len(chunks), [seed] * len(chunks), chunks)
    if _fork_is_safe():
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [rec for part in pool.map(_render_chunk, *args) for rec in part]
    # Threads where forking is unsafe (TensorFlow or other threads running): NumPy and PIL release the GIL
    # in their array loops and PNG encoding, and nothing here re-imports the caller's __main__ (as spawn would).
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [rec for part in pool.map(_render_chunk, *args) for rec in part]


def _fork_is_safe() -> bool:
    """fork only from a single-threaded process without TensorFlow loaded (and where fork exists)."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and "tensorflow" not in sys.modules
    )


def _meta(n: int, seed: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "generator": "medcap.data.synthetic",
        "version": GENERATOR_VERSION,
        "n": n,
        "seed": seed,
        "image_size": [SIZE, SIZE],
        "findings": list(FINDINGS),
        "locations": list(LOCATIONS),
        "counts": {
            "modality": dict(sorted(Counter(r["modality"] for r in records).items())),
            "n_findings": {str(k): v for k, v in sorted(Counter(len(r["boxes"]) for r in records).items())},
            "finding": dict(sorted(Counter(b["finding"] for r in records for b in r["boxes"]).items())),
        },
    }


def _is_current(folder: Path) -> bool:
    meta_path = folder / "meta.json"
    if not (folder / "records.jsonl").is_file() or not meta_path.is_file():
        return False
    try:
        return read_json(meta_path).get("version") == GENERATOR_VERSION
    except (OSError, ValueError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_leftovers(parent: Path, name: str) -> None:
    """Remove temporary folders of `name` left by generations whose process is gone."""
    for path in parent.glob(f".{name}.*-*-*"):
        try:
            pid = int(path.name.rsplit("-", 2)[-2])
        except ValueError:
            continue
        if path.is_dir() and not _pid_alive(pid):
            log.info("removing leftover %s", path)
            shutil.rmtree(path, ignore_errors=True)


def _install(tmp: Path, final: Path) -> None:
    """Move a finished generation into place (replacing an outdated folder)."""
    try:
        os.rename(tmp, final)
        return
    except OSError:
        if not final.exists():
            raise
    if _is_current(final):  # another process finished the same set first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def ensure_synthetic(n: int = 2000, seed: int = 0, root: Path | None = None, *, workers: int | None = None) -> Path:
    """Generate the synthetic set once (atomically) and return its folder; later calls return at once.

    `root` defaults to `medcap.base.paths.datasets_dir()`. `workers` render in parallel (default: up to 4, by
    CPU count): forked processes from a single-threaded caller without TensorFlow, threads otherwise;
    sets under 200 images are rendered serially.
    """
    if n < 1:
        raise ValueError(f"synthetic set size must be >= 1, got {n}")
    parent = Path(root) if root is not None else paths.datasets_dir()
    final = parent / f"synthetic-{n}-seed{seed}"
    if _is_current(final):
        return final
    parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(parent, final.name)
    tmp = parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    start = time.perf_counter()
    try:
        records = _generate(tmp, n, seed, workers)
        write_text(tmp / "records.jsonl", "".join(json.dumps(rec) + "\n" for rec in records))
        write_json(tmp / "meta.json", _meta(n, seed, records))
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    elapsed = time.perf_counter() - start
    log.info("generated %d synthetic images in %.1f s (%.0f images/s) into %s", n, elapsed, n / elapsed, final)
    return final


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The records of a generated folder, in order (raises ValueError naming the file on a bad line)."""
    path = Path(folder) / "records.jsonl"
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from exc
    return records
