"""End to end: a tiny trained run evaluated (own split and another dataset) and compared with itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medcap.config import RunConfig
from medcap.eval.artifacts import CASE_PREDICTION_COLUMNS, PREDICTION_COLUMNS, read_predictions
from medcap.eval.metrics import BLEU_WEIGHTS, corpus_bleu_scores
from tests.support.tiny import make_tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from medcap.train import train_run

    root = tmp_path_factory.mktemp("evalrun")
    spec, store = make_tiny(root / "data", n=36, seed=0)
    other_spec, other_store = make_tiny(root / "other", n=9, seed=1, prefix="ext")
    cfg = RunConfig.from_preset("model-80", dataset=spec, epochs=1, batch_size=16, embed_dim=16, lstm_units=16,
                                dense_units=16, attn_units=16, dropout=0.1, min_count=1, seed=3,
                                feature_store=str(store))
    run = train_run(cfg, run_dir=root / "runs" / "tiny")
    return {"run": run, "spec": spec, "other_spec": other_spec, "other_store": other_store}


def test_evaluate_run_writes_metrics_predictions_attention(tiny_run: dict) -> None:
    from medcap.eval.evaluate import evaluate_run

    out = evaluate_run(tiny_run["run"], with_meteor=False)
    assert out == tiny_run["run"] / "eval" / out.name
    assert out.name.endswith("-test-greedy")
    metrics = json.loads((out / "metrics.json").read_text())
    split = json.loads((tiny_run["run"] / "split.json").read_text())
    assert metrics["n_images"] == len(split["test"]) > 0
    assert metrics["split"] == "test" and metrics["decode"] == "greedy"
    for system in (metrics["model"], *metrics["baselines"].values()):
        for key in (*BLEU_WEIGHTS, "rouge_l", "cider"):
            lo, hi = system[key]["ci95"]
            assert lo <= system[key]["value"] + 1e-9 and system[key]["value"] <= hi + 1e-9
    # class-encoding features: 1-NN retrieval returns the test image's own caption -> every score is 1
    nn = metrics["baselines"]["nearest_neighbour"]
    assert [nn[k]["value"] for k in (*BLEU_WEIGHTS, "rouge_l")] == pytest.approx([1.0] * 5)
    assert metrics["skipped"]["meteor"].startswith("not requested")
    assert metrics["provenance"]["references_per_image"] == 1
    assert metrics["provenance"]["bootstrap"]["resamples"] == 1000
    nw = metrics["next_word"]
    assert nw["n_pairs"] == sum(len(c.split()) + 1 for c in _test_captions(tiny_run, split["test"]))
    assert 0.0 <= nw["accuracy"] <= 1.0 and nw["recall_weighted"] == pytest.approx(nw["accuracy"])

    pred = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(pred.columns[:4]) == ["image_id", "image_path", "references", "prediction"]
    assert {"bleu1", "bleu4", "rouge_l", "ref_len", "pred_len", "nn_caption", "nn_bleu1", "modality"} <= set(pred)
    # the writer's order is the reader's contract
    facts = ("modality", "mr_sequence", "contrast", "plane", "region")
    assert list(pred.columns) == [*PREDICTION_COLUMNS, *CASE_PREDICTION_COLUMNS, "modality",
                                  *(f"fact_{f}" for f in facts), *(f"nn_fact_{f}" for f in facts)]
    back = read_predictions(tiny_run["run"], out.name)
    assert list(back["image_id"]) == list(pred["image_id"].astype(str))
    assert list(back["reference"]) == [" | ".join(json.loads(x)) for x in pred["references"]]
    assert sorted(pred["image_id"]) == sorted(split["test"])
    refs = [[r.split() for r in json.loads(x)] for x in pred["references"]]
    hyps = [p.split() for p in pred["prediction"]]
    assert metrics["model"]["bleu1"]["value"] == pytest.approx(corpus_bleu_scores(refs, hyps)["bleu1"])
    assert (pred["nn_caption"] == [" ".join(r[0]) for r in refs]).all()
    assert (pred["nn_bleu1"] == 1.0).all()

    for maps in ("attention.npz", "attention_mean.npz"):
        with np.load(out / maps) as att:
            assert sorted(att.files) == sorted(split["test"])
            for image_id, n_words in zip(pred["image_id"], pred["pred_len"], strict=True):
                assert att[image_id].shape == (n_words, 7, 7) and att[image_id].dtype == np.float16
    assert metrics["attention_maps"] == "last_position"

    # case-level bootstrap, split role, paper-definition P/R/F1, image reliance, caption health: stable names
    groups = dict(zip(pred["image_id"], pred["group"].astype(str), strict=True))
    assert metrics["bootstrap"]["unit"] == "group" and metrics["bootstrap"]["n_groups"] == len(set(groups.values()))
    assert metrics["split_role"] == "test" and metrics["used_for_model_selection"] is False
    assert metrics["run_label"].startswith("model-80 · ")
    paper = nw["paper_definition"]
    assert set(paper) >= {"precision", "recall", "f1"} and 0 <= paper["recall"] <= 1
    assert "majority_baseline" in nw and "accuracy_excl_unk" in nw
    rel = metrics["image_reliance"]["metrics"]
    assert set(rel) >= {"bleu1", "cider"} and len(rel["bleu1"]["ci95"]) == 2
    assert rel["bleu1"]["value"] == pytest.approx(metrics["model"]["bleu1"]["value"] - rel["bleu1"]["swapped"])
    health = metrics["caption_health"]["model"]
    assert health["n_images"] == len(pred) and 0 <= health["adjacent_repeat_share"] <= 1
    assert metrics["decode_options"]["beam"] == 1 and metrics["dataset_check"]["changed"] is False
    assert (pred["nn_cider"] > 0).all()  # 1-NN returns the image's own caption
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def _test_captions(tiny_run: dict, ids: list[str]) -> list[str]:
    table = pd.read_csv(tiny_run["spec"].removeprefix("csv:"))
    by_id = dict(zip(table["image_id"], table["caption"], strict=True))
    return [by_id[i] for i in ids]


def test_evaluate_on_another_dataset_split_all(tiny_run: dict) -> None:
    from medcap.eval.evaluate import evaluate_run

    out = evaluate_run(tiny_run["run"], dataset=tiny_run["other_spec"], split="all", decode="beam:2",
                       feature_store=tiny_run["other_store"], with_meteor=False, n_boot=200)
    metrics = json.loads((out / "metrics.json").read_text())
    assert out.name.endswith("-all-beam2")
    assert metrics["n_images"] == 9 and metrics["split"] == "all"
    # baselines come from the run's own training split: 1-NN still finds the right caption class
    assert metrics["baselines"]["nearest_neighbour"]["bleu1"]["value"] == pytest.approx(1.0)
    pred = pd.read_csv(out / "predictions.csv")
    assert sorted(pred["image_id"]) == [f"ext{i:03d}" for i in range(9)]


def test_evaluate_rejects_bad_requests(tiny_run: dict) -> None:
    from medcap.eval.evaluate import evaluate_run

    with pytest.raises(ValueError, match="unknown decode mode"):
        evaluate_run(tiny_run["run"], decode="sample")
    with pytest.raises(ValueError, match="no images in its own 'test' split"):
        evaluate_run(tiny_run["run"], dataset=tiny_run["other_spec"], split="test",
                     feature_store=tiny_run["other_store"], with_meteor=False)


def test_compare_run_with_itself_is_exactly_zero(tiny_run: dict) -> None:
    from medcap.eval.compare import compare_runs
    from medcap.inference.opened import load_run

    loaded = load_run(tiny_run["run"])
    res = compare_runs(tiny_run["run"], tiny_run["run"], with_meteor=False, n_boot=300, loaded=(loaded, loaded))
    assert res["images"] == "the runs' shared test split"
    split = json.loads((tiny_run["run"] / "split.json").read_text())
    assert res["n_images"] == len(split["test"])
    assert set(res["metrics"]) == {*BLEU_WEIGHTS, "rouge_l", "cider"}
    for m in res["metrics"].values():
        assert m["diff"] == 0.0 and m["ci95"] == [0.0, 0.0] and m["share_b_gt_a"] == 0.0
        assert m["a"] == m["b"]


def test_common_images_when_test_splits_differ() -> None:
    from medcap.eval.compare import common_images

    a = {"train": ["1", "2", "3"], "val": ["4"], "test": ["5", "6"]}
    b = {"train": ["1", "2"], "val": ["3"], "test": ["4", "5", "6"]}
    ids, basis = common_images(a, b, ["1", "2", "3", "4", "5", "6"])
    assert ids == ["5", "6"] and "neither run trained" in basis
    same, basis = common_images(a, dict(a), ["1", "2", "3", "4", "5", "6"])
    assert same == ["5", "6"] and basis == "the runs' shared test split"
    with pytest.raises(ValueError, match="--dataset"):
        common_images({"train": ["1"], "test": ["2"]}, {"train": ["2"], "test": ["1"]}, ["1", "2"])


def test_next_word_pairs_match_the_training_pairs() -> None:
    from medcap.eval.nextword import next_word_pairs
    from medcap.model import pairs_for

    token_ids = [[5, 6, 7], [8], []]
    images, prefixes, targets = next_word_pairs(token_ids, start_id=2, end_id=3, max_len=5)
    assert images.tolist() == [0, 0, 0, 0, 1, 1, 2]
    assert targets.tolist() == [5, 6, 7, 3, 8, 3, 3]
    assert prefixes[3].tolist() == [2, 5, 6, 7, 0]
    cap, prefix, target = pairs_for(token_ids, max_len=5)
    assert np.array_equal(cap, images) and np.array_equal(prefix, prefixes) and np.array_equal(target, targets)


def test_cli_evaluate_and_compare_print_tables(tiny_run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from medcap.cli import main

    assert main(["evaluate", str(tiny_run["run"]), "--no-meteor"]) == 0
    text = capsys.readouterr().out
    assert "nearest_neighbour" in text and "most_frequent" in text and "folder:" in text
    assert "clinical facts (lexicon 1)" in text and any(line.startswith("region ") for line in text.splitlines())
    bleu1 = next(line for line in text.splitlines() if line.startswith("bleu1"))
    assert "1.0000 [1.0000, 1.0000]" in bleu1  # the 1-NN column (class-encoding features)
    assert main(["compare", str(tiny_run["run"]), str(tiny_run["run"]), "--no-meteor", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metrics"]["bleu2"]["diff"] == 0.0
    assert main(["evaluate", str(tiny_run["run"]), "--decode", "top-k"]) == 2  # clear error, no traceback


def test_eval_images_on_real_medpix_official_split(medpix_dir: Path) -> None:
    from medcap.eval.evalset import prepared_table, select_ids

    cfg = RunConfig.from_preset("model-80", dataset=f"medpix:{medpix_dir}", protocol="official")
    result, table = prepared_table(cfg.dataset, cfg)
    assert result.has_official_split
    assert table["tokens"].map(len).max() <= 20  # the paper's caption length limit
    dev, basis = select_ids(table, "val", None)  # MedPix "dev" is the official validation split
    assert basis == "the dataset's own 'val' split" and 0 < len(dev) < len(table)
    assert set(table.loc[table["image_id"].isin(dev), "split"]) == {"val"}
    with pytest.raises(ValueError, match="no images in its own 'test' split"):
        select_ids(table, "test", None)


def test_next_word_accuracy_matches_training_val_accuracy(tiny_run: dict) -> None:
    """Next-word metrics feed the model exactly what training fed it (feature scaling included):
    on the val split, evaluation's accuracy equals Keras' val_accuracy of the kept (best) epoch."""
    from medcap.eval.evaluate import evaluate_run
    from medcap.runs.index import read_history

    config = json.loads((tiny_run["run"] / "config.json").read_text())
    assert config["feature_scale"]["grid"] != pytest.approx(1.0)  # the case that once went unscaled
    out = evaluate_run(tiny_run["run"], split="val", with_meteor=False, n_boot=50)
    metrics = json.loads((out / "metrics.json").read_text())
    history = read_history(tiny_run["run"])
    best = history.loc[history["val_loss"].idxmin()]
    assert metrics["next_word"]["accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)


def test_evaluate_refuses_a_changed_dataset_unless_allowed(tiny_run: dict) -> None:
    from medcap.eval.evaluate import evaluate_run

    csv_path = Path(tiny_run["spec"].removeprefix("csv:"))
    original = csv_path.read_text()
    table = pd.read_csv(csv_path)
    table.loc[0, "caption"] = table.loc[0, "caption"] + " edited"
    try:
        table.to_csv(csv_path, index=False)
        with pytest.raises(ValueError, match=r"config\.json: dataset_fingerprint .* differs .*--allow-changed-data"):
            evaluate_run(tiny_run["run"], with_meteor=False, n_boot=20)
        out = evaluate_run(tiny_run["run"], with_meteor=False, n_boot=20, allow_changed_data=True, name="changed")
        check = json.loads((out / "metrics.json").read_text())["dataset_check"]
        assert check["changed"] is True and check["allowed"] is True and check["saved"] != check["now"]
    finally:
        csv_path.write_text(original)


def test_evaluation_writes_clinical_facts(tiny_run: dict) -> None:
    """metrics.json's clinical_facts (model and both baselines) and the model's marks in predictions.csv."""
    from medcap.data.facts import MARKS
    from medcap.eval.evaluate import evaluate_run

    out = evaluate_run(tiny_run["run"], with_meteor=False, n_boot=200, with_reliance=False, name="facts")
    facts = json.loads((out / "metrics.json").read_text())["clinical_facts"]
    assert set(facts["systems"]) == {"model", "most_frequent", "nearest_neighbour"}
    for system in facts["systems"]:
        for fact in ("modality", "plane", "region"):
            for key in ("correct", "wrong_of_stated", "not_stated"):
                value = facts[system][fact][key]
                assert value is None or 0.0 <= value <= 1.0
    # the CSV's modality column is the label; no caption of this set states a modality
    assert facts["model"]["modality"]["n_scored"] == facts["model"]["modality"]["n_images"]
    assert (facts["model"]["modality"]["not_stated"], facts["model"]["modality"]["correct"]) == (1.0, 0.0)
    assert facts["truth_source"]["modality"] == {"label": facts["model"]["modality"]["n_images"]}
    # region comes from the references ("pleural effusion" -> thorax); 1-NN returns the image's own caption
    nn_region = facts["nearest_neighbour"]["region"]
    assert nn_region["n_scored"] > 0 and nn_region["correct"] == 1.0
    pred = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert set(pred["fact_modality"]) <= set(MARKS) and set(pred["fact_plane"]) == {"no label"}


def test_evaluate_on_its_own_dataset_scores_the_test_split_and_refuses_all(tiny_run: dict,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from medcap.cli import main
    from medcap.eval.evaluate import evaluate_run

    split = json.loads((tiny_run["run"] / "split.json").read_text())
    assert main(["evaluate", str(tiny_run["run"]), "--dataset", tiny_run["spec"], "--no-meteor", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "test" and metrics["n_images"] == len(split["test"])  # not "all" by default
    with pytest.raises(ValueError, match="include-training-images"):
        evaluate_run(tiny_run["run"], dataset=tiny_run["spec"], split="all", with_meteor=False)
    with pytest.raises(ValueError, match="include-training-images"):
        evaluate_run(tiny_run["run"], split="all", with_meteor=False)
    assert main(["evaluate", str(tiny_run["run"]), "--split", "all", "--no-meteor"]) == 2  # a clear refusal
    out = evaluate_run(tiny_run["run"], split="all", with_meteor=False, n_boot=20, include_training_images=True)
    assert json.loads((out / "metrics.json").read_text())["n_images"] == 36


def test_retrieval_augmented_decoding_is_labelled_with_its_neural_only_variant_beside(
        tiny_run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from medcap.cli.eval_cmd import format_metrics
    from medcap.eval.evaluate import evaluate_run

    memory = {"memory_k": 2, "memory_lambda": 0.5, "block_repeats": True}
    out = evaluate_run(tiny_run["run"], with_meteor=False, n_boot=50, decode_settings=memory, name="memory")
    metrics = json.loads((out / "metrics.json").read_text())
    plain = evaluate_run(tiny_run["run"], with_meteor=False, n_boot=50, decode_settings={"block_repeats": True},
                         name="memory-off")
    off = json.loads((plain / "metrics.json").read_text())
    assert metrics["retrieval_augmented"] is True and off["retrieval_augmented"] is False
    # the neural-only variant is the same weights decoded with the memory off, every other setting equal
    for key in ("bleu1", "bleu4", "cider"):
        assert metrics["model_neural_only"][key]["value"] == pytest.approx(off["model"][key]["value"])
    assert "model_neural_only" not in off
    from medcap.eval.artifacts import read_metrics

    assert read_metrics(tiny_run["run"], out.name)["retrieval_augmented"] is True  # passes the run-file schema
    rel = metrics["image_reliance"]
    assert set(rel["neural_part"]) >= {"bleu1", "cider"} and set(rel["metrics"]) >= {"bleu1", "cider"}
    assert "neural_part" not in off["image_reliance"]
    # both swaps are real decodes: with the memory held, the swapped captions keep the true images' neighbours
    assert rel["neural_part"]["cider"]["value"] == pytest.approx(
        metrics["model"]["cider"]["value"] - rel["neural_part"]["cider"]["swapped"])
    health = metrics["caption_health"]
    assert health["model"]["enforced_by_decoding"] == ["adjacent_repeat_share"]
    assert health["model_neural_only"]["adjacent_repeat_share"] == 0.0
    train = json.loads((tiny_run["run"] / "split.json").read_text())["train"]
    assert metrics["baseline_pool"]["n_images"] == len(train)
    text = format_metrics(metrics)
    assert "RETRIEVAL-AUGMENTED" in text and "model, neural only" in text and "reliance, memory held" in text
    assert "adjacent_repeat_share 0.0000 (enforced by decoding)" in text
