"""Attention: per generated word, where the model looked (and, on the synthetic set, the true findings)."""

from __future__ import annotations

import streamlit as st

from medcap.app import attention, datasets
from medcap.data import confined
from medcap.eval import artifacts
from ui import caches, widgets


@st.cache_data(show_spinner="Reading the finding boxes…", max_entries=4)
def _boxes(spec: str, root: str, signature: float) -> dict[str, list]:
    return datasets.synthetic_boxes(spec)  # keyed on the set's records.jsonl: a set generated later shows at once


def body() -> None:
    st.title("Attention")
    infos = [i for i in caches.list_runs() if i.evals]
    if not infos:
        widgets.no_runs_hint()
        return
    info = widgets.pick_run(infos, key="att_run", default=st.session_state.get("attention_run"))
    name = widgets.pick_eval(info, key="att_eval")
    ids = artifacts.attention_ids(info.path, name)
    if not ids:
        st.info("This evaluation saved no attention maps (self-attention model, or an older medcap).")
        return
    wanted = st.session_state.get("attention_image")
    image_id = st.selectbox("Test image", ids, index=ids.index(wanted) if wanted in ids else 0, key="att_image")
    try:
        preds = caches.predictions(info, name)
    except ValueError as exc:  # this run's file alone; the picker above still offers the others
        if str(exc) not in info.problems:
            st.warning(f"`{info.run_id}`: {exc}")
        return
    match = preds[preds["image_id"] == image_id]
    if match.empty:
        st.warning(f"{image_id} is not in the predictions of this evaluation.")
        return
    row = match.iloc[0]
    att = caches.attention(info, name, image_id)
    words = str(row["prediction"]).split()
    n = min(len(words), 0 if att is None else len(att))
    try:
        image = confined.load_image(row["image_path"])  # inside the data folders only
    except ValueError as exc:
        st.warning(str(exc))
        return
    st.markdown(f"**Generated:** {row['prediction'] or '(empty)'}")
    widgets.findings(row)
    st.markdown(f"**Reference:** {row['reference']}")
    if n == 0:
        st.info("No generated words with attention for this image.")
        widgets.show_image(image)
        return
    boxes: list = datasets.true_boxes(row)  # written with the evaluation (synthetic set): shown at once
    if not boxes and info.dataset.startswith("synthetic"):  # older evaluations: the generated set, if on disk
        try:
            boxes = _boxes(info.dataset, caches.artifacts_key(), datasets.synthetic_signature(info.dataset)).get(
                image_id, [])
        except (ValueError, OSError) as exc:
            st.caption(f"True finding boxes unavailable: {exc}")
    labels = [f"{i + 1}. {w}" for i, w in enumerate(words[:n])]
    pick = st.select_slider("Word", labels, key="att_word")
    k = labels.index(pick)
    title = f"Attention for “{words[k]}” (word {k + 1} of {n})"
    fig = attention.attention_figure(image, att[k], title=title, boxes=boxes)
    left, _ = st.columns([3, 2])
    left.plotly_chart(fig, width="stretch", theme=None)
    if boxes:
        st.caption("Dashed boxes: the true findings of this synthetic image.")
    st.plotly_chart(attention.attention_strip(image, att[:n], words[:n]), width="stretch", theme=None)


def similar_section() -> None:
    """The training images closest to the chosen test image (by the run's global features)."""
    run_id, image_id = st.session_state.get("att_run"), st.session_state.get("att_image")
    info = next((i for i in caches.list_runs() if i.run_id == run_id), None)
    if info is None or not image_id:
        return
    widgets.similar_cases_panel(info, image_id=str(image_id), key="att_sim")


widgets.guard(body, "the Attention page")
widgets.guard(similar_section, "the similar cases")
