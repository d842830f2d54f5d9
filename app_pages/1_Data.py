"""Data: what a dataset spec loads, drops, splits and leaks, with sample images."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from medcap import config
from medcap.app import datasets, jobs, tables, viz
from medcap.base import procs
from medcap.data import confined, load_records, summarize
from medcap.data.roots import DatasetRefusedError, check_spec
from medcap.runs.folder import ACTIVE_STATES
from ui import caches, widgets


@st.cache_data(show_spinner="Loading the dataset…", max_entries=8)
def _load(spec: str, root: str) -> tuple[pd.DataFrame, Any]:
    result = load_records(spec)
    return result.table, result


@st.cache_data(show_spinner="Summarising…", max_entries=32)
def _summary(spec: str, root: str, max_words: int, protocol: str, split_by: str, seed: int) -> dict[str, Any]:
    _, result = _load(spec, root)
    return summarize(result, max_words=max_words, split_by=split_by, protocol=protocol, seed=seed)


@st.cache_data(show_spinner=False, max_entries=8)
def _caption_stats(spec: str, root: str) -> tuple[list[int], list[tuple[str, int]]]:
    table, _ = _load(spec, root)
    return datasets.caption_lengths(table), datasets.frequent_words(table, 25)


@st.cache_data(show_spinner="Splitting for the gallery…", max_entries=16)
def _gallery(spec: str, root: str, max_words: int, protocol: str, split_by: str, seed: int) -> pd.DataFrame:
    table, _ = _load(spec, root)
    return tables.gallery_table(table, max_words=max_words, protocol=protocol, split_by=split_by, seed=seed)


@st.cache_data(show_spinner="Checking both split modes for leakage…", max_entries=16)
def _leakage(spec: str, root: str, max_words: int, protocol: str, seed: int) -> pd.DataFrame:
    table, _ = _load(spec, root)
    return tables.leakage_by_split_mode(table, max_words=max_words, protocol=protocol, seed=seed)


def leakage_section(spec: str, root: str, settings: dict[str, Any]) -> None:
    """The leakage report as a figure: an image-level against a group-level split of the same data."""
    report = _leakage(spec, root, int(settings.get("max_words", 20)), str(settings.get("protocol", "model-80")),
                      int(settings.get("seed", 42)))
    st.plotly_chart(viz.leakage_figure(report), width="stretch")
    st.caption(
        "Both splits use the settings above except *split by*. Splitting images (the paper's literal split) "
        "puts images of one case in train and test, so test captions repeat training captions; splitting "
        "groups (cases) keeps every case in one split."
    )


def gallery_section(spec: str, root: str, settings: dict[str, Any]) -> None:
    """Thumbnails of the dataset with caption, group and split, filterable, with a CSV export."""
    st.subheader("Gallery")
    gallery = _gallery(spec, root, int(settings.get("max_words", 20)), str(settings.get("protocol", "model-80")),
                       str(settings.get("split_by", "group")), int(settings.get("seed", 42)))
    chosen = widgets.metadata_filters(gallery, key_prefix="gal_f_")
    c1, c2, c3 = st.columns(3)
    lo, hi = int(gallery["caption_words"].min()), int(gallery["caption_words"].max())
    length = c1.slider("Caption length (words)", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="gal_len")
    words = c2.text_input("Words in the caption", key="gal_words", placeholder="e.g. axial lesion")
    n = int(c3.number_input("Images to show", 4, 96, 12, step=4, key="gal_n"))
    shown = tables.filter_rows(gallery, chosen, length, "caption_words", words, ("caption",))
    st.caption(f"{len(shown)} of {len(gallery)} images match; showing the first {min(n, len(shown))}.")
    st.download_button(
        "Download the filtered list as CSV",
        shown.drop(columns=["image_path"]).to_csv(index=False).encode("utf-8"),
        file_name="medcap-dataset-gallery.csv",
        mime="text/csv",
        key="gal_csv",
    )
    counts_section(shown)
    if shown.empty:
        st.info("No image matches the filters.")
        return
    grid = st.columns(4)
    for i, row in enumerate(shown.head(n).itertuples(index=False)):
        with grid[i % 4]:
            img = confined.thumbnail(row.image_path, 220)
            label = f"{row.image_id} · {row.split} · group {row.group}"
            if img is None:
                st.caption(f"{label}: unreadable image")
            else:
                st.image(img, caption=label)
            st.markdown(f"*{str(row.caption)[:200]}*")


def counts_section(shown: pd.DataFrame) -> None:
    """Images and cases per value of one label (modality, plane, location, ...) among the filtered images."""
    columns = datasets.count_columns(shown)
    if not columns:
        return
    with st.expander("Counts by label (the filtered images)"):
        by = st.selectbox("Count by", columns, key="gal_count_by")
        st.dataframe(datasets.label_counts(shown, by), hide_index=True, width="stretch")


def body() -> None:
    st.title("Data")
    st.caption("Pick a dataset spec (`KIND[:PATH]`): record counts, drops by reason, caption lengths, splits, leakage.")
    specs = caches.dataset_choices(caches.list_runs())
    with st.form("data_form"):
        left, right = st.columns([2, 1])
        with left:
            choice = st.selectbox("Dataset", specs, index=0)
            custom = st.text_input("…or type a spec", placeholder="e.g. csv:data/my_set/captions.csv",
                                   help="Read only inside the data folders ($MEDCAP_DATA, default ./data) and the "
                                        f"artifacts folder; synthetic:N (at most {jobs.SYNTHETIC_MAX:,}) is "
                                        "generated in the background first.")
        with right:
            max_words = st.number_input("Max caption words", 1, 200, 20)
            protocol = st.selectbox("Split protocol", config.PROTOCOL_CHOICES, help=config.field_help("protocol"))
            split_by = st.selectbox("Split by", config.SPLIT_BY_CHOICES, help=config.field_help("split_by"))
            seed = int(st.number_input("Seed", 0, 10**6, 42))
        submitted = st.form_submit_button("Load dataset", type="primary")
    if submitted:
        typed = custom.strip()
        st.session_state["data_spec"] = (typed or choice, int(max_words), protocol, split_by, seed)
        st.session_state["data_spec_note"] = (  # the box wins over the dropdown: say so, never silently
            f"Loaded the spec typed in the box, `{typed}`; the dropdown's `{choice}` is not used while the box has "
            "text (clear the box to load the dropdown's choice)." if typed and typed != choice else "")
    chosen = st.session_state.get("data_spec")
    if not chosen:
        st.info("Pick a dataset and press **Load dataset** (a synthetic set is first generated in the background).")
        return
    spec, max_words, protocol, split_by, seed = chosen
    root = caches.artifacts_key()
    if st.session_state.get("data_spec_note"):
        st.info(st.session_state["data_spec_note"])
    if not readable(spec):
        return
    try:
        table, _ = _load(spec, root)
        summary = _summary(spec, root, max_words, protocol, split_by, seed)
    except (ValueError, FileNotFoundError, OSError) as exc:
        st.warning(f"Could not load `{spec}`: {exc}")
        return
    show(spec, root, table, summary)


def readable(spec: str) -> bool:
    """True when `spec` may be loaded here now: inside the data folders, and a synthetic set already
    generated (otherwise its background generation is offered or followed)."""
    try:
        check_spec(spec)
    except DatasetRefusedError as exc:  # one text, whatever is (or is not) on disk
        st.error(f"`{spec}`: {exc}")
        return False
    except ValueError as exc:
        st.warning(f"Could not load `{spec}`: {exc}")
        return False
    n = datasets.synthetic_size(spec)
    if n is None or datasets.synthetic_ready(n):
        return True
    if jobs.synthetic_job(n)["state"] in ACTIVE_STATES:
        _generating(n)
    else:
        _offer_generation(n)
    return False


def _offer_generation(n: int) -> None:
    if n > jobs.SYNTHETIC_MAX:
        st.error(f"`synthetic:{n}`: the dashboard generates at most {jobs.SYNTHETIC_MAX:,} images; generate "
                 f"larger sets with `python -m medcap data --dataset synthetic:{n}`.")
        return
    job = jobs.synthetic_job(n)
    st.info(f"`synthetic:{n}` is not generated yet: it is generated in a background process (at most "
            f"{jobs.SYNTHETIC_MAX:,} images here), then shown here.")
    if job["state"] in ("interrupted", "cancelled"):
        st.caption(f"The last generation of `synthetic:{n}` stopped ({job['state']}).")
    if st.button(f"Generate synthetic:{n}", type="primary", key="gen_synthetic"):
        try:
            launch = jobs.launch_synthetic(n)
            st.toast(f"Generating synthetic:{n} (pid {launch.pid}).")
        except (ValueError, OSError) as exc:
            st.warning(f"Could not start the generation: {exc}")
            return
        st.rerun()


@st.fragment(run_every=2.0)
def _generating(n: int) -> None:
    """Progress of a background generation; redraw the page once the set is ready or the job ends."""
    job = jobs.synthetic_job(n)
    if datasets.synthetic_ready(n) or job["state"] not in ACTIVE_STATES:
        st.rerun()
    done = datasets.synthetic_rendered(n)
    st.progress(min(done / n, 1.0), text=f"Generating synthetic:{n} in the background (pid {job.get('pid')}): "
                                         f"{done:,}/{n:,} images")
    if st.button("Cancel the generation", key="cancel_synthetic"):
        try:
            jobs.cancel_synthetic(n)
            st.toast("Asked the generation to stop.")
        except (ValueError, OSError) as exc:
            st.warning(str(exc))
    with st.expander("Generation log (last lines)"):
        st.code(procs.tail(jobs.launch_log(str(job.get("log") or "none"))) or "(starting…)", language="text")


def show(spec: str, root: str, table: pd.DataFrame, summary: dict[str, Any]) -> None:
    st.subheader(f"`{spec}`")
    cols = st.columns(5)
    cols[0].metric("Records read", summary.get("records_read", 0))
    cols[1].metric("Images found", summary.get("images_found", len(table)))
    cols[2].metric("Records kept", summary.get("records_kept", 0))
    cols[3].metric("Groups (cases)", summary.get("groups", 0))
    cols[4].metric("Vocabulary (train)", summary.get("vocab_size", 0))

    dropped = summary.get("dropped") or {}
    examples = summary.get("examples") or {}
    st.markdown("**Dropped records by reason**")
    if dropped:
        st.dataframe(
            pd.DataFrame(
                [
                    {"reason": r, "records": n, "examples": ", ".join(examples.get(r, [])[:3])}
                    for r, n in dropped.items()
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("Nothing dropped.")

    lengths, words = _caption_stats(spec, root)
    left, right = st.columns(2)
    with left:
        fig = viz.histogram(lengths, "Caption length (all captions)", "caption length (words)", bins=40)
        fig.add_vline(
            x=summary.get("settings", {}).get("max_words", 20) + 0.5, line_dash="dash", annotation_text="limit"
        )
        st.plotly_chart(fig, width="stretch")
    with right:
        st.plotly_chart(viz.word_bars(words), width="stretch")

    left, right = st.columns(2)
    with left:
        sizes = summary.get("split_sizes") or {}
        if sizes:
            st.plotly_chart(viz.split_bars(sizes, f"Split sizes ({summary['settings']['protocol']})"), width="stretch")
    with right:
        st.markdown("**Leakage report** (train/val/test overlap)")
        leak = summary.get("leakage") or {}
        st.dataframe(pd.DataFrame([{"check": tables.LEAKAGE_CHECKS.get(k, k.replace("_", " ")), "value": v}
                                   for k, v in leak.items()]), hide_index=True)

    st.markdown("**Sample images**")
    sample = table.sample(min(8, len(table)), random_state=0) if len(table) else table
    grid = st.columns(4)
    for i, (_, row) in enumerate(sample.iterrows()):
        with grid[i % 4]:
            img = confined.thumbnail(row["image_path"], 220)
            if img is None:
                st.caption(f"{row['image_id']}: unreadable image")
            else:
                widgets.show_image(img, caption=f"{row['image_id']}: {str(row['caption'])[:160]}")

    settings = summary.get("settings") or {}
    widgets.guard(lambda: leakage_section(spec, root, settings), "the leakage figure")
    widgets.guard(lambda: gallery_section(spec, root, settings), "the gallery")


widgets.guard(body, "the Data page")
