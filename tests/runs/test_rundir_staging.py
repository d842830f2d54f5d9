"""Evaluations are written into a temporary sibling folder and renamed into place whole (RunDir.new_eval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcap.base.io import read_json, write_json, write_text
from medcap.runs.folder import RunDir


def _write_eval(run: RunDir, name: str, value: float) -> None:
    with run.new_eval(name) as tmp:
        assert tmp.path.parent == run.eval_root and tmp.name.startswith(f".tmp-{name}-")
        write_text(tmp.predictions, "image_id,prediction\na,b\n")
        write_json(tmp.metrics, {"bleu1": value})


def test_a_staged_evaluation_appears_whole(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    _write_eval(run, "test", 0.5)
    assert [e.name for e in run.evals()] == ["test"]
    assert read_json(run.eval_dir("test").metrics) == {"bleu1": 0.5}
    assert sorted(p.name for p in run.eval_root.iterdir()) == ["test"]  # no temp folder left


def test_a_new_evaluation_replaces_the_old_one(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    _write_eval(run, "test", 0.5)
    _write_eval(run, "test", 0.7)
    assert read_json(run.eval_dir("test").metrics) == {"bleu1": 0.7}
    assert sorted(p.name for p in run.eval_root.iterdir()) == ["test"]  # old one removed, no .old-*


def test_a_failure_mid_write_keeps_the_old_evaluation_and_lists_no_partial_one(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    _write_eval(run, "test", 0.5)
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="decoder crashed"), run.new_eval("test") as tmp:
        write_text(tmp.predictions, "image_id,prediction\nhalf\n")
        write_json(tmp.metrics, {"bleu1": 0.9})  # even a complete-looking temp folder is not listed
        seen = [e.name for e in run.evals()]
        raise RuntimeError("decoder crashed")
    assert seen == ["test"]
    assert read_json(run.eval_dir("test").metrics) == {"bleu1": 0.5}
    assert run.eval_dir("test").predictions.read_text() == "image_id,prediction\na,b\n"
    assert sorted(p.name for p in run.eval_root.iterdir()) == ["test"]  # the temp folder is gone


def test_a_failed_first_evaluation_leaves_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with pytest.raises(ValueError), run.new_eval("other") as tmp:
        write_json(tmp.metrics, {})
        raise ValueError("no images")
    assert run.evals() == []
    assert list(run.eval_root.iterdir()) == []
