"""End-to-end runs on a tiny hand-made dataset + feature store (no backbone): files, status, load, fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medcap.base.io import write_json
from medcap.config import RunConfig
from medcap.runs.index import read_history, read_status
from tests.support.tiny import make_tiny, tiny_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny_run(tiny: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, Path]:
    """One 3-epoch run shared by the checks below (training is the slow part)."""
    from medcap.train import train_run

    cfg = tiny_config(*tiny)
    return cfg, train_run(cfg, run_dir=tmp_path_factory.mktemp("runs") / "tiny")


def test_train_run_writes_a_complete_run_folder(tiny: tuple[str, Path], tiny_run: tuple[RunConfig, Path]) -> None:
    spec, store = tiny
    _, run = tiny_run
    config = json.loads((run / "config.json").read_text())
    assert config["run"]["embed_dim"] == 16 and config["run"]["dataset"] == spec
    assert set(config["versions"]) == {"python", "tensorflow", "keras", "numpy", "medcap"}
    assert config["vocab_size"] == len(json.loads((run / "vocab.json").read_text())["words"])
    assert config["feature_store"]["path"] == str(store) and config["feature_store"]["global_dim"] == 8
    assert len(config["dataset_fingerprint"]) == 16 and "git_commit" in config and config["created"]
    split = json.loads((run / "split.json").read_text())
    assert sum(len(v) for v in split.values()) == 36 and not set(split["train"]) & set(split["test"])
    hist = read_history(run)
    assert list(hist.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_cider", "lr", "seconds"]
    assert hist["epoch"].tolist() == [1, 2, 3]
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0]  # it learns
    assert (run / "weights" / "best.weights.h5").is_file() and (run / "weights" / "last.weights.h5").is_file()
    status = read_status(run)
    assert status["state"] == "finished" and status["progress"] == 1.0 and status["epoch"] == 3
    assert status["best_val_loss"] == pytest.approx(hist["val_loss"].min(), rel=1e-6)
    assert "epoch 3/3" in (run / "train.log").read_text()
    assert [p.name for p in run.rglob(".*")] == [".lock"]  # no temp files left behind; the run lock stays (empty)
    assert (run / ".lock").read_text() == ""  # released: no pid left in it


def test_train_run_writes_tensorboard_scalars_per_epoch(tiny_run: tuple[RunConfig, Path]) -> None:
    """Keras' TensorBoard callback logs one loss value per epoch for train and validation, numbered 0..2."""
    pytest.importorskip("tensorboard", reason="tensorboard not installed (requirements.txt pins it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from medcap.runs.folder import RunDir

    _, run = tiny_run
    hist = read_history(run)
    for sub, column in (("train", "loss"), ("validation", "val_loss")):
        acc = EventAccumulator(str(RunDir(run).tensorboard / sub), size_guidance={"tensors": 0})
        acc.Reload()
        events = acc.Tensors("epoch_loss")
        assert [e.step for e in events] == [0, 1, 2]
        values = [float(np.asarray(e.tensor_proto.float_val or [np.frombuffer(e.tensor_proto.tensor_content,
                                                                                np.float32)[0]])[0])
                  for e in events]
        assert values == pytest.approx(hist[column].tolist(), rel=1e-5)


def test_load_run_captions_from_the_store(tiny_run: tuple[RunConfig, Path]) -> None:
    from medcap.inference.opened import load_run

    _, run = tiny_run
    loaded = load_run(run)
    test_ids = loaded.split["test"][:3]
    caps = loaded.caption_ids(test_ids)
    assert len(caps) == 3 and all(len(c.probs) == len(c.words) for c in caps)
    assert all(w in loaded.vocab.index for c in caps for w in c.words)
    assert all(c.attention is not None and c.attention.shape == (len(c.words), 7, 7) for c in caps)
    # the same images in another order give the same captions in that order
    again = loaded.caption_ids(test_ids[::-1])
    assert [c.text for c in again] == [c.text for c in caps][::-1]


def test_resume_state_file_is_plain_arrays(tiny_run: tuple[RunConfig, Path]) -> None:
    _, run = tiny_run
    with np.load(run / "weights" / "resume.npz", allow_pickle=False) as npz:
        state = json.loads(str(npz["state_json"]))
        assert state["epoch"] == 3 and len(state["history"]) == 3
        assert any(k.startswith("opt_") for k in npz.files)


def test_early_stopping_stops_and_keeps_best(tiny: tuple[str, Path]) -> None:
    from medcap.train import train_run

    spec, store = tiny
    # lr 0 (min_lr 0): val_loss never improves after epoch 1 -> stops after 1 + patience epochs
    run = train_run(tiny_config(spec, store, epochs=10, patience=1, learning_rate=0.0, min_lr=0.0))
    hist = read_history(run)
    assert hist["epoch"].tolist() == [1, 2]
    status = read_status(run)
    assert status["best_epoch"] == 1 and "early stopping" in status["message"]


def test_failure_is_recorded_in_status(tiny: tuple[str, Path], tmp_path: Path) -> None:
    from medcap.train import train_run

    spec, _store = tiny
    run = tmp_path / "failing"
    with pytest.raises(FileNotFoundError):
        train_run(tiny_config(spec, tmp_path / "no-such-store"), run_dir=run)
    status = read_status(run)
    assert status["state"] == "failed"
    assert "no-such-store" in status["error"]


def test_load_run_names_missing_weights(tmp_path: Path) -> None:
    from medcap.inference.opened import load_run

    run = tmp_path / "r"
    (run / "weights").mkdir(parents=True)
    write_json(run / "config.json", {"run": RunConfig().to_dict(), "feature_store": {"global_dim": 8}})
    with pytest.raises(FileNotFoundError, match=r"best\.weights\.h5"):
        load_run(run)


class _FakeFeaturizer:
    """Maps an image to the features of its class (the file name's index mod 3), like the tiny store."""

    def __call__(self, image: object) -> tuple[np.ndarray, np.ndarray]:
        cls = int(Path(str(image)).stem[2:]) % 3
        g = np.zeros(8, np.float32)
        g[cls] = 1.0
        grid = np.zeros((7, 7, 512), np.float32)
        grid[cls * 2, cls * 2, :] = 1.0
        return g, grid


def test_caption_command_prints_json_with_word_probabilities(
    tiny: tuple[str, Path], tiny_run: tuple[RunConfig, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medcap.cli import main
    from medcap.features.featurizer import ImageFeaturizer

    monkeypatch.setattr(ImageFeaturizer, "from_meta", classmethod(lambda cls, meta: _FakeFeaturizer()))
    spec, _ = tiny
    images = [str(Path(spec[4:]).parent / "images" / f"im{i:03d}.png") for i in (0, 1)]
    assert main(["caption", str(tiny_run[1]), *images, "--json", "--beam", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["beam"] == 2 and [c["image"] for c in out["captions"]] == images
    for cap in out["captions"]:
        assert len(cap["probs"]) == len(cap["words"]) == len(cap["caption"].split())
        assert all(0.0 < p <= 1.0 for p in cap["probs"])
    assert main(["caption", str(tiny_run[1]), images[0], "no-such.png"]) == 2  # named missing file, exit 2


def test_cli_flags_override_the_preset() -> None:
    from medcap.cli import build_parser
    from medcap.cli.train_cmd import config_from_args

    args = build_parser().parse_args(["train", "--preset", "model-70", "--dataset", "synthetic", "--epochs", "7",
                                      "--lr", "5e-4", "--layers", "2", "--attention", "self", "--strategy",
                                      "mirrored", "--mixed-precision", "--name", "x"])
    cfg = config_from_args(args)
    assert (cfg.protocol, cfg.batch_size, cfg.epochs, cfg.learning_rate, cfg.layers) == ("model-70", 128, 7, 5e-4, 2)
    assert cfg.attention == "self" and cfg.strategy == "mirrored" and cfg.mixed_precision and cfg.name == "x"
    plain = config_from_args(build_parser().parse_args(["train", "--dataset", "synthetic"]))
    assert plain == RunConfig.from_preset("model-80", dataset="synthetic")


def test_grid_writes_a_table_per_combination_and_beam(tiny: tuple[str, Path], artifacts: Path) -> None:
    from medcap.experiments.grid import run_grid

    spec, store = tiny
    grid = run_grid(tiny_config(spec, store, epochs=1), lrs=[5e-3], layers=[1, 0], beams=[1, 2])
    assert grid.parent == artifacts / "grids"
    table = pd.read_csv(grid / "results.csv")
    assert len(table) == 4 and table["beam"].tolist() == [1, 2, 1, 2] and (table["seed"] == 3).all()
    ok, bad = table.iloc[:2], table.iloc[2:]
    assert (ok["state"] == "finished").all() and ok["val_loss"].notna().all() and ok["n_val_images"].eq(3).all()
    assert ok["bleu1"].between(0, 1).all()
    # layers=0 is an invalid model: recorded as failed, and the search still wrote the table
    assert (bad["state"] == "failed").all() and bad["error"].str.contains("layers must be >= 1, got 0").all()
    assert json.loads((grid / "results.json").read_text())[0]["lr"] == 5e-3


def test_grid_command_parses_value_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import medcap.experiments.grid as grid_mod
    from medcap.cli import main

    seen = {}

    def fake_grid(base: RunConfig, lrs: list[float], layers: list[int], beams: list[int],
                  seeds: list[int] | None = None) -> Path:
        seen.update(base=base, lrs=lrs, layers=layers, beams=beams, seeds=seeds)
        write_json(tmp_path / "results.json", [])
        return tmp_path

    monkeypatch.setattr(grid_mod, "run_grid", fake_grid)
    assert main(["grid", "--preset", "model-70", "--dataset", "synthetic", "--lr", "1e-3,5e-4", "--layers", "1,2",
                 "--beam", "1,3", "--epochs", "2"]) == 0
    assert seen["lrs"] == [1e-3, 5e-4] and seen["layers"] == [1, 2] and seen["beams"] == [1, 3]
    assert seen["base"].epochs == 2 and seen["base"].batch_size == 128 and seen["base"].layers == 1
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert main(["grid", "--dataset", "synthetic", "--lr", "fast"]) == 2  # clear error, exit 2
    assert main(["grid", "--dataset", "synthetic", "--seeds", "1,2,3"]) == 0 and seen["seeds"] == [1, 2, 3]


def test_grid_seeds_vary_the_initialisation_not_the_split(tiny: tuple[str, Path], artifacts: Path) -> None:
    from medcap.experiments.grid import run_grid

    spec, store = tiny
    grid = run_grid(tiny_config(spec, store, epochs=1), lrs=[5e-3], layers=[1], beams=[1], seeds=[1, 2])
    table = pd.read_csv(grid / "results.csv")
    assert table["seed"].tolist() == [1, 2] and (table["state"] == "finished").all()
    runs = [artifacts / "runs" / r for r in table["run_id"]]
    splits = [json.loads((r / "split.json").read_text()) for r in runs]
    assert splits[0] == splits[1]  # the split seed stayed the base seed (3)
    configs = [json.loads((r / "config.json").read_text())["run"] for r in runs]
    assert [c["seed"] for c in configs] == [1, 2] and {c["split_seed"] for c in configs} == {3}
    assert table["val_loss"].iloc[0] != table["val_loss"].iloc[1]  # different initialisations


def test_select_by_val_cider_keeps_the_epoch_whose_captions_score_best(tiny: tuple[str, Path], artifacts: Path) -> None:
    from medcap.train import train_run

    spec, store = tiny
    run = train_run(tiny_config(spec, store, epochs=3, select_by="val_cider"))
    hist = pd.read_csv(run / "history.csv")
    assert hist["val_cider"].notna().all() and (hist["val_cider"] >= 0).all()
    status = json.loads((run / "status.json").read_text())
    assert status["best_epoch"] == int(hist.loc[hist["val_cider"].idxmax(), "epoch"])  # first best on ties
    plain = train_run(tiny_config(spec, store, epochs=1))
    assert pd.read_csv(plain / "history.csv")["val_cider"].isna().all()  # not computed unless asked
