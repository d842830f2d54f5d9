"""A run trained with --facts: fact predictors in facts.json, a findings line with every caption, facts scored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.support.tiny import make_tiny, tiny_config


@pytest.fixture(scope="module")
def facts_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcap.train import train_run

    root = tmp_path_factory.mktemp("factsrun")
    spec, store = make_tiny(root / "data", n=36, seed=0, pooled_signal=True)  # MR for class 0, CT otherwise
    cfg = tiny_config(spec, store, epochs=1, facts=True, facts_constrain=True)
    return train_run(cfg, run_dir=root / "runs" / "facts")


@pytest.mark.slow
def test_facts_json_holds_a_modality_head_fitted_on_the_training_labels(facts_run: Path) -> None:
    from medcap.inference.opened import load_run

    data = json.loads((facts_run / "facts.json").read_text())
    assert data["format"] == "medcap.facts/1"
    heads = {h["fact"]: h for h in data["heads"]}
    assert set(heads) == {"modality"}  # the CSV labels only the modality
    assert heads["modality"]["classes"] == ["ct", "mr"]
    loaded = load_run(facts_run)
    caps = loaded.caption_ids(json.loads((facts_run / "split.json").read_text())["test"])
    table = pd.read_csv(Path(loaded.cfg.dataset.split(":", 1)[1])).set_index("image_id")
    ids = json.loads((facts_run / "split.json").read_text())["test"]
    for image_id, cap in zip(ids, caps, strict=True):  # class-encoding features: every modality right
        value, prob, _ = cap.facts["modality"]
        assert value == table.loc[image_id, "modality"].lower() and 0.5 < prob <= 1.0


@pytest.mark.slow
def test_evaluation_scores_findings_line_and_caption_and_writes_the_line(facts_run: Path) -> None:
    from medcap.eval.evaluate import evaluate_run

    out = evaluate_run(facts_run, with_meteor=False, with_reliance=False)
    from medcap.eval.artifacts import read_metrics, read_predictions

    facts = read_metrics(facts_run, out.name)["clinical_facts"]  # through the run-file schema, as pages read it
    assert "facts_line" in read_predictions(facts_run, out.name).columns
    assert {"model", "model_caption_only", "nearest_neighbour"} <= set(facts["systems"])
    assert facts["model"]["modality"]["correct"] == pytest.approx(1.0)  # the line states it, and right
    assert facts["model_caption_only"]["modality"]["correct"] == pytest.approx(0.0)  # captions never say it
    pred = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert set(pred["facts_line"]) <= {"ct", "mr"} and len(pred)
    assert set(pred["fact_modality"]) == {"right"}


@pytest.mark.slow
def test_facts_silent_decoding_bans_the_facts_the_line_is_not_sure_of(facts_run: Path, monkeypatch) -> None:
    import medcap.model.decoding.facts as decoding_facts
    from medcap.inference.opened import load_run

    loaded = load_run(facts_run)
    seen: list = []
    real = decoding_facts.fact_bans
    monkeypatch.setattr(decoding_facts, "fact_bans", lambda vocab, sure, unsure=None: seen.append(unsure)
                        or real(vocab, sure, unsure))
    monkeypatch.setattr(type(loaded), "predict_facts",
                        lambda self, g, r: [{"modality": ("ct", 0.55, False)} for _ in range(len(g))])
    ids = json.loads((facts_run / "split.json").read_text())["test"][:3]
    opts = loaded.decode_options()
    loaded.caption_ids(ids, opts)
    loaded.caption_ids(ids, opts.replace(facts_silent=True))
    loaded.caption_ids(ids, opts.replace(facts_constrain=False, facts_silent=True))  # silent needs constrain
    assert seen == [None, [["modality"]] * 3]
