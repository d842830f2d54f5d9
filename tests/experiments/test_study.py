"""`python -m medcap study`: case-disjoint folds, pooled results vs 1-NN, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from medcap.cli.study_cmd import parse_sets
from tests.support.tiny import make_tiny

pytestmark = pytest.mark.slow

TINY = ["--set", "epochs=3", "--set", "batch_size=16", "--set", "embed_dim=16", "--set", "lstm_units=16",
        "--set", "dense_units=16", "--set", "attn_units=16", "--set", "dropout=0.1", "--set", "min_count=1",
        "--set", "learning_rate=0.005", "--set", "patience=10"]


def _study(tmp: Path, spec: str, store: Path, name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "medcap", "study", "--dataset", spec, "--folds", "2", "--seed", "1",
            "--systems", "model-80,medcap-best", *TINY, "--set", f"feature_store={store}", "--no-meteor",
            "--n-boot", "50", "--name", name, "--json"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)


def test_parse_sets_reads_json_values_and_names_bad_fields() -> None:
    assert parse_sets(["epochs=3", "dropout=0.1", "block_repeats=true", "dataset=csv:x.csv"]) == {
        "epochs": 3, "dropout": 0.1, "block_repeats": True, "dataset": "csv:x.csv"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_sets(["epoch=3"])


def test_study_pools_folds_and_a_killed_study_resumes_to_the_same_results(tmp_path: Path) -> None:
    spec, store = make_tiny(tmp_path / "data", n=40)
    env = {**os.environ, "MEDCAP_ARTIFACTS": str(tmp_path / "artifacts")}
    whole = _study(tmp_path, spec, store, "whole", env)
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]
    full = json.loads(out)
    assert full["folds"] == 2 and full["n_images"] == 40  # every image tested exactly once
    per_fold = [f["n_images"] for f in full["per_fold"]]
    assert sum(per_fold) == 40 and min(per_fold) >= 15
    assert {"model-80", "medcap-best"} <= set(full["pooled"])
    own = full["paired_vs_own_pool_1nn"]["medcap-best"]
    diff = own["cider"]
    lo, hi = diff["ci95"]
    assert lo <= diff["diff"] <= hi
    assert diff["diff"] == pytest.approx(full["pooled"]["medcap-best"]["cider"]["value"]
                                         - full["pooled"][own["baseline"]]["cider"]["value"])
    assert own["baseline"].startswith("1-NN · pool: ") and own["baseline"] in full["pooled"]
    assert "medcap-best:neural_only" in full["pooled"]  # beside the retrieval-augmented system, always
    assert full["decoding"]["medcap-best"]["retrieval_augmented"] is True
    assert "medcap-best:no_min_length" in full["pooled"]  # decoding ablation, decode-only
    assert full["provenance"]["medcap-best"]["fixed"].startswith("2026-11-28")
    folder = Path(full["folder"])
    assert (folder / "results.csv").is_file() and (folder / "runs" / "fold1-medcap-best").is_dir()

    # the same study, SIGKILLed while fold 0's second system trains, then resumed
    killed = _study(tmp_path, spec, store, "killed", env)
    studies = tmp_path / "artifacts" / "studies"
    deadline = time.time() + 300
    target = None
    while time.time() < deadline and killed.poll() is None:
        found = [p for p in studies.glob("*-killed-*/runs/fold0-medcap-best/history.csv") if p.is_file()]
        if found:
            target = found[0].parents[2]
            break
        time.sleep(0.2)
    assert target is not None, "the study never reached fold 0's second system"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert not (target / "results.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "medcap", "study", "--resume", str(target), "--json"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = json.loads(resumed.stdout)
    for system, summary in full["pooled"].items():
        for metric, m in summary.items():
            assert again["pooled"][system][metric]["value"] == pytest.approx(m["value"], abs=1e-6), (system, metric)


def test_study_trains_every_fold_per_seed_and_selects_levers_on_inner_validation_only(tmp_path: Path) -> None:
    spec, store = make_tiny(tmp_path / "data", n=40)
    env = {**os.environ, "MEDCAP_ARTIFACTS": str(tmp_path / "artifacts")}
    tiny = [x.replace("epochs=3", "epochs=1") for x in TINY]
    args = [sys.executable, "-m", "medcap", "study", "--dataset", spec, "--folds", "2", "--seed", "1",
            "--seeds", "1,2", "--systems", "medcap-best", *tiny, "--set", "min_words=0", "--set", "block_repeats=false",
            "--set", f"feature_store={store}", "--no-meteor", "--no-ablations", "--select", "--n-boot", "50", "--json"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads(done.stdout)
    assert res["seeds"] == [1, 2] and res["n_seeds"] == 2 and res["n_images"] == 40
    assert {"medcap-best", "medcap-best:neural_only", "medcap-best:selected"} <= set(res["pooled"])
    assert len(res["pooled"]["medcap-best"]["cider"]["per_seed"]) == 2
    choices = res["selection"]["medcap-best"]
    assert [(c["fold"], c["seed"]) for c in choices] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for c in choices:
        assert set(c["validation"]) == {"", "neural_only", "plain_greedy", "no_repeat_2gram"}
        best = max(c["validation"].values())
        assert c["validation"]["" if c["chosen"] == "as set" else c["chosen"]] == best
    runs = Path(res["folder"]) / "runs"
    for fold in (0, 1):
        for seed in (1, 2):
            run = runs / f"fold{fold}-medcap-best-s{seed}"
            assert json.loads((run / "config.json").read_text())["run"]["seed"] == seed
            split = json.loads((run / "split.json").read_text())
            val = pd.read_csv(run / "eval" / "study-val" / "predictions.csv", dtype=str)
            test = pd.read_csv(run / "eval" / "study-test" / "predictions.csv", dtype=str)
            assert set(val["image_id"]) == set(split["val"]) and not set(val["group"]) & set(test["group"])
            assert set(test["image_id"]) == set(split["test"])  # the reported fold never chose anything
