"""Dashboard pages under Streamlit's AppTest: run one, read its texts and tables."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT

PAGES = {
    "home": "app_pages/0_Home.py",
    "data": "app_pages/1_Data.py",
    "train": "app_pages/2_Train.py",
    "compare": "app_pages/3_Compare.py",
    "per_image": "app_pages/4_Per-image_BLEU.py",
    "attention": "app_pages/5_Attention.py",
    "caption": "app_pages/6_Caption_an_image.py",
    "study": "app_pages/7_Study.py",
}


TITLES = {
    "home": "medcap · medical image captioning",
    "data": "Data",
    "train": "Train",
    "compare": "Compare",
    "per_image": "Per-image BLEU",
    "attention": "Attention",
    "caption": "Caption an image",
    "study": "Study",
}


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / PAGES[name]), default_timeout=60)
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def assert_clean(at: AppTest, name: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title][:1] == [TITLES[name]]
    assert not at.error, [e.value for e in at.error]
