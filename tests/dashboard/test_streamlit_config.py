"""The dashboard's Streamlit settings: private by default."""

from __future__ import annotations

import tomllib
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"


def test_server_binds_to_localhost_by_default() -> None:
    server = tomllib.loads(CONFIG.read_text())["server"]
    assert server["address"] == "localhost"
    assert server["maxUploadSize"] == 10  # MB, matches medcap.data.images.MAX_UPLOAD_BYTES
