"""Status progress arithmetic and throttling."""

from __future__ import annotations

from medcap.train.callbacks import Throttle, progress_fraction


def test_progress_fraction() -> None:
    assert progress_fraction(0, 0, 10, 4) == 0.0
    assert progress_fraction(1, 5, 10, 4) == 0.375
    assert progress_fraction(4, 0, 10, 4) == 1.0
    assert progress_fraction(3, 99, 10, 4) == 1.0  # a step past the estimate never exceeds 1
    assert progress_fraction(0, 3, 0, 4) == 0.0


def test_throttle_lets_one_call_per_interval_through() -> None:
    now = [0.0]
    t = Throttle(1.0, clock=lambda: now[0])
    seen = []
    for step in range(30):
        now[0] = step * 0.25
        seen.append(t.ready())
    # calls at 0, 1.0, 2.0, ... pass: 30 calls over 7.25 s -> 8
    assert sum(seen) == 8
    assert seen[0] and seen[4] and not seen[1]
