"""Caption an image: upload a PNG/JPEG, pick a run and beam size; caption, word probabilities, attention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from medcap import dashboard, viz
from medcap.upload import MAX_UPLOAD_BYTES, display_copy, open_upload
from ui import common


@st.cache_resource(show_spinner="Loading the model (first time only)…", max_entries=2)
def _model(run_path: str, weights_mtime: float) -> Any:
    from medcap.inference import load_run  # imports TensorFlow lazily, in medcap

    return load_run(Path(run_path))


def body() -> None:
    st.title("Caption an image")
    infos = [i for i in common.list_runs() if i.state == "finished"]
    if not infos:
        st.info("No finished run yet. Build the demo on **Home** or train a run on **Train**.")
        return
    c1, c2 = st.columns([3, 1])
    with c1:
        info = common.pick_run(infos, key="cap_run")
    beam = c2.slider("Beam size", 1, 5, 1, key="cap_beam")
    missing = common.weights_missing(info)
    if missing:
        st.warning(missing)
        return
    label = f"PNG or JPEG image ({MAX_UPLOAD_BYTES // 2**20} MB at most)"
    uploaded = st.file_uploader(label, type=["png", "jpg", "jpeg"], key="cap_file")
    if uploaded is None:
        st.caption("The image stays in memory; nothing is saved.")
        return
    try:
        image = open_upload(uploaded.getvalue(), uploaded.name, MAX_UPLOAD_BYTES)
    except ValueError as exc:
        st.error(str(exc))
        return
    try:
        loaded = _model(str(info.path), dashboard.file_signature(info.dir.best_weights))
        caption = loaded.caption_images([image], beam=beam)[0]
    except Exception as exc:  # a run whose model cannot be loaded must not break the page
        st.warning(f"Could not caption with `{info.run_id}`: {exc}")
        return
    shown = display_copy(image)  # the browser and the charts get a bounded copy, never the original
    left, right = st.columns([1, 2])
    left.image(shown, caption="uploaded image")
    with right:
        st.markdown(f"### {caption.text or '(empty caption)'}")
        st.caption(f"run `{info.run_id}` · beam {beam} · log-probability {caption.score:.2f}")
        if caption.words:
            st.plotly_chart(viz.word_probabilities(caption.words, caption.probs), width="stretch")
    if caption.attention is None or not caption.words:
        st.caption("This model has no spatial attention to show.")
        return
    n = min(len(caption.words), len(caption.attention))
    labels = [f"{i + 1}. {w}" for i, w in enumerate(caption.words[:n])]
    pick = st.select_slider("Word", labels, key="cap_word")
    k = labels.index(pick)
    st.plotly_chart(
        viz.attention_figure(shown, caption.attention[k], title=f"Attention for “{caption.words[k]}”"),
        width="stretch",
        theme=None,
    )
    st.plotly_chart(viz.attention_strip(shown, caption.attention[:n], caption.words[:n]), width="stretch", theme=None)


common.guard(body, "the Caption page")
