"""medcap research dashboard: `streamlit run streamlit_app.py`. This file is the router; the pages are in `app_pages/`.

The pages folder is not called `pages/`: Streamlit would list a `pages/` folder on its own on a fresh
server (a deep link such as `/Compare` opened first would get that list, not this navigation).
"""

from __future__ import annotations

import streamlit as st

# (script, title, icon); the first is the Home page at the root URL
PAGES = [
    ("app_pages/0_Home.py", "Home", ":material/home:"),
    ("app_pages/1_Data.py", "Data", ":material/dataset:"),
    ("app_pages/2_Train.py", "Train", ":material/model_training:"),
    ("app_pages/3_Compare.py", "Compare", ":material/compare:"),
    ("app_pages/4_Per-image_BLEU.py", "Per-image BLEU", ":material/leaderboard:"),
    ("app_pages/5_Attention.py", "Attention", ":material/visibility:"),
    ("app_pages/6_Caption_an_image.py", "Caption an image", ":material/image:"),
    ("app_pages/7_Study.py", "Study", ":material/science:"),
]


def main() -> None:
    """Configure the app and route to the pages."""
    st.set_page_config(page_title="medcap dashboard", page_icon=":material/radiology:", layout="wide")
    pages = [
        st.Page(script, title=title, icon=icon, default=(i == 0)) for i, (script, title, icon) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()
