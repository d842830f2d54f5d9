"""Synthetic demo set: determinism, layout, visible lesions with tight boxes, captions, mix, atomicity."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.data import synthetic
from medcap.data.synthetic import (
    FINDINGS,
    LOCATIONS,
    caption_names_findings,
    ensure_synthetic,
    finding_word_positions,
    read_records,
    render_item,
    sample_item,
)
from medcap.data.synthetic_text import vocabulary, words_of

RECORD_KEYS = {"image_id", "file", "caption", "group", "modality", "plane", "boxes"}
BOX_KEYS = {"finding", "location", "size", "box"}


@pytest.fixture(scope="module")
def specs() -> list[synthetic.ItemSpec]:
    """500 drawn items (no rendering: sampling is cheap)."""
    return [sample_item(0, i) for i in range(500)]


def _truth(spec: synthetic.ItemSpec) -> list[dict]:
    return [{"finding": les.finding, "location": les.location, "size": les.size} for les in spec.lesions]


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- generation, layout, determinism


def test_folder_layout_and_records(tmp_path: Path) -> None:
    folder = ensure_synthetic(12, seed=3, root=tmp_path)
    assert folder == tmp_path / "synthetic-12-seed3"
    records = read_records(folder)
    assert [r["image_id"] for r in records] == [f"syn-{i:05d}" for i in range(1, 13)]
    for rec in records:
        assert set(rec) == RECORD_KEYS
        assert rec["file"] == f"images/{rec['image_id']}.png"
        assert rec["group"] == rec["image_id"]
        assert (rec["modality"], rec["plane"]) in {("XR", "PA"), ("CT", "axial")}
        with Image.open(folder / rec["file"]) as im:
            assert im.mode == "L" and im.size == (256, 256)
        for box in rec["boxes"]:
            assert set(box) == BOX_KEYS
            assert box["finding"] in FINDINGS and box["location"] in LOCATIONS and box["size"] in {"small", "large"}
            x0, y0, x1, y1 = box["box"]
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["version"] == synthetic.GENERATOR_VERSION and meta["n"] == 12 and meta["seed"] == 3


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = _folder_bytes(ensure_synthetic(6, seed=1, root=tmp_path / "a"))
    b = _folder_bytes(ensure_synthetic(6, seed=1, root=tmp_path / "b"))
    c = _folder_bytes(ensure_synthetic(6, seed=2, root=tmp_path / "c"))
    assert a == b
    assert a["records.jsonl"] != c["records.jsonl"]
    assert all(a[f"images/syn-{i:05d}.png"] != c[f"images/syn-{i:05d}.png"] for i in range(1, 7))


def test_item_depends_only_on_seed_and_index() -> None:
    first = render_item(sample_item(5, 7))
    again = render_item(sample_item(5, 7))
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    assert not np.array_equal(first[0], render_item(sample_item(5, 8))[0])


@pytest.mark.parametrize("pool", ["threads", "fork"])
def test_parallel_generation_matches_serial(pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if pool == "fork" and not synthetic._fork_is_safe():
        pytest.skip("fork is unsafe in this process (threads or TensorFlow loaded): generation uses threads")
    serial = _folder_bytes(ensure_synthetic(6, seed=4, root=tmp_path / "serial", workers=1))
    monkeypatch.setattr(synthetic, "_SERIAL_BELOW", 0)
    if pool == "threads":
        monkeypatch.setattr(synthetic, "_fork_is_safe", lambda: False)
    parallel = _folder_bytes(ensure_synthetic(6, seed=4, root=tmp_path / "parallel", workers=2))
    assert parallel == serial


def test_default_root_is_artifacts_datasets(artifacts: Path) -> None:
    assert ensure_synthetic(2, seed=0) == artifacts / "datasets" / "synthetic-2-seed0"


def test_rejects_empty_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        ensure_synthetic(0, root=tmp_path)


# ---------------------------------------------------------------- atomic generation


def test_complete_folder_is_reused_without_regeneration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = ensure_synthetic(3, seed=0, root=tmp_path)
    before = (folder / "records.jsonl").stat().st_mtime_ns

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated a complete folder")

    monkeypatch.setattr(synthetic, "_generate", boom)
    assert ensure_synthetic(3, seed=0, root=tmp_path) == folder
    assert (folder / "records.jsonl").stat().st_mtime_ns == before


def test_interrupted_generation_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = synthetic._render_chunk

    def interrupted(folder: str, seed: int, indices: list[int]) -> list[dict]:
        real(folder, seed, indices[:2])  # some images written, then the run dies
        raise KeyboardInterrupt

    root = tmp_path / "datasets"
    monkeypatch.setattr(synthetic, "_render_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(4, seed=0, root=root)
    assert list(root.iterdir()) == []  # no final folder, no temp folder
    monkeypatch.setattr(synthetic, "_render_chunk", real)
    assert len(read_records(ensure_synthetic(4, seed=0, root=root))) == 4


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftover_temp_folder_of_a_dead_run_is_cleaned(tmp_path: Path) -> None:
    dead = tmp_path / f".synthetic-3-seed0.tmp-{_dead_pid()}-deadbeef"
    (dead / "images").mkdir(parents=True)
    (dead / "images" / "syn-00001.png").write_bytes(b"half")
    live = tmp_path / ".synthetic-3-seed0.tmp-1-cafe0000"  # pid 1 is alive: another run in progress
    live.mkdir()
    folder = ensure_synthetic(3, seed=0, root=tmp_path)
    assert not dead.exists() and live.exists()
    assert len(read_records(folder)) == 3


def test_outdated_generator_version_is_regenerated(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    folder = ensure_synthetic(2, seed=0, root=root)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "version": -1}))
    (folder / "records.jsonl").write_text("stale\n")
    assert ensure_synthetic(2, seed=0, root=root) == folder
    assert len(read_records(folder)) == 2
    assert sorted(p.name for p in root.iterdir()) == ["synthetic-2-seed0"]


def test_read_records_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text('{"image_id": "a"}\n{broken\n')
    with pytest.raises(ValueError, match=r"records\.jsonl:2: malformed JSON"):
        read_records(tmp_path)


# ---------------------------------------------------------------- lesions are visible, boxes tight


def test_lesions_change_pixels_inside_their_boxes_only() -> None:
    seen: Counter[str] = Counter()
    for index in range(60):
        spec = sample_item(0, index)
        if not spec.lesions:
            continue
        with_lesions, record = render_item(spec)
        without, _ = render_item(spec, draw_lesions=False)
        diff = with_lesions.astype(np.float64) - without.astype(np.float64)
        inside_any = np.zeros(diff.shape, dtype=bool)
        for box in record["boxes"]:
            x0, y0, x1, y1 = (round(v * 256) for v in box["box"])
            inside_any[y0:y1, x0:x1] = True
            patch = diff[y0:y1, x0:x1]
            assert np.abs(patch).mean() > 15, (index, box)  # clearly visible: > 15 grey levels on average
            if box["finding"] in {"nodule", "mass", "consolidation", "effusion"}:
                assert patch.mean() > 15, (index, box)  # brighter than the same place without it
            assert max(x1 - x0, y1 - y0) >= 0.13 * 256  # at least about one 32-px cell of a 224 image
            seen[box["finding"]] += 1
        assert np.abs(diff)[inside_any].sum() >= 0.98 * np.abs(diff).sum()  # nothing drawn outside the boxes
    assert set(seen) == set(FINDINGS)


def test_side_convention_patient_right_is_image_left(specs: list[synthetic.ItemSpec]) -> None:
    for spec in specs[:80]:
        _, record = render_item(spec) if spec.lesions else (None, {"boxes": []})
        for box in record["boxes"]:
            x_centre = (box["box"][0] + box["box"][2]) / 2
            assert (x_centre < 0.5) == box["location"].startswith("right"), box


# ---------------------------------------------------------------- mix and independence


def test_finding_count_mix(specs: list[synthetic.ItemSpec]) -> None:
    counts = Counter(len(s.lesions) for s in specs)
    assert set(counts) == {0, 1, 2}
    assert abs(counts[0] / 500 - 0.25) < 0.06
    assert abs(counts[1] / 500 - 0.55) < 0.07
    assert abs(counts[2] / 500 - 0.20) < 0.06
    kinds = Counter(s.anatomy.kind for s in specs)
    assert 200 < kinds["XR"] < 300


def test_finding_location_size_not_confounded(specs: list[synthetic.ItemSpec]) -> None:
    lesions = [les for s in specs for les in s.lesions]
    by_finding = {f: [les for les in lesions if les.finding == f] for f in FINDINGS}
    for finding, items in by_finding.items():
        assert len(items) >= 40, finding
        sizes = Counter(les.size for les in items)
        assert min(sizes["small"], sizes["large"]) >= 0.3 * len(items), (finding, sizes)
        locations = Counter(les.location for les in items)
        expected = 2 if finding == "effusion" else 6
        assert len(locations) == expected, (finding, locations)
        assert min(locations.values()) >= 0.4 * len(items) / expected, (finding, locations)
    assert {les.location for les in by_finding["effusion"]} == {"right lower zone", "left lower zone"}
    assert all(s.anatomy.kind == "XR" for s in specs for les in s.lesions if les.finding == "fracture")
    two = [s for s in specs if len(s.lesions) == 2]
    assert all(a.finding != b.finding and a.location != b.location for a, b in (s.lesions for s in two))


# ---------------------------------------------------------------- captions


def test_generated_captions_are_short_and_name_their_findings(specs: list[synthetic.ItemSpec]) -> None:
    words: Counter[str] = Counter()
    for spec in specs:
        tokens = words_of(spec.caption)
        assert 1 <= len(tokens) <= 20, spec.caption
        assert caption_names_findings(spec.caption, _truth(spec)), spec.caption
        words.update(tokens)
    assert set(words) <= vocabulary() and len(vocabulary()) < 150
    assert len({s.caption for s in specs}) > 250  # varied wording


def test_wrong_captions_are_rejected(specs: list[synthetic.ItemSpec]) -> None:
    other_side = {"right": "left", "left": "right"}
    for spec in specs[:200]:
        truth = _truth(spec)
        if not truth:
            assert not caption_names_findings("chest radiograph shows a small nodule in the right upper lobe", truth)
            continue
        flipped = " ".join(other_side.get(w, w) for w in words_of(spec.caption))
        assert not caption_names_findings(flipped, truth), flipped
        assert not caption_names_findings("normal chest radiograph", truth)
        assert not caption_names_findings(spec.caption, [*truth, {"finding": "x", "location": "y"}])
        if len(truth) == 2:
            assert not caption_names_findings(spec.caption, truth[:1])


@pytest.mark.parametrize(
    ("caption", "truth", "expected"),
    [
        ("chest radiograph shows a small nodule in the right upper lobe", [("nodule", "right upper zone")], True),
        ("small right upper lobe nodule on chest film", [("nodule", "right upper zone")], True),
        ("Small right upper lobe nodule, on chest film.", [("nodule", "right upper zone")], True),
        ("small left upper lobe nodule on chest film", [("nodule", "right upper zone")], False),
        ("small right lower lobe nodule on chest film", [("nodule", "right upper zone")], False),
        ("small right upper lobe mass on chest film", [("nodule", "right upper zone")], False),
        ("a small nodule on chest film", [("nodule", "right upper zone")], False),
        ("tumor at the right lung apex", [("mass", "right upper zone")], True),
        ("infiltrate in the left lung base", [("consolidation", "left lower zone")], True),
        ("cavitary lesion in the left mid zone", [("cavity", "left middle zone")], True),
        (
            "a large mass in the left lower zone and a small nodule in the right upper lobe",
            [("nodule", "right upper zone"), ("mass", "left lower zone")],
            True,
        ),
        (
            "a small nodule in the right upper lobe",
            [("nodule", "right upper zone"), ("mass", "left lower zone")],
            False,
        ),
        (
            "a small nodule in the right upper lobe and a rib fracture in the left upper zone",
            [("nodule", "right upper zone")],
            False,
        ),
        ("nodule and mass in the right upper lobe", [("nodule", "right upper zone")], False),
        ("normal chest radiograph", [], True),
        ("no acute cardiopulmonary abnormality", [], True),
        ("axial ct slice shows clear lungs", [], True),
        ("chest radiograph", [], False),
        ("normal chest radiograph with a small nodule", [], False),
    ],
)
def test_caption_names_findings_known_cases(caption: str, truth: list[tuple[str, str]], expected: bool) -> None:
    boxes = [{"finding": f, "location": loc, "size": "small", "box": [0, 0, 1, 1]} for f, loc in truth]
    assert caption_names_findings(caption, boxes) is expected


def test_finding_word_positions() -> None:
    words = words_of("chest film shows a small right upper lobe nodule and a large tumor in the left lung base")
    assert finding_word_positions(words) == {"nodule": 8, "mass": 12}
    assert finding_word_positions(["normal", "chest", "radiograph"]) == {}
    assert finding_word_positions(["nodule", "nodule", "infiltrate"]) == {"nodule": 0, "consolidation": 2}
