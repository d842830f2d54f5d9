"""Clinical facts: extraction by the lexicon, truth from labels, scoring with case CIs, the evaluation block."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medcap.data.facts import extract_facts, fact_marks, label_facts, predicted_facts, truth_facts
from medcap.data.text import tokenize
from medcap.eval.facts_score import clinical_facts, facts_lines, reference_agreement, score_fact, score_facts

CAPTIONS = [  # caption, the facts it states (others: None)
    ("Axial T2-weighted MRI of the brain", {"modality": "mr", "mr_sequence": "t2", "plane": "axial", "region": "head"}),
    ("Coronal CTA of the chest shows a pulmonary embolus",
     {"modality": "ct", "contrast": "with", "plane": "coronal", "region": "thorax"}),
    ("Sagittal T1 post-gadolinium image of the lumbar spine",
     {"modality": "mr", "mr_sequence": "t1", "contrast": "with", "plane": "sagittal", "region": "spine and muscles"}),
    ("Non-contrast CT of the abdomen: thickened transverse colon",  # "transverse colon" is no plane
     {"modality": "ct", "contrast": "without", "region": "abdomen"}),
    ("FLAIR hyperintensity in the periventricular white matter",  # a sequence implies MR
     {"modality": "mr", "mr_sequence": "flair", "region": "head"}),
    ("Hypodense lesion in the liver", {"modality": "ct", "region": "abdomen"}),  # a CT-only word implies CT
    ("Transverse ultrasound of the right ovary",
     {"modality": "ultrasound", "plane": "axial", "region": "reproductive and urinary system"}),
    ("T2* GRE image shows blooming", {"modality": "mr", "mr_sequence": "swi-gre"}),
    ("Axial and coronal images of the kidney", {"region": "reproductive and urinary system"}),  # two planes: none
    ("Thrombus in the superior sagittal sinus", {"region": "head"}),  # anatomy, not a plane
    ("Liver and lung metastases", {}),  # one vote each: no region
    ("MRA of the circle of Willis", {"modality": "mr", "mr_sequence": "mra", "region": "head"}),
    ("Enhancing lesion in the femoral head", {"region": "spine and muscles"}),  # lesion enhancement: no contrast
    ("Plain film of the knee", {"modality": "radiograph", "region": "spine and muscles"}),
    ("small nodule in the right upper lobe on chest radiograph",
     {"modality": "radiograph", "region": "thorax", "finding": "nodule", "location": "right upper zone"}),
    ("chest film shows a large mass in the left lower zone and a small effusion at the right base",
     {"modality": "radiograph", "region": "thorax", "finding": "effusion+mass",
      "location": "left lower zone+right lower zone"}),
    ("normal chest radiograph", {"modality": "radiograph", "region": "thorax", "finding": "none"}),
]


@pytest.mark.parametrize(("caption", "stated"), CAPTIONS)
def test_extract_facts_from_hand_written_captions(caption: str, stated: dict[str, str]) -> None:
    facts = extract_facts(caption)
    assert {k: v for k, v in facts.items() if v is not None} == stated
    if "*" not in caption:  # tokens (as predictions come) state what the text states
        assert extract_facts(tokenize(caption)) == facts


def test_label_facts_of_medpix_synthetic_and_csv_rows() -> None:
    medpix = {"modality": "MR", "modality_detail": "MR - T1W w/Gd (fat suppressed)", "plane": "Transverse",
              "location_category": "Head", "location": "Brain and Neuro"}
    assert label_facts(medpix) == {"modality": "mr", "mr_sequence": "t1", "contrast": "with", "plane": "axial",
                                   "region": "head", "finding": None, "location": None}
    ct = {"modality": "CT", "modality_detail": "CT - noncontrast", "plane": "3D Reconstruction",
          "location_category": "Reproductive and Urinary System", "location": "Genitourinary"}
    assert label_facts(ct)["contrast"] == "without" and label_facts(ct)["plane"] is None
    assert label_facts(ct)["region"] == "reproductive and urinary system" and label_facts(ct)["location"] is None
    boxes = [{"finding": "nodule", "location": "right upper zone", "size": "small", "box": [0, 0, 1, 1]},
             {"finding": "effusion", "location": "left lower zone", "size": "large", "box": [0, 0, 1, 1]}]
    synthetic = label_facts({"modality": "XR", "plane": "PA", "boxes": json.dumps(boxes)})
    assert (synthetic["modality"], synthetic["plane"]) == ("radiograph", None)
    assert (synthetic["finding"], synthetic["location"]) == ("effusion+nodule", "left lower zone+right upper zone")
    assert label_facts({"modality": "CT", "plane": "axial", "boxes": "[]"})["finding"] == "none"
    csv = label_facts({"modality": "Ultrasound", "region": "Chest", "plane": "Sagittal", "finding": "Mass"})
    assert [csv[k] for k in ("modality", "region", "plane", "finding")] == ["ultrasound", "thorax", "sagittal", "mass"]


def test_truth_falls_back_to_the_reference_and_says_so() -> None:
    row = {"modality": "CT", "modality_detail": "CT - Montage", "plane": "Other View (see caption)",
           "location_category": "Thorax"}
    facts, sources = truth_facts(row, ["Coronal reformat of the chest with contrast, T2"])
    assert (facts["plane"], sources["plane"]) == ("coronal", "reference")
    assert (facts["contrast"], sources["contrast"]) == ("with", "reference")
    assert (facts["region"], sources["region"]) == ("thorax", "label")  # the label wins over the caption
    assert (facts["mr_sequence"], sources["mr_sequence"]) == (None, None)  # a CT has no MR sequence to score
    assert truth_facts(row, ["nothing said"])[1]["plane"] is None


def test_scores_of_a_tiny_table_are_the_hand_counted_shares() -> None:
    truth = [{"modality": v} for v in ("ct", "ct", "mr", "mr", "ct", None)]
    pred = [{"modality": v} for v in ("ct", "mr", "mr", None, "ct", "ct")]
    marks = fact_marks(truth, pred, "modality")
    assert marks == ["right", "wrong", "right", "not stated", "right", "no label"]
    one_case = score_fact(marks, groups=["a"] * 6, n_boot=200)  # one case: every resample is the whole set
    assert one_case["n_scored"] == 5 and one_case["n_stated"] == 4
    assert one_case["correct"] == pytest.approx(0.6) and one_case["correct_ci"] == pytest.approx([0.6, 0.6])
    assert one_case["wrong_of_stated"] == pytest.approx(0.25) and one_case["wrong_of_stated_ci"] == pytest.approx(
        [0.25, 0.25])
    assert one_case["not_stated"] == pytest.approx(0.2) and one_case["not_stated_ci"] == pytest.approx([0.2, 0.2])
    groups = ["a", "a", "b", "b", "c", "c"]
    by_case = score_facts(pred, truth, groups, facts=("modality",), n_boot=500, seed=1)["modality"]
    assert by_case == score_facts(pred, truth, groups, facts=("modality",), n_boot=500, seed=1)["modality"]
    lo, hi = by_case["correct_ci"]
    assert 0.0 <= lo < 0.6 < hi <= 1.0  # three cases: the interval is wide
    assert by_case["correct"] == one_case["correct"]
    nothing = score_fact(["no label", "no label"])
    assert nothing["n_scored"] == 0 and nothing["correct"] is None


def test_stated_facts_take_precedence_over_the_caption() -> None:
    captions = ["axial ct of the chest", "mri of the knee"]
    findings = [{"plane": "coronal", "modality": None}, None]
    both = predicted_facts(captions, findings)
    assert (both[0]["modality"], both[0]["plane"], both[0]["region"]) == ("ct", "coronal", "thorax")
    assert both[1] == extract_facts(captions[1])
    alone = predicted_facts(["", ""], findings)  # the findings line scored alone
    assert alone[0]["plane"] == "coronal" and alone[0]["modality"] is None and alone[1]["plane"] is None
    with pytest.raises(ValueError, match="2 captions but 1"):
        predicted_facts(captions, findings[:1])


def test_clinical_facts_block_and_marks() -> None:
    table = pd.DataFrame({"image_id": ["1", "2", "3"], "caption": ["axial ct of the brain", "ct chest", "mri knee"],
                          "modality": ["CT", "CT", "MR"], "plane": ["Axial", "Coronal", ""],
                          "location_category": ["Head", "Thorax", "Spine and Muscles"]})
    systems = {"model": [["axial", "ct", "brain"], ["axial", "mri", "chest"], ["knee"]],
               "nearest_neighbour": [["ct"], ["ct"], ["ct"]]}
    block, marks = clinical_facts(table, None, systems, groups=["a", "b", "c"], n_boot=100)
    assert block["systems"] == ["model", "nearest_neighbour"] and block["lexicon"] == "1"
    assert marks["fact_modality"] == ["right", "wrong", "not stated"]
    assert marks["fact_plane"] == ["right", "wrong", "no label"]  # image 3: no plane label, none in its caption
    assert marks["fact_region"] == ["right", "right", "right"]
    model = block["model"]
    assert model["modality"]["correct"] == pytest.approx(1 / 3) and model["modality"]["wrong_of_stated"] == 0.5
    assert block["nearest_neighbour"]["modality"]["correct"] == pytest.approx(2 / 3)
    assert block["truth_source"]["plane"] == {"label": 2, "none": 1}
    text = "\n".join(facts_lines(block))
    assert "0.33 [" in text and "nearest_neighbour" in text
    assert facts_lines(None) == []


def test_reference_agreement_on_medpix_dev(medpix_dir: Path) -> None:
    from medcap.data import load_records, prepare_captions

    table, _ = prepare_captions(load_records(f"medpix:{medpix_dir}").table, max_words=10**6)
    agreement = reference_agreement(table)
    assert agreement["modality"]["labelled"] == len(table) == 1829
    for fact in ("modality", "plane", "region"):
        assert agreement[fact]["stated"] > 300 and agreement[fact]["agreement"] >= 0.90, (fact, agreement[fact])
