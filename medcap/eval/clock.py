"""Wall-clock seconds per named part of an evaluation (logged by `evaluate_run`; not in metrics.json)."""

from __future__ import annotations

import time


class Clock:
    """Seconds per named part of an evaluation (logged; the scale benchmark reads the line)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts[name] = self.parts.get(name, 0.0) + now - self._t
        self._t = now

    def describe(self) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in self.parts.items())
