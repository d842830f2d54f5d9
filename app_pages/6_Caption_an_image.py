"""Caption an image: upload a PNG/JPEG, pick a run and beam size; caption, word probabilities, attention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from medcap.app import attention, tables, viz
from medcap.data import confined
from medcap.data.facts import facts_line
from medcap.data.images import MAX_UPLOAD_BYTES, display_copy
from ui import caches, safety, widgets


@st.cache_resource(show_spinner="Loading the model (first time only)…", max_entries=2)

def findings_line(caption: object) -> None:
    """The caption's findings line with each fact's probability ("not sure" under the run's threshold)."""
    facts = getattr(caption, "facts", None)
    if facts:
        st.markdown(f"**Findings line:** {facts_line(facts, with_probabilities=True)}")

def _model(run_path: str, weights_mtime: float) -> Any:
    from medcap.inference.opened import load_run  # imports TensorFlow lazily, in medcap

    return load_run(Path(run_path))


SOURCES = ("Upload an image", "An image of the run's dataset")


def similar_for_upload(info: Any, query: Any) -> None:
    """Similar cases of an uploaded image, by its global features (D,) from the run's own featurizer."""
    widgets.similar_cases_panel(info, query=query, key="cap_sim")


def dataset_image(info: Any, beam: int) -> None:
    """Pick an image of the run's dataset (test images first): reference, generated caption, similar cases."""
    try:
        images = caches.run_images(info)
    except (ValueError, FileNotFoundError, OSError) as exc:
        st.info(f"The dataset of `{info.run_id}` cannot be loaded here: {exc}")
        return
    if images.empty:
        st.info(f"The dataset of `{info.run_id}` has no image with a usable caption.")
        return
    split_of = dict(zip(images["image_id"], images["split"], strict=True))
    image_id = st.selectbox(
        "Image of the run's dataset (test images first)",
        images["image_id"].tolist(),
        format_func=lambda i: f"{i} ({split_of.get(i, '?')})",
        key="cap_pick",
    )
    row = images[images["image_id"] == image_id].iloc[0]
    left, right = st.columns([1, 2])
    try:
        image = confined.load_image(row["image_path"])  # inside the data folders only
    except ValueError as exc:
        st.warning(str(exc))
        return
    left.image(image, caption=f"{image_id} ({row['split']} image)")
    with right:
        st.markdown(f"**Reference:** {row['caption']}")
        try:
            loaded = _model(str(info.path), tables.file_signature(info.dir.best_weights))
            caption = loaded.caption_images([image], loaded.decode_options(beam_size=beam))[0]
        except Exception as exc:  # a run whose model cannot be loaded must not break the page
            st.warning(f"Could not caption with `{info.run_id}`: {exc}")
        else:
            st.markdown(f"### {caption.text or '(empty caption)'}")
            findings_line(caption)
            st.caption(f"run `{info.run_id}` · beam {beam} · log-probability {caption.score:.2f}")
            if caption.words:
                st.plotly_chart(viz.word_probabilities(caption.words, caption.probs), width="stretch")
            if caption.attention is not None and caption.words:
                n = min(len(caption.words), len(caption.attention))
                st.plotly_chart(attention.attention_strip(image, caption.attention[:n], caption.words[:n]),
                                width="stretch", theme=None)
    widgets.similar_cases_panel(info, image_id=str(image_id), key="cap_sim")


def body() -> None:
    st.title("Caption an image")
    safety.research_notice()
    infos = [i for i in caches.list_runs() if i.state == "finished"]
    if not infos:
        st.info("No finished run yet. Build the demo on **Home** or train a run on **Train**.")
        return
    c1, c2 = st.columns([3, 1])
    with c1:
        info = widgets.pick_run(infos, key="cap_run")
    beam = c2.slider("Beam size", 1, 5, 1, key="cap_beam")
    missing = caches.weights_missing(info)
    if missing:
        st.warning(missing)
        return
    source = st.radio("Image", SOURCES, horizontal=True, key="cap_source")
    if source == SOURCES[1]:
        widgets.guard(lambda: dataset_image(info, beam), "the dataset image")
        return
    label = f"PNG or JPEG image ({MAX_UPLOAD_BYTES // 2**20} MB at most)"
    uploaded = st.file_uploader(label, type=["png", "jpg", "jpeg"], key="cap_file")
    if uploaded is None:
        st.caption("The image stays in memory; nothing is saved.")
        return
    try:
        # decoded at most 2048 px per side, within a memory budget, two uploads at a time per server
        image = safety.decode_gate().upload(uploaded.getvalue(), uploaded.name, MAX_UPLOAD_BYTES)
    except ValueError as exc:
        st.error(str(exc))
        return
    try:
        loaded = _model(str(info.path), tables.file_signature(info.dir.best_weights))
        caption = loaded.caption_images([image], loaded.decode_options(beam_size=beam))[0]
        query = loaded.featurizer()(image)[0]  # (D,) global features: out-of-distribution check, similar cases
    except Exception as exc:  # a run whose model cannot be loaded must not break the page
        st.warning(f"Could not caption with `{info.run_id}`: {exc}")
        return
    shown = display_copy(image)  # the browser and the charts get a bounded copy, never the original
    left, right = st.columns([1, 2])
    left.image(shown, caption="uploaded image")
    with right:
        st.markdown(f"### {caption.text or '(empty caption)'}")
        findings_line(caption)
        st.caption(f"run `{info.run_id}` · beam {beam} · log-probability {caption.score:.2f}")
        if caption.words:
            st.plotly_chart(viz.word_probabilities(caption.words, caption.probs), width="stretch")
        widgets.guard(lambda: safety.ood_note(info, query), "the out-of-distribution check")
    widgets.guard(lambda: similar_for_upload(info, query), "the similar cases")
    if caption.attention is None or not caption.words:
        st.caption("This model has no spatial attention to show.")
        return
    n = min(len(caption.words), len(caption.attention))
    labels = [f"{i + 1}. {w}" for i, w in enumerate(caption.words[:n])]
    pick = st.select_slider("Word", labels, key="cap_word")
    k = labels.index(pick)
    st.plotly_chart(
        attention.attention_figure(shown, caption.attention[k], title=f"Attention for “{caption.words[k]}”"),
        width="stretch",
        theme=None,
    )
    strip = attention.attention_strip(shown, caption.attention[:n], caption.words[:n])
    st.plotly_chart(strip, width="stretch", theme=None)


widgets.guard(body, "the Caption page")
