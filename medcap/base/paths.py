"""Where medcap keeps its outputs and caches (overridable with environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def artifacts_dir() -> Path:
    """Root of run outputs and caches: `$MEDCAP_ARTIFACTS`, else `./artifacts` (relative to cwd)."""
    root = Path(os.environ.get("MEDCAP_ARTIFACTS", "artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def runs_dir() -> Path:
    """Folder holding one sub-folder per training run."""
    path = artifacts_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def features_dir() -> Path:
    """Folder holding the feature stores."""
    path = artifacts_dir() / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir() -> Path:
    """Folder holding generated datasets (the synthetic demo set)."""
    path = artifacts_dir() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_cache_dir() -> Path:
    """Per-user cache (converted backbone weights): `$MEDCAP_CACHE`, else `~/.cache/medcap`."""
    env = os.environ.get("MEDCAP_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "medcap"
    path.mkdir(parents=True, exist_ok=True)
    return path
