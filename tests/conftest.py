"""Shared fixtures: every test writes its artifacts into its own temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MEDPIX_DEV = PROJECT_ROOT.parent / "shared" / "data" / "medpix-dev"


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One per-session user cache (converted backbone weights are reused across tests).

    Set MEDCAP_TEST_CACHE to reuse a cache across sessions (CI keeps it inside the venv folder).
    """
    cache = Path(os.environ.get("MEDCAP_TEST_CACHE") or tmp_path_factory.mktemp("medcap-cache"))
    os.environ["MEDCAP_CACHE"] = str(cache)
    return cache


@pytest.fixture(autouse=True)
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh artifacts folder for each test (MEDCAP_ARTIFACTS); the example bundle is off unless a test sets it."""
    root = tmp_path / "artifacts"
    root.mkdir()
    monkeypatch.setenv("MEDCAP_ARTIFACTS", str(root))
    monkeypatch.setenv("MEDCAP_EXAMPLES", "off")
    return root


@pytest.fixture
def medpix_dir() -> Path:
    """The real MedPix sample beside the project; skip cleanly where it is absent."""
    if not (MEDPIX_DEV / "Descriptions.json").is_file():
        pytest.skip(f"MedPix sample not found at {MEDPIX_DEV}")
    return MEDPIX_DEV


def _is_long(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None or item.get_closest_marker("browser") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Spread the few long tests (marked slow or browser) over the two pytest-xdist workers.

    `-n 2 --dist worksteal` (pyproject.toml) gives each worker one half of this list and lets an idle
    worker steal from the end of the other's queue. Each half therefore starts with every other long
    test: both workers run their long tests first and share the short ones at the end, so no long
    test starts last. Without xdist the order changes nothing.
    """
    long = [item for item in items if _is_long(item)]
    short = [item for item in items if not _is_long(item)]
    first, second = long[0::2], long[1::2]
    cut = max(0, len(items) // 2 - len(first))
    items[:] = first + short[:cut] + second + short[cut:]
