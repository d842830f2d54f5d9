"""A run folder written by main at commit 72793d2 (tests/support/runs/main_run) decodes exactly as that code did.

The run decodes with every constraint of its config (caption memory with memory_k = 3, block_repeats,
min_words = 5, beam 3); `expected.json` holds what the old code decoded for fixed query features with
those settings and with some switched off or on (memory off, all off, 2-gram ban, length penalty, a
longer minimum), and for the image-reliance decode (features and caption memory permuted together,
which the old code did with `memory.subset(perm)` and today's by image id). The folder keeps no data:
the generator's `make_dataset` rebuilds the same data set and feature store, and config.json is pointed
at them.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from types import ModuleType

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT

pytest.importorskip("tensorflow")

MAIN_RUN = PROJECT_ROOT / "tests" / "support" / "runs" / "main_run"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_main_run", MAIN_RUN / "make_main_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from medcap.base.io import write_json
    from medcap.inference.opened import load_run

    gen = _generator()
    tmp = tmp_path_factory.mktemp("main_run")
    run = tmp / "run"
    shutil.copytree(MAIN_RUN, run, ignore=shutil.ignore_patterns("*.py", "expected.json"))
    spec, store = gen.make_dataset(tmp / "data")
    config = json.loads((run / "config.json").read_text())
    config["run"]["dataset"], config["run"]["feature_store"] = spec, str(store)
    config["feature_store"]["path"] = str(store)
    write_json(run / "config.json", config)
    loaded = load_run(run)
    expected = json.loads((MAIN_RUN / "expected.json").read_text())
    g, grid = gen.fixed_features()
    return gen, loaded, expected, g, grid


def _same(caps: list, want: list[dict]) -> None:
    assert [c.text for c in caps] == [w["text"] for w in want]
    assert [c.token_ids for c in caps] == [w["token_ids"] for w in want]
    for c, w in zip(caps, want, strict=True):
        np.testing.assert_allclose(c.probs, w["probs"], rtol=1e-5)
        assert c.score == pytest.approx(w["score"], rel=1e-5)
        if w["attention"] is not None:
            np.testing.assert_allclose(c.attention.reshape(-1, 49), w["attention"], atol=1e-6)


def test_the_run_decodes_with_its_own_settings_as_the_old_code(main_run: tuple) -> None:
    _, loaded, expected, g, grid = main_run
    options = loaded.decode_options()
    assert options.beam_size == 3 and options.block_repeats and options.min_words == 5 and options.memory_k == 3
    ids = expected["query_ids"]
    _same(loaded.decode(g, grid, image_ids=ids), expected["beam3"])  # the run's own beam 3
    _same(loaded.decode(g, grid, options.replace(beam_size=1), image_ids=ids), expected["greedy"])
    assert expected["greedy"][0]["text"] != expected["greedy_plain"][0]["text"]  # the constraints matter here


@pytest.mark.parametrize("name", ["greedy_no_memory", "beam3_no_memory", "greedy_plain", "beam3_plain",
                                  "beam3_ngram_penalty", "beam3_ngram_penalty_no_memory", "greedy_min8",
                                  "greedy_ngram_no_memory"])
def test_each_decoding_variant_is_unchanged(main_run: tuple, name: str) -> None:
    gen, loaded, expected, g, grid = main_run
    beam, overrides = gen.VARIANTS[name]
    options = loaded.decode_options(beam_size=beam, **overrides)
    _same(loaded.decode(g, grid, options, image_ids=expected["query_ids"]), expected[name])


def test_the_caption_memory_holds_the_old_neighbours(main_run: tuple) -> None:
    _, loaded, expected, g, _ = main_run
    ids = expected["query_ids"]
    memory = loaded.caption_memory(loaded.decode_options(), g, ids)
    train = loaded.training_set()
    assert [[train.ids[j] for j in memory.neighbours[r]] for r in memory.rows(ids)] == \
        expected["memory"]["neighbour_ids"]
    np.testing.assert_allclose(memory.weights[memory.rows(ids)], expected["memory"]["weights"], rtol=1e-6)


@pytest.mark.parametrize(("name", "beam"), [("swapped_greedy", 1), ("swapped_beam3", 3)])
def test_the_image_reliance_decode_follows_the_memory_by_image_id(main_run: tuple, name: str, beam: int) -> None:
    """Permuted features decode with the permuted images' memory, looked up by id (the evaluation's way)."""
    _, loaded, expected, g, grid = main_run
    ids, swap = expected["query_ids"], expected["swap"]
    options = loaded.decode_options(beam_size=beam)
    memory = loaded.caption_memory(options, g, ids)  # built once, for the images in their own order
    caps = loaded.decode(g[swap], grid[swap], options, image_ids=[ids[p] for p in swap], memory=memory)
    _same(caps, expected[name])
    plain = loaded.decode(g, grid, options, image_ids=ids, memory=memory)
    assert [plain[p].text for p in swap] == [c.text for c in caps]  # same image, same caption, any order


def test_the_evaluation_writes_the_old_predictions_options_and_image_reliance(main_run: tuple) -> None:
    """evaluate_run (the run's beam 3 with its memory and constraints, the permuted reliance decode by id)."""
    from medcap.eval.artifacts import read_predictions
    from medcap.eval.evaluate import evaluate_run

    gen, loaded, expected, _, _ = main_run
    want = expected["evaluation"]
    ev_dir = evaluate_run(loaded.run_dir, **gen.EVAL)
    metrics = json.loads((ev_dir / "metrics.json").read_text())
    preds = read_predictions(loaded.run_dir, ev_dir.name)
    assert dict(zip(preds["image_id"].astype(str), preds["prediction"].fillna(""), strict=True)) == \
        want["predictions"]
    assert metrics["decode_options"] == want["decode_options"]  # the same record, key for key
    got = metrics["image_reliance"]
    assert got["own_case_share"] == want["image_reliance"]["own_case_share"]
    for name, value in want["image_reliance"]["metrics"].items():
        assert got["metrics"][name]["swapped"] == pytest.approx(value["swapped"], rel=1e-9)  # the swapped captions
        assert got["metrics"][name]["value"] == pytest.approx(value["value"], rel=1e-9)
