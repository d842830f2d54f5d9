"""Per-image BLEU: every test image of an evaluation, worst first, filterable, with a detail view."""

from __future__ import annotations

import streamlit as st

from medcap.app import facts, tables, viz
from medcap.data import confined
from ui import caches, widgets

SORT_COLUMNS = ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "nn_bleu1", "ref_len"]


def detail(row: dict, info_run_id: str) -> None:
    """One image: picture, reference, prediction, scores, the 1-NN caption."""
    left, right = st.columns([1, 2])
    with left:
        img = confined.thumbnail(row["image_path"], 360)  # inside the data folders only
        if img is None:
            st.caption("The image file cannot be read.")
        else:
            widgets.show_image(img, caption=str(row["image_id"]))
    with right:
        st.markdown(f"**Reference:** {row['reference']}")
        st.markdown(f"**Prediction:** {row['prediction'] or '(empty)'}")
        widgets.findings(row)
        st.markdown(f"**1-NN baseline:** {row.get('nn_caption', '')}")
        scores = {k: row[k] for k in SORT_COLUMNS if k in row}
        st.dataframe([scores], hide_index=True)
        if st.button("Show its attention", key="to_attention"):
            st.session_state["attention_run"] = info_run_id
            st.session_state["attention_image"] = str(row["image_id"])
            st.switch_page("app_pages/5_Attention.py")


def body() -> None:
    st.title("Per-image BLEU")
    infos = [i for i in caches.list_runs() if i.evals]
    if not infos:
        widgets.no_runs_hint()
        return
    info = widgets.pick_run(infos, key="pi_run")
    name = widgets.pick_eval(info, key="pi_eval")
    try:
        df = caches.predictions(info, name)
    except ValueError as exc:  # this run's file alone; the picker above still offers the others
        if str(exc) not in info.problems:
            st.warning(f"`{info.run_id}`: {exc}")
        return
    st.caption(f"{len(df)} test images in evaluation `{name}` of `{info.run_id}`.")
    for note in tables.missing_notes(df, info.run_id, ("cider",)):
        st.caption(note)

    c1, c2, c3, c4 = st.columns(4)
    sort_by = c1.selectbox("Sort by", [c for c in SORT_COLUMNS if c in df.columns], key="pi_sort")
    worst_first = c2.toggle("Worst first", value=True, key="pi_order")
    modality = None
    if "modality" in df.columns:
        options = sorted(df["modality"].dropna().astype(str).unique())
        modality = c3.multiselect("Modality", options, key="pi_mod")
    lo, hi = int(df["ref_len"].min()), int(df["ref_len"].max())
    length = c4.slider("Reference length (words)", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="pi_len")
    shown = tables.filter_predictions(df, modality, length, sort_by, ascending=worst_first)

    st.plotly_chart(
        viz.histogram(shown["bleu1"].dropna(), "Per-image BLEU-1 (filtered images)", "sentence BLEU-1 (0-1)"),
        width="stretch",
    )
    n = st.slider("Rows to show", 5, 200, 25, key="pi_rows")
    top = shown.head(n).copy()
    top.insert(0, "thumbnail", [caches.thumb_uri(p) for p in top["image_path"]])
    top["facts"] = [facts.fact_marks_text(r) for r in top.to_dict("records")]
    cols = ["thumbnail", "image_id", "reference", "prediction", "facts_line", "facts", "bleu1", "bleu2", "bleu4",
            "nn_caption", "nn_bleu1"]
    if "cider" in top.columns:
        cols.insert(cols.index("bleu4") + 1, "cider")
    if "modality" in top.columns:
        cols.insert(2, "modality")
    st.dataframe(
        top[[c for c in cols if c in top.columns]],
        hide_index=True,
        width="stretch",
        column_config={
            "thumbnail": st.column_config.ImageColumn("image", width="small"),
            "bleu1": st.column_config.NumberColumn("BLEU-1", format="%.3f"),
            "bleu2": st.column_config.NumberColumn("BLEU-2", format="%.3f"),
            "bleu4": st.column_config.NumberColumn("BLEU-4", format="%.3f"),
            "nn_caption": st.column_config.TextColumn("1-NN caption"),
            "facts_line": st.column_config.TextColumn("findings line"),
            "facts": st.column_config.TextColumn("facts (✓ right, ✗ wrong, – not stated)"),
            "nn_bleu1": st.column_config.NumberColumn("1-NN BLEU-1", format="%.3f"),
        },
    )
    st.download_button(
        "Download the filtered table as CSV",
        shown.drop(columns=["reference"]).to_csv(index=False).encode("utf-8"),
        file_name=f"{info.run_id}-{name}-per-image.csv",
        mime="text/csv",
    )
    if top.empty:
        st.info("No image matches the filters.")
        return
    st.subheader("Detail")
    image_id = st.selectbox("Image", top["image_id"].tolist(), key="pi_image")
    detail(top[top["image_id"] == image_id].iloc[0].to_dict(), info.run_id)


