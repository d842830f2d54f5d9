"""The real MedPix sample (skips where ../shared/data/medpix-dev is absent)."""

from __future__ import annotations

from pathlib import Path

from medcap.data import leakage_report, load_records, make_split, prepare_captions, summarize


def test_medpix_dev_real_data(medpix_dir: Path) -> None:
    res = load_records(f"medpix:{medpix_dir}")
    assert res.records_read == 1850 and len(res.table) == 1850
    assert res.skipped == {}
    assert res.table["group"].nunique() == 602
    assert res.table["image_id"].is_unique
    assert set(res.table["split"]) == {"train", "val"}
    assert (res.table["split"] == "val").sum() == 197
    assert set(res.table["modality"]) == {"CT", "MR"}
    t = res.table  # every record's labels are columns (counts from Descriptions.json)
    assert t["location_category"].value_counts().to_dict() == {
        "Head": 808, "Spine and Muscles": 315, "Thorax": 293, "Abdomen": 287, "Reproductive and Urinary System": 147}
    assert (t["location"] == "Genitourinary").sum() == 140 and (t["location"] == "Brain and Neuro").sum() == 580
    assert (t["modality_detail"] == "MR - T2 weighted").sum() == 271 and (t["plane"] == "Axial").sum() == 1262
    assert t["sex"].value_counts().to_dict() == {"male": 980, "female": 812, "N/A": 58}
    assert (t["acr_code"] == "1.3").sum() == 278 and (t["age"] == "21").sum() == 73
    kept, dropped = prepare_captions(res.table)
    assert dropped["placeholder"] == 21
    grouped = leakage_report(kept, make_split(kept, "model-80", "group", seed=42))
    assert grouped["groups_shared_train_test"] == 0
    assert grouped["test_captions_in_train_fraction"] == 0.0
    by_image = leakage_report(kept, make_split(kept, "model-80", "image", seed=42))
    assert by_image["groups_shared_train_test"] > 20
    assert by_image["test_captions_in_train_fraction"] > 0.1
    s = summarize(res)
    assert s["groups"] == 602 and s["dropped"]["placeholder"] == 21
