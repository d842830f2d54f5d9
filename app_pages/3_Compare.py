"""Compare: runs side by side with CIs, baselines, the paper's tables, paired difference, curves."""

from __future__ import annotations

from typing import Any

import streamlit as st

from medcap.app import facts, seeds, tables, viz
from medcap.eval import artifacts, paper
from ui import caches, widgets


@st.cache_data(show_spinner="Paired bootstrap over the shared images…", max_entries=16)
def _paired(run_a: str, run_b: str, sig_a: float, sig_b: float, root: str) -> dict[str, Any]:
    a, b = tables.find_run(run_a), tables.find_run(run_b)
    if a is None or b is None:
        raise ValueError("run not found")
    return tables.paired_runs(a, b)


def paired_section(chosen: list) -> None:
    st.subheader("Paired difference")
    if len(chosen) != 2:
        st.caption("Pick exactly two runs to test their difference with a paired bootstrap.")
        return
    a, b = chosen
    labels = tables.run_labels(chosen)
    st.caption(f"A = **{labels[a.run_id]}** (`{a.run_id}`), B = **{labels[b.run_id]}** (`{b.run_id}`): bootstrap "
               "over the images both evaluations scored. Differences too small for 4 decimals are printed in "
               "scientific notation.")
    key = f"paired-{a.run_id}-{b.run_id}"
    if st.button("Compute the paired difference", key="paired_btn"):
        st.session_state[key] = True
    if not st.session_state.get(key):
        return
    sig = [caches.metrics_signature(i, tables.latest_eval(i)) for i in chosen]
    try:
        result = _paired(a.run_id, b.run_id, sig[0], sig[1], caches.artifacts_key())
    except ValueError as exc:
        st.warning(str(exc))
        return
    table = tables.paired_difference_table(result)
    if table.empty:
        st.json(result, expanded=False)
        return
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"A": number, "B": number, "share of resamples B > A": number},
    )
    st.caption(f"{result.get('n_images', '?')} images: {result.get('images', '')}. {result.get('notes', '')}")


def grounding_section(metrics: dict[str, dict[str, Any]]) -> None:
    st.subheader("Does the caption depend on the image?")
    st.caption("Image reliance: the metric of the real captions minus that of captions decoded with each image's "
               "features swapped for another case's (95% paired CI over cases). Near 0: the captions ignore the image. "
               "A retrieval-augmented run is measured both ways: features and caption memory swapped (the whole "
               "system), and features swapped with the memory held to the true image's neighbours (its neural part).")
    st.dataframe(seeds.reliance_table(metrics), hide_index=True, width="stretch")
    st.caption("Caption health of the model's captions. A share marked *enforced by decoding* is a rule of the "
               "search (e.g. block_repeats forbids back-to-back repeats), not a measured quality.")
    st.dataframe(artifacts.health_table(metrics), hide_index=True, width="stretch")


def facts_section(metrics: dict[str, dict[str, Any]]) -> None:
    """Clinical facts of each run's evaluation: modality, plane, region stated right / wrong / not stated."""
    table = facts.facts_table(metrics)
    if table.empty:
        return
    st.subheader("Clinical facts")
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption("Facts a caption (with a run's findings line, when it has one) states, scored against the dataset's "
               "labels: right = share of all images where the fact is stated and right; wrong = share of the stated "
               "facts that are wrong; 95% CIs resample cases. `model caption only` leaves the findings line out.")


def seed_section(infos: list) -> None:
    st.subheader("Seed noise")
    groups = seeds.seed_groups(infos)
    if not groups:
        st.caption("No runs differ only in their init seed. `python -m medcap grid --seeds 1,2,3 ...` trains such "
                   "runs (the split stays fixed), so a difference between settings can be judged against seed noise.")
        return
    for group in groups[:4]:
        first = group[0]
        repeated = seeds.repeated_seed_runs(infos, group)
        st.markdown(f"**{first.preset}** on `{first.dataset}`: {len(group)} distinct seeds "
                    f"({', '.join(str(seeds.seed_of(i)) for i in group)})"
                    + (f"; {len(repeated)} more run(s) repeating one of these seeds left out" if repeated else ""))
        by_run = {}
        for info in group:  # one unreadable metrics.json leaves its run out, never the section
            name = tables.latest_eval(info)
            try:
                if name:
                    by_run[info.run_id] = caches.metrics(info, name)
            except ValueError as exc:
                st.markdown(f":orange[Left out of the seed noise] `{info.run_id}`: {exc}")
        if by_run:
            st.dataframe(seeds.seed_summary(by_run), hide_index=True, width="stretch")
    st.caption("sd: standard deviation over seeds (training randomness); CI half-width: the mean bootstrap "
               "half-width (case sampling). A gap between settings smaller than both is noise.")