PAIR_SORTS = {
    "bleu1_diff": "where A beats B most (BLEU-1)",
    "bleu4_diff": "where A beats B most (BLEU-4)",
    "cider_diff": "where A beats B most (CIDEr)",
    "rouge_l_diff": "where A beats B most (ROUGE-L)",
}


def pair_section() -> None:
    """Two runs evaluated on the same images: both captions and scores per image, A − B, filters, CSV."""
    infos = [i for i in caches.list_runs() if i.evals]
    if not infos:
        return
    st.divider()
    st.subheader("Run A vs run B, per image")
    if len(infos) < 2:
        st.caption("Needs two evaluated runs: evaluate another run to compare captions image by image.")
        return
    defaults = tables.default_compare(infos)
    c1, c2 = st.columns(2)
    with c1:
        a = widgets.pick_run(infos, "Run A", key="pair_a", default=defaults[0] if defaults else None)
        eval_a = widgets.pick_eval(a, key="pair_a_eval")
    others = [i for i in infos if i.run_id != a.run_id]
    with c2:
        b = widgets.pick_run(others, "Run B", key="pair_b", default=defaults[1] if len(defaults) > 1 else None)
        eval_b = widgets.pick_eval(b, key="pair_b_eval")
    df_a, df_b = caches.predictions(a, eval_a), caches.predictions(b, eval_b)
    for note in [*tables.missing_notes(df_a, a.run_id), *tables.missing_notes(df_b, b.run_id)]:
        st.info(note)
    try:
        pairs = tables.pair_predictions(df_a, df_b)
    except ValueError as exc:
        st.info(f"`{a.run_id}` and `{b.run_id}`: {exc}.")
        return
    st.caption(f"{len(pairs)} images evaluated by both runs. Differences are A − B: above 0 where A scores higher.")

    sorts = [c for c in PAIR_SORTS if c in pairs.columns]
    c1, c2, c3 = st.columns(3)
    sort_by = c1.selectbox("Sort", sorts, format_func=PAIR_SORTS.get, key="pair_sort")
    lo, hi = int(pairs["ref_len"].min()), int(pairs["ref_len"].max())
    length = c2.slider("Reference length (words)", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="pair_len")
    words = c3.text_input("Words in the reference or a prediction", key="pair_words",
                          placeholder="e.g. liver lesion")
    chosen = widgets.metadata_filters(pairs, key_prefix="pair_f_")
    shown = tables.filter_rows(pairs, chosen, length, "ref_len", words,
                                  ("reference", "prediction_a", "prediction_b"))
    shown = shown.sort_values(sort_by, ascending=False, kind="stable")
    if shown.empty:
        st.info("No image matches the filters.")
        return
    st.plotly_chart(viz.histogram(shown[sort_by].dropna(), f"{PAIR_SORTS[sort_by]}: A − B per image",
                                  "A − B (sentence score)"), width="stretch")
    number = st.column_config.NumberColumn(format="%.3f")
    table = shown.drop(columns=["image_path"])
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={c: number for c in table.columns if c.endswith(("_a", "_b", "_diff")) and
                       not c.startswith("prediction")},
        key="pair_table",
    )
    st.download_button(
        "Download the run-vs-run table as CSV",
        table.to_csv(index=False).encode("utf-8"),
        file_name=f"{a.run_id}-vs-{b.run_id}-per-image.csv",
        mime="text/csv",
        key="pair_csv",
    )


widgets.guard(body, "the Per-image BLEU page")
widgets.guard(pair_section, "the run-vs-run table")
