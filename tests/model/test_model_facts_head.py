"""medcap.model.facts_head: fact predictors fitted on training labels, thresholds from validation, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medcap.model.facts_head import (
    FactHead,
    FactPredictor,
    calibrate,
    fact_inputs,
    facts_line,
    fit_head,
    sure_facts,
)


def _toy(n: int = 120, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    modality = ["ct" if v > 0 else "mr" for v in x[:, 0]]
    plane = ["axial", "coronal", "sagittal"]
    planes = [plane[int(np.argmax(row[1:4]))] for row in x]
    return x, modality, planes


def test_fact_inputs_pool_the_grid_by_mean_and_max() -> None:
    grid = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)  # (N, h, w, C)
    glob = np.ones((2, 4), dtype=np.float32)
    x = fact_inputs(glob, grid, "mean+max")
    assert x.shape == (2, 6)
    np.testing.assert_allclose(x[0], [4.5, 5.5, 6.5, 9, 10, 11])
    assert fact_inputs(glob, grid, "global+mean+max").shape == (2, 10)
    with pytest.raises(ValueError, match="need the grid"):
        fact_inputs(glob, None, "mean+max")


def test_binary_head_matches_scikit_learn_and_separates_the_toy() -> None:
    from sklearn.linear_model import LogisticRegression

    x, modality, _ = _toy()
    head = fit_head("modality", x, modality, c=0.1)
    assert head is not None and head.classes == ["ct", "mr"]
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    ref = LogisticRegression(C=0.1, max_iter=3000, random_state=0).fit(xs, modality).predict_proba(xs)
    np.testing.assert_allclose(head.proba(x), ref, atol=1e-6)
    assert (np.array(head.classes)[head.proba(x).argmax(axis=1)] == np.array(modality)).mean() > 0.95


def test_a_fact_with_one_class_or_no_labels_gets_no_head() -> None:
    x, _, _ = _toy(10)
    assert fit_head("modality", x, ["ct"] * 10) is None
    assert fit_head("modality", x, [None] * 10) is None


def test_calibrate_picks_the_lowest_threshold_within_the_wrong_target() -> None:
    head = FactHead("plane", ["axial", "coronal"], np.zeros(1), np.ones(1), np.array([[-1.0], [1.0]]), np.zeros(2))
    x = np.array([[-3.0], [-2.0], [-0.1], [0.2], [3.0]])  # P(coronal) = sigmoid(2x)
    labels = ["axial", "axial", "coronal", "axial", "coronal"]  # rows 2 and 3 are near 0.5 and wrong
    p = head.proba(x).max(axis=1)
    assert calibrate(head, x, labels, target=0.0) == pytest.approx(p[1])  # rows 0, 1, 4 stated, all right
    assert calibrate(head, x, labels, target=0.5) == 0.0
    assert calibrate(head, x, [None] * 5, target=0.0) == 0.5


def test_predictor_round_trips_through_json_and_writes_a_findings_line() -> None:
    x, modality, planes = _toy()
    groups = [f"case{i // 2}" for i in range(80)]  # two images per case
    pred = FactPredictor.fit(x[:80], {"modality": modality[:80], "plane": planes[:80]}, groups)
    assert 0.0 <= pred.heads["modality"].threshold < 0.9  # separable: a low threshold keeps wrong <= 5%
    again = FactPredictor.from_json(json.loads(json.dumps(pred.to_json())))
    first, second = pred.predict(x[80:]), again.predict(x[80:])
    assert first == second
    one = {"modality": ("ct", 0.98, True), "plane": ("axial", 0.51, False)}
    assert facts_line(one) == "ct"
    assert facts_line(one, with_probabilities=True) == "ct (0.98) · not sure: plane"
    assert sure_facts(one) == {"modality": "ct"}
    with pytest.raises(ValueError, match=r"facts\.json"):
        FactPredictor.from_json({"format": "other"})