def body() -> None:
    st.title("Compare")
    infos = [i for i in caches.list_runs() if i.evals]
    if not infos:
        widgets.no_runs_hint()
        return
    ids = [i.run_id for i in infos]
    labels = tables.run_labels(infos)
    picked = st.multiselect(
        "Runs (default: the latest Model-80 and Model-70)", ids, default=tables.default_compare(infos), key="cmp",
        format_func=lambda rid: labels.get(rid, rid), help="Runs by name; their ids are in the first table."
    )
    by_id = {i.run_id: i for i in infos}
    chosen = [by_id[rid] for rid in picked if rid in by_id]  # in the order picked: A first
    if not chosen:
        st.info("Pick at least one evaluated run.")
        return
    metrics: dict[str, dict[str, Any]] = {}
    presets = {}
    for info in chosen:
        name = tables.latest_eval(info)
        try:
            metrics[labels[info.run_id]] = caches.metrics(info, name)
            presets[labels[info.run_id]] = info.preset
        except ValueError as exc:
            st.warning(f"{info.run_id}: {exc}")
    if not metrics:
        return
    long = artifacts.metrics_table(metrics)
    st.subheader("Caption metrics (95% bootstrap CI over cases), with both baselines")
    if any(m.get("retrieval_augmented") for m in metrics.values()):
        st.caption("**Retrieval-augmented** runs mix the nearest training captions into every next word (caption "
                   "memory), so their captions are partly copied; each is shown beside its *neural only* decode "
                   "(same weights, memory off).")
    st.dataframe(artifacts.scope_table(metrics), hide_index=True, width="stretch")
    st.dataframe(artifacts.side_by_side(long), width="stretch")
    st.plotly_chart(viz.metric_bars(long), width="stretch")
    st.subheader("Next-word classification (paper Table 2 style)")
    st.dataframe(artifacts.next_word_table(metrics), width="stretch")

    st.subheader("Beside the paper")
    beside = paper.comparison(metrics, presets)
    if beside.empty:
        st.caption("The paper reports figures for the model-80 and model-70 presets only.")
    else:
        widgets.paper_beside(beside)
        st.caption("A signed difference only for evaluations on the paper's kind of data (MedICaT); others read "
                   f"*{paper.NOT_COMPARABLE}*.")
    paper_tables, notes = paper.table_frames(), paper.NOTES
    for key, title in (("table2", "Table 2"), ("table3", "Table 3"), ("table4", "Table 4")):
        with st.expander(f"Paper {title}"):
            st.dataframe(paper_tables[key], hide_index=True, width="stretch")
            st.caption(notes.get(key, ""))

    widgets.guard(lambda: paired_section(chosen), "the paired difference")
    widgets.guard(lambda: grounding_section(metrics), "image reliance and caption health")
    widgets.guard(lambda: facts_section(metrics), "clinical facts")
    widgets.guard(lambda: seed_section(infos), "seed noise")

    st.subheader("Training curves")
    hists = {labels[i.run_id]: caches.history(i) for i in chosen}
    left, right = st.columns(2)
    left.plotly_chart(viz.history_figure(hists, "loss"), width="stretch")
    right.plotly_chart(viz.history_figure(hists, "accuracy"), width="stretch")

    csv = long.to_csv(index=False).encode("utf-8")
    st.download_button("Download the metrics as CSV", csv, file_name="medcap-compare.csv", mime="text/csv")


widgets.guard(body, "the Compare page")
