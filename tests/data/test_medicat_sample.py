"""The `medicat:` loader on the real official MedICaT sample (10 figures from 5 papers) in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcap.data import load_records
from medcap.data.images import open_image_rgb
from medcap.data.paper_sets import split_figure_label
from tests.conftest import PROJECT_ROOT

SAMPLE = PROJECT_ROOT.parent / "shared" / "data" / "medicat-sample"
if not (SAMPLE / "sample.jsonl").is_file():
    SAMPLE = Path("/work/shared/data/medicat-sample")

needs_sample = pytest.mark.skipif(not (SAMPLE / "sample.jsonl").is_file(), reason="MedICaT sample not present")


@needs_sample
def test_the_official_sample_loads_with_groups_and_clean_captions() -> None:
    res = load_records(f"medicat:{SAMPLE}")
    table = res.table.set_index("image_id")
    assert res.records_read == 10 and len(table) == 10 and res.skipped == {}
    assert table["group"].nunique() == 5  # one group per source paper (pdf_hash)
    assert table["group"].value_counts().sort_values().tolist() == [1, 1, 2, 2, 4]  # figures per paper
    assert all(group == image_id.split("_")[0] for image_id, group in table["group"].items())
    # the papers' own labels are cut from the captions and kept beside them
    assert not table["caption"].str.match(r"(?i)\s*fig").any()
    assert sorted(set(table["figure_label"])) == ["Fig 1", "Fig 3", "Fig. 1", "Fig. 2", "Figure 1", "Figure 2",
                                                   "Figure 3", "Figure 4"]
    brain = table[table["caption"].str.startswith("Brain CT")]
    assert brain["caption"].item() == "Brain CT (A) and MR diffusion images (B, C) showing no intracranial lesion."
    assert brain["figure_label"].item() == "Fig. 1"
    assert not res.has_official_split


@needs_sample
def test_the_compound_figures_open() -> None:
    table = load_records(f"medicat:{SAMPLE}").table
    sizes = [open_image_rgb(p).size for p in table["image_path"]]
    assert len(sizes) == 10
    assert all(w > 200 and h > 200 for w, h in sizes)  # whole compound figures, not tiles


@pytest.mark.parametrize(
    ("raw", "label", "rest"),
    [
        ("Figure 4. Nuclear magnetic resonance scan", "Figure 4", "Nuclear magnetic resonance scan"),
        ("Fig 3. Control CT angiogram", "Fig 3", "Control CT angiogram"),
        ("Fig. 1: Brain CT", "Fig. 1", "Brain CT"),
        ("Figs. 2-3. Axial MRI", "Figs. 2-3", "Axial MRI"),
        ("FIG. 12A. MRI of the knee", "FIG. 12A", "MRI of the knee"),
        ("Figure shows a mass", "", "Figure shows a mass"),  # no number: not a label
        ("Figure 1", "", "Figure 1"),  # nothing after the label: kept as it is
        ("Axial CT of the abdomen.", "", "Axial CT of the abdomen."),
    ],
)
def test_split_figure_label(raw: str, label: str, rest: str) -> None:
    assert split_figure_label(raw) == (label, rest)


@needs_sample
def test_the_gallery_and_leakage_work_on_the_sample() -> None:
    from medcap.app import tables

    table = load_records(f"medicat:{SAMPLE}").table
    gallery = tables.gallery_table(table, max_words=60, seed=0)
    assert len(gallery) == 10
    assert "figure_label" in tables.metadata_columns(gallery)
    kept = gallery[gallery["split"] != "not kept"]
    assert kept.groupby("group")["split"].nunique().max() == 1  # a paper's figures stay in one split
    report = tables.leakage_by_split_mode(table, max_words=60, seed=0).set_index(["split_by", "check"])
    assert report.loc[("group", "groups_shared_train_test"), "value"] == 0


@needs_sample
def test_the_data_page_shows_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MEDCAP_DATA", str(SAMPLE.parent))
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "1_Data.py"), default_timeout=60).run()
    at.text_input[0].input(f"medicat:{SAMPLE}")
    at.number_input[0].set_value(60)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    assert {m.label: m.value for m in at.metric}["Groups (cases)"] == "5"
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "of 10 images match" in captions
