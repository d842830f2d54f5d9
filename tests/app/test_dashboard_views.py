"""The dashboard's cross-run and dataset views: similar cases, run-vs-run per image, gallery, leakage figure.

Compute (medcap.inference.similar, medcap.app.tables, medcap.app.viz) with known values, then the pages under AppTest in
the empty and populated states, including evaluations that lack the newer predictions.csv columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from medcap.app import tables, viz
from medcap.inference import similar
from tests.conftest import PROJECT_ROOT
from tests.support.dashboard_fixtures import (
    FINISHED70_ID,
    FINISHED_ID,
    SIMILAR_STEP,
    full_state,
    similar_caption,
    small_state,
    with_similar_cases,
    write_image,
)


def run_page(script: str) -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / "app_pages" / script), default_timeout=60).run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def downloads(at: AppTest) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


# ---------------------------------------------------------------------------------------------- compute


def test_similar_cases_are_the_known_neighbours(artifacts: Path) -> None:
    small_state(artifacts)
    with_similar_cases(artifacts)
    run = artifacts / "runs" / FINISHED_ID
    memory = similar.case_memory(run)
    assert memory.ids == [f"img{i:05d}" for i in range(6, 12)]  # the run's train split only
    query = similar.stored_features(run, ["img00005"])[0]
    cases = similar.similar_cases(memory, query, k=3)
    assert list(cases.columns) == similar.CASE_COLUMNS
    assert cases["image_id"].tolist() == ["img00006", "img00007", "img00008"]
    assert cases["rank"].tolist() == [1, 2, 3]
    expected = [math.cos(k * SIMILAR_STEP) for k in (1, 2, 3)]
    assert cases["similarity"].tolist() == pytest.approx(expected, abs=2e-3)  # float16 store
    assert cases["caption"].iloc[0] == similar_caption(6)
    # a training image is not its own similar case
    own = similar.similar_cases(memory, similar.stored_features(run, ["img00008"])[0], k=2, exclude="img00008")
    assert own["image_id"].tolist() in (["img00007", "img00009"], ["img00009", "img00007"])
    # the run's dataset, test images first, with their references
    images = similar.run_images(run)
    assert images["split"].tolist() == ["test"] * 6 + ["train"] * 6
    assert images.loc[0, "caption"] == similar_caption(0)


def test_similar_cases_need_a_feature_store(artifacts: Path) -> None:
    small_state(artifacts)  # the fixture's config names no store
    with pytest.raises(ValueError, match="names no feature store"):
        similar.case_memory(artifacts / "runs" / FINISHED_ID)


_OPEN_RUN = """
import json, sys
from medcap.inference.opened import open_run
run = open_run(sys.argv[1])
train = run.training_set()
print(json.dumps({"dataset": run.cfg.dataset, "split": sorted(run.split), "vocab": len(run.vocab),
                  "store": len(run.store.ids), "train": train.ids, "captions": train.captions[:1],
                  "groups": train.groups[:2], "dim": list(train.global_feats.shape),
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def test_open_run_reads_a_runs_files_without_tensorflow(artifacts: Path) -> None:
    import subprocess
    import sys

    small_state(artifacts)
    with_similar_cases(artifacts)
    run = artifacts / "runs" / FINISHED_ID
    out = subprocess.run([sys.executable, "-c", _OPEN_RUN, str(run)], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["dataset"].endswith("captions.csv") and got["split"] == ["test", "train", "val"]
    assert got["store"] == 12 and got["dim"] == [6, 8] and got["vocab"] > 4
    assert got["train"] == [f"img{i:05d}" for i in range(6, 12)]
    assert got["captions"] == [similar_caption(6)] and got["groups"] == ["case3", "case3"]
    assert got["tensorflow"] is False


def test_similar_cases_are_cosine_best_first() -> None:
    train = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    memory = similar.CaseMemory(run_id="r", dataset="d", ids=["a", "b", "c"], feats=train,
                                captions=["ca", "cb", "cc"], paths=["pa", "pb", "pc"])
    cases = similar.similar_cases(memory, np.array([3.0, 3.0]), k=2)
    assert cases["image_id"].tolist() == ["c", "a"]  # a = [1, 0] ties with b = [0, 2]: the lower row wins
    assert cases["similarity"].tolist() == pytest.approx([1.0, math.sqrt(0.5)])
    assert cases["caption"].tolist() == ["cc", "ca"] and cases["rank"].tolist() == [1, 2]
    assert similar.similar_cases(memory, np.array([3.0, 3.0]), k=0).empty


def _preds(bleu1: list[float], **extra: list) -> pd.DataFrame:
    n = len(bleu1)
    return pd.DataFrame({
        "image_id": [f"i{k}" for k in range(n)],
        "image_path": [f"i{k}.png" for k in range(n)],
        "reference": ["ct of the liver", "mr of the brain", "ct of the lung"][:n],
        "prediction": ["ct liver", "mr brain", "ct lung"][:n],
        "bleu1": bleu1,
        "ref_len": [4, 4, 4][:n],
        **extra,
    })


def test_pair_predictions_differences_and_missing_columns() -> None:
    a = _preds([0.5, 0.1, 0.9], cider=[1.0, 0.2, 0.4], group=["g1", "g2", "g1"])
    b = _preds([0.2, 0.3, 0.9])  # an older evaluation: no cider, no group
    pairs = tables.pair_predictions(a, b)
    assert pairs["bleu1_diff"].tolist() == pytest.approx([0.3, -0.2, 0.0])
    assert "cider_diff" not in pairs.columns  # only scores both evaluations have
    assert pairs["group"].tolist() == ["g1", "g2", "g1"]
    assert tables.missing_notes(a, "A") == []
    notes = tables.missing_notes(b, "B")
    assert len(notes) == 2 and "no `cider` column" in notes[0] and "no `group` column" in notes[1]
    with pytest.raises(ValueError, match="share no image"):
        tables.pair_predictions(a, b.assign(image_id=["x", "y", "z"]))


def test_filter_rows_by_metadata_length_and_words() -> None:
    df = _preds([0.5, 0.1, 0.9], group=["g1", "g2", "g1"]).assign(ref_len=[3, 5, 8])
    assert tables.filter_rows(df, {"group": ["g1"]})["image_id"].tolist() == ["i0", "i2"]
    assert tables.filter_rows(df, length=(4, 8))["image_id"].tolist() == ["i1", "i2"]
    assert tables.filter_rows(df, words="Liver,")["image_id"].tolist() == ["i0"]  # tokenized
    assert tables.filter_rows(df, words="ct liver", text_columns=("prediction",))["image_id"].tolist() == ["i0"]
    assert tables.filter_rows(df, words="liver brain").empty  # every word must be present
    assert tables.metadata_columns(df) == ["group"]


def _repeated_case_table(folder: Path) -> pd.DataFrame:
    """40 images in 10 cases; the images of a case share one caption (a real dataset's repeat)."""
    rows = []
    for i in range(40):
        write_image(folder / f"im{i}.png", seed=i)
        rows.append({"image_id": f"im{i}", "image_path": str(folder / f"im{i}.png"),
                     "caption": f"axial ct shows finding number {i // 4}", "group": f"case{i // 4}", "split": ""})
    return pd.DataFrame(rows)


def test_leakage_image_split_leaks_group_split_does_not(tmp_path: Path) -> None:
    report = tables.leakage_by_split_mode(_repeated_case_table(tmp_path), seed=0)
    value = report.set_index(["split_by", "check"])["value"]
    assert value["group", "groups_shared_train_test"] == 0
    assert value["group", "test_captions_in_train_fraction"] == 0.0
    assert value["image", "groups_shared_train_test"] > 0
    assert value["image", "test_captions_in_train_fraction"] > 0.5
    fig = viz.leakage_figure(report)
    assert {t.name for t in fig.data} == {"split by image", "split by group"}
    assert len(fig.data) == 4


def test_gallery_table_marks_splits_and_dropped_captions(tmp_path: Path) -> None:
    table = _repeated_case_table(tmp_path)
    table.loc[0, "caption"] = "word " * 30  # over the 20-word limit: dropped by the caption rules
    gallery = tables.gallery_table(table, max_words=20, seed=0)
    assert gallery.loc[0, "split"] == "not kept"
    assert set(gallery["split"][1:]) <= {"train", "val", "test"}
    assert gallery.loc[0, "caption_words"] == 30
    # one case never spans two splits (split by group)
    assert gallery[1:].groupby("group")["split"].nunique().max() == 1


# ---------------------------------------------------------------------------------------------- pages


def test_attention_page_shows_similar_cases(artifacts: Path) -> None:
    small_state(artifacts)
    with_similar_cases(artifacts)
    at = run_page("5_Attention.py")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    cases = table_with(at, "similarity")
    assert cases["image_id"].tolist() == [f"img{i:05d}" for i in range(6, 11)]  # closest to img00000 (angle 0)
    assert cases["similarity"].iloc[0] == pytest.approx(math.cos(6 * SIMILAR_STEP), abs=2e-3)
    assert f"*{similar_caption(6)}*" in texts(at)
    assert len(at.image) == 5
    at.slider(key="att_sim_k").set_value(2).run()
    assert table_with(at, "similarity")["image_id"].tolist() == ["img00006", "img00007"]


def test_attention_page_without_a_feature_store_says_so(artifacts: Path) -> None:
    small_state(artifacts)
    at = run_page("5_Attention.py")
    assert not at.exception and not at.warning
    assert any("Similar cases are unavailable for this run" in i.value and "names no feature store" in i.value
               for i in at.info)


def test_caption_page_picks_a_dataset_image_with_its_reference(artifacts: Path) -> None:
    small_state(artifacts)
    with_similar_cases(artifacts)
    at = run_page("6_Caption_an_image.py")
    assert not at.exception
    at.radio(key="cap_source").set_value("An image of the run's dataset").run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key="cap_pick")
    assert picker.options[:6] == [f"img{i:05d} (test)" for i in range(6)]  # test images first
    assert picker.options[6] == "img00006 (train)"
    assert f"**Reference:** {similar_caption(0)}" in texts(at)
    # the fixture run has no weights: the caption fails with a note, the similar cases still show
    assert any("Could not caption" in w.value for w in at.warning)
    assert table_with(at, "similarity")["image_id"].iloc[0] == "img00006"
    picker.set_value("img00008").run()
    assert f"**Reference:** {similar_caption(8)}" in texts(at)
    assert "img00008" not in table_with(at, "similarity")["image_id"].tolist()  # not its own case


def test_caption_page_dataset_source_when_the_dataset_is_gone(artifacts: Path) -> None:
    small_state(artifacts)
    data = with_similar_cases(artifacts)
    (data / "captions.csv").unlink()
    at = run_page("6_Caption_an_image.py")
    at.radio(key="cap_source").set_value("An image of the run's dataset").run()
    assert not at.exception and not at.warning
    assert any(f"The dataset of `{FINISHED_ID}` cannot be loaded here" in i.value for i in at.info)


def test_run_vs_run_table_sorts_filters_and_exports(artifacts: Path) -> None:
    full_state(artifacts)
    at = run_page("4_Per-image_BLEU.py")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    # the fixtures' evaluations predate per-image CIDEr and groups: a note each, no exception
    notes = [i.value for i in at.info]
    assert sum("no `cider` column" in n for n in notes) == 2
    assert sum("no `group` column" in n for n in notes) == 2
    pairs = table_with(at, "bleu1_diff")
    a = pd.read_csv(artifacts / "runs" / FINISHED_ID / "eval" / "test" / "predictions.csv").set_index("image_id")
    b = pd.read_csv(artifacts / "runs" / FINISHED70_ID / "eval" / "test" / "predictions.csv").set_index("image_id")
    expected = (a["bleu1"] - b["bleu1"]).sort_values(ascending=False, kind="stable")
    assert pairs["image_id"].tolist() == expected.index.tolist()  # where A beats B most, first
    assert pairs["bleu1_diff"].tolist() == pytest.approx(expected.tolist())
    assert "Download the run-vs-run table as CSV" in downloads(at)
    at.multiselect(key="pair_f_modality").set_value(["MR"]).run()
    assert set(table_with(at, "bleu1_diff")["image_id"]) == {"img00001", "img00003", "img00005"}
    at.text_input(key="pair_words").input("liver").run()  # in every reference
    assert len(table_with(at, "bleu1_diff")) == 3
    at.text_input(key="pair_words").input("kidney").run()
    assert "No image matches the filters." in [i.value for i in at.info]
    assert not at.exception


def test_run_vs_run_with_cider_and_groups(artifacts: Path) -> None:
    full_state(artifacts)
    for run_id, offset in ((FINISHED_ID, 0.5), (FINISHED70_ID, 0.0)):
        path = artifacts / "runs" / run_id / "eval" / "test" / "predictions.csv"
        df = pd.read_csv(path)
        df["cider"] = np.arange(len(df)) * 0.1 + offset
        df["group"] = [f"case{i // 2}" for i in range(len(df))]
        df.to_csv(path, index=False)
    at = run_page("4_Per-image_BLEU.py")
    assert not at.exception and not at.warning
    assert not any("column" in i.value for i in at.info)
    at.selectbox(key="pair_sort").set_value("cider_diff").run()
    pairs = table_with(at, "cider_diff")
    assert pairs["cider_diff"].tolist() == pytest.approx([0.5] * 6)
    at.multiselect(key="pair_f_group").set_value(["case1"]).run()
    assert sorted(table_with(at, "cider_diff")["image_id"]) == ["img00002", "img00003"]


def test_run_vs_run_needs_two_evaluated_runs(artifacts: Path) -> None:
    small_state(artifacts)
    at = run_page("4_Per-image_BLEU.py")
    assert not at.exception and not at.warning
    assert "Needs two evaluated runs" in texts(at)


def test_per_image_page_without_runs_has_no_pair_section() -> None:
    at = run_page("4_Per-image_BLEU.py")
    assert not at.exception and not at.warning
    assert "Run A vs run B, per image" not in [h.value for h in at.subheader]


def test_compare_overlays_both_runs_curves(artifacts: Path) -> None:
    full_state(artifacts)
    at = run_page("3_Compare.py")
    assert not at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    loss = next(s for s in specs if "Loss per epoch" in json.dumps(s["layout"].get("title", "")))
    names = {t["name"] for t in loss["data"]}
    assert names == {f"{label} · {split}" for label in ("model-80", "model-70")
                     for split in ("train", "validation")}


def test_data_page_gallery_filters_and_leakage_figure(artifacts: Path) -> None:
    folder = artifacts / "mini"
    rows = []
    for i in range(16):
        write_image(folder / f"im{i}.png", seed=i)
        rows.append({"image_path": f"im{i}.png", "caption": f"axial ct shows lesion number {i // 4}",
                     "group": f"g{i // 4}", "modality": "CT" if i % 2 else "MR"})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    at = run_page("1_Data.py")
    at.text_input[0].input(f"csv:{folder / 'captions.csv'}")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    assert "16 of 16 images match; showing the first 12." in texts(at)
    assert "Download the filtered list as CSV" in downloads(at)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any("image-level vs group-level" in json.dumps(s["layout"].get("title", "")) for s in specs)
    at.multiselect(key="gal_f_group").set_value(["g1"]).run()
    assert "4 of 16 images match; showing the first 4." in texts(at)
    at.multiselect(key="gal_f_modality").set_value(["CT"]).run()
    assert "2 of 16 images match; showing the first 2." in texts(at)
    at.text_input(key="gal_words").input("kidney").run()
    assert "No image matches the filters." in [i.value for i in at.info]
    assert not at.exception


def test_per_image_single_run_shows_cider_or_says_it_is_missing(artifacts: Path) -> None:
    small_state(artifacts)
    at = run_page("4_Per-image_BLEU.py")
    assert not at.exception and not at.warning
    assert f"`{FINISHED_ID}`: its predictions.csv has no `cider` column" in texts(at)
    assert "cider" not in at.dataframe[0].value.columns
    path = artifacts / "runs" / FINISHED_ID / "eval" / "test" / "predictions.csv"
    df = pd.read_csv(path)
    df["cider"] = np.linspace(0.0, 1.0, len(df))
    df.to_csv(path, index=False)
    at = run_page("4_Per-image_BLEU.py")
    assert not at.exception and not at.warning
    assert "no `cider` column" not in texts(at)
    at.selectbox(key="pi_sort").set_value("cider").run()
    assert at.dataframe[0].value["cider"].tolist() == pytest.approx(sorted(df["cider"]))


@pytest.mark.slow
def test_similar_cases_of_a_really_trained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny run trained for real: its config.json, split and store feed the similar cases as written."""
    from medcap.config import RunConfig

    monkeypatch.setenv("MEDCAP_DATA", str(tmp_path / "data"))  # its dataset lies in the data folders
    from medcap.train import train_run
    from tests.support.tiny import make_tiny

    spec, store = make_tiny(tmp_path / "data", n=36, seed=0)
    cfg = RunConfig.from_preset("model-80", dataset=spec, epochs=1, batch_size=16, embed_dim=16, lstm_units=16,
                                dense_units=16, attn_units=16, dropout=0.1, min_count=1, seed=3,
                                feature_store=str(store))
    run = train_run(cfg, run_dir=tmp_path / "runs" / "tiny")
    split = json.loads((run / "split.json").read_text())
    memory = similar.case_memory(run)
    assert sorted(memory.ids) == sorted(split["train"])
    images = similar.run_images(run)
    assert images["split"].tolist()[: len(split["test"])] == ["test"] * len(split["test"])
    reference = dict(zip(images["image_id"], images["caption"], strict=True))
    for test_id in split["test"]:
        cases = similar.similar_cases(memory, similar.stored_features(run, [test_id])[0], k=3)
        # the features encode the caption's class: the closest training images share the test's caption
        assert cases["caption"].tolist() == [reference[test_id]] * 3
        assert cases["similarity"].min() > 0.9

