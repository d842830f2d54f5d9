"""The shipped example bundle (`examples/demo/`): intact, small, relative, listed read-only, and decodable now."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from medcap.app import jobs, tables
from medcap.eval import artifacts
from medcap.runs import bundle
from medcap.runs import index as runs
from medcap.runs.folder import RunDir
from tests.conftest import PROJECT_ROOT

BUNDLE = PROJECT_ROOT / "examples" / "demo"
EXAMPLE_IDS = ["example-model-80", "example-model-70"]

pytestmark = pytest.mark.skipif(not (BUNDLE / bundle.MANIFEST).is_file(), reason="examples/demo not present")


@pytest.fixture
def with_bundle(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDCAP_EXAMPLES", str(BUNDLE))
    return BUNDLE


def _float_dtypes(weights: Path) -> set[np.dtype]:
    """The dtypes of every floating-point array in a .weights.h5."""
    found: set[np.dtype] = set()
    with h5py.File(weights, "r") as h5:
        h5.visititems(lambda _, o: found.add(o.dtype) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    return found


def test_bundle_matches_its_manifest_and_stays_small() -> None:
    assert bundle.verify_manifest(BUNDLE) == []
    manifest = json.loads((BUNDLE / bundle.MANIFEST).read_text())
    assert manifest["total_bytes"] == sum(p.stat().st_size for p in bundle.bundle_files(BUNDLE))
    total = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert total < 20 * 2**20
    from medcap.experiments.demo import EXAMPLE_OPTIONS

    wanted = {k: v for k, v in vars(EXAMPLE_OPTIONS).items() if k != "parallel"}
    assert manifest["settings"] == wanted  # built with the examples' own recipe, not the Home demo's


def test_bundle_holds_no_machine_paths_nor_optimizer_state() -> None:
    for path in BUNDLE.rglob("*"):
        if path.suffix in (".json", ".csv", ".md"):
            text = path.read_text(encoding="utf-8")
            for marker in ("/tmp/", "/work/", "/home/", "/root/", "/artifacts/"):
                assert marker not in text, (path, marker)
    for run_id in EXAMPLE_IDS:
        run = RunDir(BUNDLE / "runs" / run_id)
        assert run.read_config()["feature_store"]["path"] is None
        assert run.read_config()["feature_store"]["global_dim"] == 512
        assert not run.resume_state.exists() and not run.last_weights.exists() and not run.log.exists()
        assert not run.tensorboard.exists()
        assert run.best_weights.stat().st_size < 4 * 2**20  # model weights only, float16
        assert _float_dtypes(run.best_weights) == {np.dtype(np.float16)}
    for image in (BUNDLE / bundle.IMAGES).iterdir():
        assert image.suffix == ".jpg" and image.stat().st_size < 40_000  # display copies, not the PNGs


def test_bundle_runs_are_listed_after_the_users_as_read_only_examples(with_bundle: Path, artifacts: Path) -> None:
    from tests.support.dashboard_fixtures import FINISHED_ID, small_state

    small_state(artifacts)
    infos = runs.list_runs()
    assert [i.run_id for i in infos if i.example] == sorted(EXAMPLE_IDS, reverse=True)
    assert not infos[0].example  # the user's own runs come first
    examples = {i.run_id: i for i in infos if i.example}
    assert all(i.state == "finished" and len(i.evals) == 1 for i in examples.values())
    assert {i.preset for i in examples.values()} == {"model-80", "model-70"}
    assert tables.run_label(examples["example-model-80"]) == "demo-model-80 (example)"
    table = tables.runs_table()
    assert set(table.loc[table["run"].isin(EXAMPLE_IDS), "source"]) == {"example (read-only)"}
    assert table.loc[table["run"] == FINISHED_ID, "source"].item() == "yours"
    assert tables.find_run("example-model-70").example
    assert runs.resolve_run("example-model-80") == BUNDLE / "runs" / "example-model-80"
    for action in (jobs.launch_resume, jobs.launch_evaluate, jobs.cancel_run):
        with pytest.raises(ValueError, match="example run"):
            action(examples["example-model-80"])


def test_bundle_examples_can_be_turned_off_and_never_shadow_a_user_run(
    monkeypatch: pytest.MonkeyPatch, artifacts: Path
) -> None:
    assert runs.list_runs() == []  # conftest: MEDCAP_EXAMPLES=off
    monkeypatch.setenv("MEDCAP_EXAMPLES", str(BUNDLE))
    own = artifacts / "runs" / "example-model-80"
    own.mkdir(parents=True)
    RunDir(own).write_status("failed", error="mine")
    infos = {i.run_id: i for i in runs.list_runs()}
    assert not infos["example-model-80"].example and infos["example-model-80"].state == "failed"
    assert infos["example-model-70"].example
    monkeypatch.delenv("MEDCAP_EXAMPLES")
    assert runs.examples_runs_dir() == BUNDLE / "runs"  # the default: the project's examples/demo


def test_bundle_predictions_resolve_their_images_and_attention(with_bundle: Path) -> None:
    for run_id in EXAMPLE_IDS:
        run = RunDir(BUNDLE / "runs" / run_id)
        (ev,) = run.evals()
        raw = ev.predictions.read_text(encoding="utf-8").splitlines()[1]
        assert raw.split(",")[1].startswith("../../images/")  # stored relative to the run folder
        df = artifacts.read_predictions(run.path, ev.name)
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["image_path"])
        assert df["prediction"].str.len().gt(0).all()
        assert df["prediction"].nunique() > 1  # not one caption for every image
        metrics = artifacts.read_metrics(run.path, ev.name)
        assert metrics["run_id"] == run_id and metrics["n_images"] == len(df)
        att = artifacts.read_attention(run.path, ev.name, str(df["image_id"].iloc[0]))
        assert att is not None and att.shape[1:] == (7, 7)
        assert att.shape[0] == len(df["prediction"].iloc[0].split())


def test_bundle_runs_decode_their_stored_captions_with_the_current_code(with_bundle: Path) -> None:
    """The current model code rebuilds each run from its files and decodes the stored captions exactly."""
    from medcap.inference.opened import load_run

    for run_id in EXAMPLE_IDS:
        loaded = load_run(run_id)
        with np.load(BUNDLE / bundle.CHECK / f"{run_id}.npz", allow_pickle=False) as npz:
            ids, g, r = [str(i) for i in npz["image_ids"]], npz["global"], npz["grid"]
        assert len(ids) == bundle.N_CHECK_IMAGES and r.shape[1:] == (7, 7, 512)
        caps = loaded.decode(g, r)  # greedy, as the evaluation
        (ev,) = RunDir(loaded.run_dir).evals()
        stored = artifacts.read_predictions(loaded.run_dir, ev.name).set_index("image_id")["prediction"]
        assert [c.text for c in caps] == [stored[i] for i in ids]
        stored_att = artifacts.read_attention(loaded.run_dir, ev.name, ids[0])
        np.testing.assert_allclose(np.asarray(caps[0].attention, np.float16), stored_att, atol=2e-3)


def test_bundle_runs_find_similar_cases_among_their_own_training_images(with_bundle: Path) -> None:
    from medcap.inference import similar
    from medcap.runs import cases

    index = cases.read_cases(BUNDLE)
    for run_id in EXAMPLE_IDS:
        run = RunDir(BUNDLE / "runs" / run_id)
        split = json.loads(run.split.read_text())
        memory = similar.case_memory(run.path)
        assert memory.ids == split["train"]  # every training image, in split.json's order
        assert all(Path(p).is_file() for p in memory.paths)
        query_id = split["test"][0]
        found = similar.similar_cases(memory, similar.stored_features(run.path, [query_id])[0], k=5)
        assert len(found) == 5 and set(found["image_id"]) <= set(split["train"])
        assert found["similarity"].is_monotonic_decreasing and found["similarity"].iloc[0] < 1.0
        row = index.ids.index(found["image_id"].iloc[0])
        assert found["caption"].iloc[0] == index.captions[row]
        train = index.feats[index.rows(split["train"])]  # (Ntr, D): the closest by a plain cosine, computed here
        q = index.feats[index.rows([query_id])[0]]  # (D,)
        cos = train @ q / (np.linalg.norm(train, axis=1) * np.linalg.norm(q))
        assert found["image_id"].iloc[0] == split["train"][int(np.argmax(cos))]
        assert found["similarity"].iloc[0] == pytest.approx(float(cos.max()), abs=1e-5)
