"""Issue 22, item 4: every command checks its arguments before it creates anything.

No run, grid or study folder for a typo; ranges come from RunConfig (beam >= 1, folds >= 2, ...); a study
that fails says so in its status.json; `--resume` of a missing folder says what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from medcap.cli import main
from medcap.runs.folder import read_status_file
from tests.support.dashboard_fixtures import make_run


def _created(artifacts: Path) -> list[str]:
    """Run, grid and study folders under the artifacts folder."""
    return sorted(str(p.relative_to(artifacts)) for sub in ("runs", "grids", "studies") if (artifacts / sub).is_dir()
                  for p in (artifacts / sub).iterdir())


CASES = [
    (["train", "--dataset", "medpix:{tmp}/nope"], "--dataset medpix:{tmp}/nope: {tmp}/nope does not exist"),
    (["train", "--dataset", "bogus:{tmp}"], "unknown dataset kind 'bogus'"),
    (["train", "--dataset", "synthetic:-1"], "dataset spec 'synthetic:-1': synthetic:N needs N >= 1 images, got -1"),
    (["train", "--dataset", "synthetic:0"], "synthetic:N needs N >= 1 images, got 0"),
    (["grid", "--dataset", "synthetic:40", "--beam", "0"], "grid --beam: beam_size must be >= 1, got 0"),
    (["grid", "--dataset", "synthetic:40", "--lr", "1e-3,-1"], "grid --lr: learning_rate must be >= 0, got -1.0"),
    (["grid", "--dataset", "synthetic:40", "--layers", "0"], "grid --layers: layers must be >= 1, got 0"),
    (["grid", "--dataset", "csv:{tmp}/none.csv"], "--dataset csv:{tmp}/none.csv: {tmp}/none.csv does not exist"),
    (["caption", "some-run", "x.png", "--beam", "0"], "caption --beam: beam_size must be >= 1, got 0"),
    (["caption", "some-run", "x.png", "--beam", "-3"], "caption --beam: beam_size must be >= 1, got -3"),
    (["study", "--dataset", "synthetic:40", "--folds", "0"], "study --folds: n_folds must be >= 2, got 0"),
    (["study", "--dataset", "synthetic:40", "--folds", "1"], "study --folds: n_folds must be >= 2, got 1"),
    (["study", "--dataset", "synthetic:40", "--n-boot", "0"], "study --n-boot: must be >= 1, got 0"),
    (["study", "--dataset", "synthetic:-1"], "synthetic:N needs N >= 1 images, got -1"),
    (["study", "--resume", "{tmp}/nope"], "study --resume {tmp}/nope: the folder does not exist"),
    (["study", "--resume", "{tmp}"], "study --resume {tmp}: the folder holds no study (no study.json)"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a[:2] + a[-2:]) for a, _ in CASES])
def test_a_bad_argument_is_refused_before_any_folder_exists(argv: list[str], message: str, tmp_path: Path,
                                                            artifacts: Path, caplog: pytest.LogCaptureFixture) -> None:
    argv = [a.format(tmp=tmp_path) for a in argv]
    with caplog.at_level(logging.ERROR, logger="medcap"):
        assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(message.format(tmp=tmp_path) in e for e in errors), errors
    assert not any(r.exc_info for r in caplog.records)  # one line, no traceback
    assert _created(artifacts) == []  # no failed run, empty grid or study folder left behind


@pytest.mark.slow
def test_a_failed_study_is_marked_failed_not_running(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcap.experiments import study

    settings = study.StudySettings(dataset="synthetic:40", folds=2, systems={"model-80": {"preset": "model-80"}},
                                   ablations=False)
    folder = artifacts / "studies" / "broken"
    for fold in range(2):  # every fold trained and evaluated already: only pooling is left
        run = make_run(folder / "runs", f"fold{fold}-model-80", images_dir=artifacts / "images")
        (run / "eval" / "test").rename(run / "eval" / study.EVAL_NAME)
    folder.mkdir(exist_ok=True)
    (folder / study.STUDY_FILE).write_text(json.dumps(dataclasses.asdict(settings)))

    def broken(*_: object) -> dict:
        raise ValueError("bootstrap: nothing to resample (0 items)")

    monkeypatch.setattr(study, "pool_results", broken)
    with pytest.raises(ValueError, match="nothing to resample"):
        study.run_study(folder=folder)
    status = read_status_file(folder / study.STATUS_FILE)
    assert status["state"] == "failed"
    assert status["error"] == "ValueError: bootstrap: nothing to resample (0 items)"
    assert study.read_study(folder)["status"]["state"] == "failed"  # what the Study page shows


def test_a_new_study_with_bad_settings_makes_no_folder(artifacts: Path) -> None:
    from medcap.experiments import study

    bad = study.StudySettings(dataset="synthetic:40", folds=3, systems={"model-80": {"preset": "model-80",
                                                                                      "beam_size": 0}})
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        study.run_study(bad)
    one_fold = study.StudySettings(dataset="synthetic:40", folds=1, systems={"model-80": {"preset": "model-80"}})
    with pytest.raises(ValueError, match="a study needs at least 2 case-disjoint folds, got 1"):
        study.run_study(one_fold)
    with pytest.raises(ValueError, match=r"holds no study to resume \(no study.json\)"):
        study.run_study(folder=artifacts)
    assert not (artifacts / "studies").exists() or not any((artifacts / "studies").iterdir())
