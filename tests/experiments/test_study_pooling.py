"""Study pooling without training: own-pool 1-NN, order-free rows, pools recorded, seeds, one CIDEr rule.

The study folder is written by hand (run folders with finished evaluations), so these tests take ~1 s.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medcap.base.io import write_json, write_text
from medcap.eval.metrics import cider
from medcap.experiments import study
from medcap.runs.folder import RunDir

REFS = {0: ["a small nodule left", "a large mass right", "no finding seen", "a small effusion left"],
        1: ["a large nodule right", "a cavity left apex", "a small mass right", "no finding here"]}
# model-80 trains on the paper's pool (short captions only); medcap-best on a larger, truncated pool
NN = {"model-80": "a small nodule right", "medcap-best": "a large mass left"}
SYSTEM_CAPTION = {"model-80": "a small nodule left", "medcap-best": "a large mass right"}
POOLS = {"model-80": ("drop", 60), "medcap-best": ("truncate", 130)}


def _write_eval(run: RunDir, name: str, fold: int, prediction: str, system: str, retrieval: bool) -> None:
    ev = run.eval_dir(name)
    ev.path.mkdir(parents=True)
    ids = [f"f{fold}i{i}" for i in range(4)]
    rows = [{"image_id": i, "references": json.dumps([r]), "prediction": prediction, "nn_caption": NN[system],
             "group": f"f{fold}c{n // 2}"} for n, (i, r) in enumerate(zip(ids, REFS[fold], strict=True))]
    write_text(ev.predictions, pd.DataFrame(rows).to_csv(index=False))
    rule, size = POOLS[system]
    long = "longer ones truncated" if rule == "truncate" else "longer ones dropped"
    write_json(ev.metrics, {
        "model": {}, "most_frequent_caption": "no finding",
        "decode_options": {"memory_k": 4 if retrieval and "neural" not in name else 0, "memory_lambda": 0.3,
                           "block_adjacent": system == "medcap-best"},
        "caption_health": {"model": {"enforced_by_decoding": ["adjacent_repeat_share"] if system == "medcap-best"
                                     else []}},
        "baseline_pool": {"n_images": size + fold, "rule": f"the run's training split, captions of at most 20 words "
                          f"({long})", "ids_sha256": f"{system}-{fold}"}})


def _fake_study(folder: Path, systems: list[str], seeds: list[int] | None = None) -> study.StudySettings:
    settings = study.StudySettings(dataset="csv:data.csv", folds=2, systems={s: {"preset": s} for s in systems},
                                   with_meteor=False, n_boot=100, seeds=seeds)
    for fold in range(2):
        for system in systems:
            for seed in settings.seed_values():
                run = RunDir(folder / study.RUNS / study.run_name(fold, system, seed))
                caption = SYSTEM_CAPTION[system] if seed in (None, 1) else "no finding seen"
                _write_eval(run, study.EVAL_NAME, fold, caption, system, system == "medcap-best")
                if system == "medcap-best":
                    _write_eval(run, study.EVAL_NAME + "-neural_only", fold, "a small nodule left", system, True)
    return settings


def test_each_system_against_its_own_pool_and_rows_never_depend_on_order(tmp_path: Path) -> None:
    settings = _fake_study(tmp_path / "a", ["model-80", "medcap-best"])
    results = study.pool_results(tmp_path / "a", settings)
    reordered = _fake_study(tmp_path / "b", ["medcap-best", "model-80"])
    assert json.dumps(study.pool_results(tmp_path / "b", reordered)) == json.dumps(results)

    drop, trunc = (f"1-NN · pool: captions of at most 20 words (longer ones {w})" for w in ("dropped", "truncated"))
    assert results["system_pool"] == {"medcap-best": trunc.removeprefix("1-NN · "),
                                      "model-80": drop.removeprefix("1-NN · ")}
    own = results["paired_vs_own_pool_1nn"]
    assert own["model-80"]["baseline"] == drop and own["medcap-best"]["baseline"] == trunc
    assert own["medcap-best:neural_only"]["baseline"] == trunc  # a variant keeps its system's pool
    pooled = results["pooled"]
    for system, base in (("model-80", drop), ("medcap-best", trunc)):
        assert own[system]["cider"]["diff"] == pytest.approx(pooled[system]["cider"]["value"]
                                                             - pooled[base]["cider"]["value"])
    # 1-NN of medcap-best's own pool writes "a large mass left", model-80's pool "a small nodule right"
    refs = [[r.split()] for f in (0, 1) for r in REFS[f]]
    bleu_trunc = sum(len(set(["a", "large", "mass", "left"]) & set(r[0])) for r in refs) / 32
    assert pooled[trunc]["bleu1"]["value"] == pytest.approx(bleu_trunc)
    # the other pool's figure is shown beside, labelled
    assert set(results["paired_vs_other_pool_1nn"]["medcap-best"]) == {drop}
    pools = results["pools"]
    assert [f["n_images"] for f in pools[trunc.removeprefix("1-NN · ")]["per_fold"]] == [130, 131]
    assert pools[drop.removeprefix("1-NN · ")]["systems"] == ["model-80"]
    assert results["decoding"]["medcap-best"]["retrieval_augmented"] is True
    assert results["decoding"]["medcap-best:neural_only"]["retrieval_augmented"] is False
    assert results["caption_health"]["medcap-best"]["enforced_by_decoding"] == ["adjacent_repeat_share"]
    frame = study.pooled_frame(results)
    assert list(frame["system"]) == sorted(frame["system"])  # sorted rows, whatever --systems said
    assert "medcap-best (retrieval-augmented)" in set(frame["system"])
    assert "cider - 1-NN, own pool" in frame.columns and f"cider - {drop}" in frame.columns
    health = study.health_frame(results["caption_health"]).set_index("system")
    assert health.loc["medcap-best", "adjacent_repeat_share"] == "0.000 (enforced by decoding)"


def test_per_fold_and_pooled_cider_follow_one_document_frequency_rule(tmp_path: Path) -> None:
    settings = _fake_study(tmp_path, ["model-80"])
    results = study.pool_results(tmp_path, settings)
    hyp = SYSTEM_CAPTION["model-80"].split()
    per_fold = [cider([[r.split()] for r in REFS[f]], [hyp] * 4).value for f in (0, 1)]
    got = [f["systems"]["model-80"]["cider"] for f in results["per_fold"]]
    assert got == pytest.approx(per_fold)  # each fold's own references, as in each fold's evaluation
    assert results["pooled"]["model-80"]["cider"]["value"] == pytest.approx(sum(per_fold) / 2)
    assert "each fold's own test references" in results["cider_rule"]


def test_seeds_are_pooled_with_a_two_level_interval(tmp_path: Path) -> None:
    settings = _fake_study(tmp_path, ["model-80", "medcap-best"], seeds=[1, 2])
    assert study.run_name(0, "model-80", 2) == "fold0-model-80-s2"
    assert settings.configs(0, 2)["model-80"].seed == 2
    results = study.pool_results(tmp_path, settings)
    assert results["n_seeds"] == 2 and results["n_images"] == 8
    bleu = results["pooled"]["model-80"]["bleu1"]
    assert len(bleu["per_seed"]) == 2 and bleu["per_seed"][0] != bleu["per_seed"][1]
    assert bleu["seed_sd"] > 0
    assert "two-level bootstrap" in results["ci_method"]
    assert "seed" in results["paired_vs_own_pool_1nn"]["model-80"]["bleu1"]["method"]


def test_systems_with_the_same_training_images_share_one_named_pool() -> None:
    from medcap.experiments.pooling import pool_names

    drop = {"rule": "the run's training split, captions of at most 20 words (longer ones dropped)", "ids_sha256": "x"}
    trunc = {**drop, "rule": drop["rule"].replace("dropped", "truncated")}
    names = pool_names({"b": [trunc], "a": [drop], "c": [{**drop, "ids_sha256": "y"}]})
    assert names["a"] == names["b"] == ("pool: captions of at most 20 words (longer ones dropped) = captions of at "
                                        "most 20 words (longer ones truncated) (the same images)")
    assert names["c"] == "pool: captions of at most 20 words (longer ones dropped)"


def test_study_page_labels_retrieval_pools_intervals_and_enforced_health(artifacts: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from medcap.base.io import write_json as write
    from tests.conftest import PROJECT_ROOT

    folder = artifacts / "studies" / "20260101-000000-s-abcdef"
    settings = _fake_study(folder, ["model-80", "medcap-best"], seeds=[1, 2])
    write(folder / study.STUDY_FILE, {"dataset": settings.dataset, "folds": 2, "seed": 0,
                                      "systems": settings.systems, "seeds": [1, 2]})
    write(folder / study.STATUS_FILE, {"state": "finished", "progress": 1.0})
    write(folder / study.RESULTS_JSON, study.pool_results(folder, settings))
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "7_Study.py"), default_timeout=60).run()
    assert not at.exception and not at.warning
    pooled = at.dataframe[0].value.set_index("system")
    assert "medcap-best (retrieval-augmented)" in pooled.index and "medcap-best:neural_only" in pooled.index
    assert pooled.loc["model-80", "cider - 1-NN, own pool"].startswith(("+", "-"))
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert "two-level bootstrap" in shown and "each fold's own test references" in shown and "seeds 1, 2" in str(
        [s.value for s in at.subheader])
    pools = next(d.value for d in at.dataframe if "pool" in d.value.columns)
    assert set(pools["systems"]) == {"model-80", "medcap-best"}
    health = next(d.value for d in at.dataframe if "adjacent_repeat_share" in d.value.columns).set_index("system")
    assert health.loc["medcap-best", "adjacent_repeat_share"] == "0.000 (enforced by decoding)"


def test_presets_record_when_and_on_what_data_they_were_chosen() -> None:
    from medcap.config import PRESET_CHOSEN, PRESETS
    from medcap.experiments import frozen

    assert set(PRESET_CHOSEN) == set(PRESETS)
    best = frozen.provenance("medcap-best", "medpix:../shared/data/medpix-dev/")
    assert best["fixed"].startswith("2026-11-28") and best["chosen_on_this_data"] is True
    assert "Not frozen before that study" in best["chosen_on"]
    assert frozen.provenance("medcap-best", "synthetic:2000")["chosen_on_this_data"] is False
    assert frozen.provenance("model-80", "medpix:../shared/data/medpix-dev")["chosen_on_this_data"] is False
    notes = study.study_notes({"provenance": {"medcap-best": best}})
    assert any("chosen on this data" in line and "not a held-out test" in line for line in notes)


def test_clinical_facts_are_pooled_over_folds_and_seeds_with_the_1nn_under_its_pool(tmp_path: Path) -> None:
    settings = _fake_study(tmp_path, ["model-80"], seeds=[1, 2])
    marks = {"model": ["right", "wrong", "not stated", "no label"], "caption": ["not stated"] * 4,
             "nn": ["right", "right", "wrong", "not stated"]}
    for fold in range(2):
        for seed in (1, 2):
            path = RunDir(tmp_path / study.RUNS / study.run_name(fold, "model-80", seed)).eval_dir(
                study.EVAL_NAME).predictions
            table = pd.read_csv(path, keep_default_na=False)
            for fact in ("modality", "plane", "region"):
                table[f"fact_{fact}"] = marks["model"]
                table[f"caption_fact_{fact}"] = marks["caption"]
                table[f"nn_fact_{fact}"] = marks["nn"]
            write_text(path, table.to_csv(index=False))
            variant = path.parent.parent / f"{study.EVAL_NAME}-facts_silent"  # a decoding variant of the same run
            shutil.copytree(path.parent, variant)
            for fact in ("modality", "plane", "region"):
                table[f"fact_{fact}"] = ["right", "not stated", "not stated", "no label"]
            write_text(variant / path.name, table.to_csv(index=False))
    facts = study.pool_results(tmp_path, settings)["clinical_facts"]
    silent = facts["model-80:facts_silent"]["modality"]  # every variant's facts pooled under its own row
    assert silent["correct"] == pytest.approx(4 / 12) and silent["wrong_of_stated"] == pytest.approx(0.0)
    assert sum(k.startswith("1-NN") for k in facts) == 1  # the 1-NN once: it is the same for every variant
    model = facts["model-80"]["modality"]  # 2 folds x 2 seeds x 4 images, the "no label" ones left out
    assert (model["n_images"], model["n_scored"]) == (16, 12)
    assert model["correct"] == pytest.approx(4 / 12) and model["wrong_of_stated"] == pytest.approx(0.5)
    assert facts["model-80 (caption only)"]["plane"]["not_stated"] == pytest.approx(1.0)
    nn = next(v for k, v in facts.items() if k.startswith("1-NN"))["region"]  # one seed's worth: 2 folds x 4
    assert nn["n_images"] == 8 and nn["correct"] == pytest.approx(0.5)
