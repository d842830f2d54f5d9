"""Resume state: early-stopping / plateau counters and the atomic npz round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medcap.train.state import ResumeState, load_resume_state, restore_variables, save_resume, update_on_epoch


class _Var:
    """A stand-in for a Keras variable: numpy(), assign(), shape, path."""

    def __init__(self, value: np.ndarray, path: str) -> None:
        self.value = np.array(value)
        self.path = path

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def numpy(self) -> np.ndarray:
        return self.value

    def assign(self, value: np.ndarray) -> None:
        self.value = np.array(value)


def test_update_on_epoch_tracks_best_patience_and_plateau() -> None:
    s = ResumeState(lr=1e-3)
    losses = [2.0, 1.5, 1.6, 1.7, 1.4, 1.5, 1.5, 1.5]
    decisions = []
    for loss in losses:
        s.epoch += 1
        decisions.append(update_on_epoch(s, loss, patience=3, lr_patience=2, lr_factor=0.5, min_lr=1e-4))
    assert [d[0] for d in decisions] == [True, True, False, False, True, False, False, False]
    assert [d[1] for d in decisions] == [False] * 7 + [True]
    assert s.best_val_loss == 1.4 and s.best_epoch == 5
    # plateau: halved after epochs 4 (2 bad) and 7 (2 more bad)
    assert s.lr == pytest.approx(2.5e-4)
    assert s.stopped_early


def test_lr_never_below_min_and_nan_is_not_an_improvement() -> None:
    s = ResumeState(lr=1e-3, best_val_loss=1.0)
    for _ in range(10):
        s.epoch += 1
        improved, _ = update_on_epoch(s, math.nan, patience=100, lr_patience=1, lr_factor=0.1, min_lr=5e-5)
        assert not improved
    assert s.lr == pytest.approx(5e-5)


def test_resume_round_trip_restores_counters_and_variables(tmp_path: Path) -> None:
    state = ResumeState(epoch=3, best_val_loss=0.75, best_epoch=2, es_wait=1, lr_wait=1, lr=5e-4, seed=7,
                        history=[{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 1.25}])
    model_vars = [_Var(np.arange(6, dtype=np.float32).reshape(2, 3), "dense/kernel"),
                  _Var(np.array([5, 9], dtype=np.int64), "seed_generator/state")]
    opt_vars = [_Var(np.array(12, dtype=np.int64), "adam/iteration")]
    save_resume(tmp_path, state, model_vars, opt_vars)
    assert load_resume_state(tmp_path) == state
    fresh_m = [_Var(np.zeros((2, 3), np.float32), "a"), _Var(np.zeros(2, np.int64), "b")]
    fresh_o = [_Var(np.array(0, np.int64), "c")]
    restore_variables(tmp_path, fresh_m, fresh_o)
    np.testing.assert_array_equal(fresh_m[0].value, np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(fresh_m[1].value, [5, 9])
    assert int(fresh_o[0].value) == 12


def test_infinite_best_loss_survives_json(tmp_path: Path) -> None:
    save_resume(tmp_path, ResumeState(epoch=0), [], [])
    assert math.isinf(load_resume_state(tmp_path).best_val_loss)


def test_restore_rejects_a_changed_model(tmp_path: Path) -> None:
    save_resume(tmp_path, ResumeState(epoch=1), [_Var(np.zeros((2, 3)), "k")], [])
    with pytest.raises(ValueError, match=r"resume\.npz.*shape"):
        restore_variables(tmp_path, [_Var(np.zeros((3, 3)), "k")], [])
    with pytest.raises(ValueError, match="holds 1 model variables"):
        restore_variables(tmp_path, [_Var(np.zeros((2, 3)), "k"), _Var(np.zeros(1), "x")], [])


def test_no_state_before_first_epoch_and_corrupt_file_is_named(tmp_path: Path) -> None:
    assert load_resume_state(tmp_path) is None
    (tmp_path / "resume.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"resume\.npz"):
        load_resume_state(tmp_path)
