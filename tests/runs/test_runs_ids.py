"""Run ids: generated, safe, unique even when started at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

from medcap.runs.index import new_run_dir


def test_user_names_are_sanitised(tmp_path: Path) -> None:
    for name in ("../../etc/passwd", "a/b\\c", "..", "  spaced name  ", ".hidden"):
        run = new_run_dir(name, root=tmp_path)
        assert run.parent == tmp_path
        assert "/" not in run.name and ".." not in run.name and not run.name.startswith(".")
    assert "spaced-name" in new_run_dir("spaced name", root=tmp_path).name


def test_runs_started_at_the_same_moment_get_different_folders(tmp_path: Path) -> None:
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        made.append(new_run_dir("same", root=tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 8
    assert len({p.name for p in made}) == 8
    assert all(p.is_dir() for p in made)
