"""Train: launch runs in the background, follow them live, cancel, resume, read their errors."""

from __future__ import annotations

import streamlit as st

from medcap import config
from medcap.app import jobs, tables, viz
from medcap.base import procs
from medcap.data.confined import usable_records
from medcap.data.roots import check_spec
from medcap.runs import index as runs
from medcap.runs.folder import ACTIVE_STATES, RESUMABLE_STATES
from ui import caches, widgets


@st.cache_data(show_spinner="Checking the datasets…", max_entries=64)
def _usable(spec: str, root: str, mtime: float) -> int | None:
    return usable_records(spec)


def default_dataset(specs: list[str]) -> int:
    """Index of the first offered dataset with usable records (a generated synthetic set counts: training
    generates it); 0 when none has any. Datasets are loaded (cached) only until one is found."""
    root = caches.artifacts_key()
    for i, spec in enumerate(specs):
        path = spec.partition(":")[2]
        if _usable(spec, root, tables.file_signature(path) if path else 0.0) != 0:
            return i
    return 0


def launch_form() -> None:
    """The launch form: preset, dataset, epochs, seed and the main hyper-parameters (choices from RunConfig)."""
    specs = caches.dataset_choices(caches.list_runs())
    first = default_dataset(specs)  # never a dataset with 0 usable records when another has some
    with st.form("launch"):
        st.markdown("**Launch a run** (it keeps running when this page reloads or the browser closes)")
        c1, c2, c3, c4 = st.columns(4)
        preset = c1.selectbox("Preset", config.PRESET_CHOICES, help=config.field_help("preset"))
        dataset = c2.selectbox("Dataset", specs, index=first)
        epochs = c3.number_input("Epochs (max)", 1, 100, 10)
        seed = c4.number_input("Seed", 0, 10**6, config.default("seed"))
        c1, c2, c3, c4, c5 = st.columns(5)
        lr = c1.number_input("Learning rate", 1e-5, 1e-1, config.default("learning_rate"), format="%.5f")
        layers = c2.number_input("BiLSTM layers", 1, 4, config.default("layers"))
        batch = c3.number_input("Batch size (0 = preset's)", 0, 1024, 0)
        patience = c4.number_input("Early-stop patience", 1, 50, config.default("patience"))
        attention = c5.selectbox("Attention", config.ATTENTION_CHOICES, help=config.field_help("attention"))
        name = st.text_input("Name (optional)", max_chars=40)
        go = st.form_submit_button("Launch", type="primary")
    if not go:
        return
    settings = {"preset": preset, "dataset": dataset, "epochs": int(epochs), "seed": int(seed), "name": name,
                "learning_rate": float(lr), "layers": int(layers), "batch_size": int(batch) or None,
                "patience": int(patience), "attention": attention}
    try:
        check_spec(dataset)  # only datasets inside the data folders, however the form was filled
        launch = jobs.launch_train(settings)
    except (ValueError, OSError) as exc:
        st.warning(f"Could not launch: {exc}")
        return
    st.session_state["last_launch"] = str(launch.log_path)
    st.success(f"Started {preset} on `{dataset}` (pid {launch.pid}). It appears below once its folder exists.")


def run_detail(info: runs.RunInfo) -> None:
    """Status, curves, actions and error of one run."""
    status = info.status
    st.markdown(f"**{info.run_id}** · {widgets.badge(info.state)} · preset `{info.preset}` · dataset `{info.dataset}`")
    if info.state == "unknown":
        st.markdown(f":orange[This folder is incomplete]: {status.get('problem', 'no status')}")
    if info.state == "failed":
        st.markdown(f":red[**Failed:**] `{status.get('error') or 'no error message recorded'}`")
    if info.state == "interrupted":
        st.markdown(":orange[**Interrupted:**] the process stopped without finishing (killed?). Resume it below.")
    problem = caches.config_problem(info)
    if problem:
        st.markdown(f":red[**Unusable config.json:**] `{problem}` (fix the value, or train a new run)")
    missing = caches.weights_missing(info)
    if missing:
        st.markdown(f":orange[**Weights missing:**] {missing}")
    holder = caches.trained_by(info)
    if holder is not None and info.state not in ACTIVE_STATES:
        st.markdown(f":orange[**Locked:**] `{info.run_id}` is being trained by pid {holder or '?'}; "
                    "Resume is offered once that process ends.")
    if status.get("restarted"):
        st.markdown(f":orange[**Restarted from epoch 1:**] {status['restarted']}")
    try:
        fraction = min(max(float(status.get("progress") or 0.0), 0.0), 1.0)
    except (TypeError, ValueError):
        fraction = 0.0
    st.progress(
        fraction, text=f"epoch {status.get('epoch', '?')}/{status.get('epochs', '?')} · {status.get('message') or ''}"
    )
    hist = caches.history(info)
    if not hist.empty:
        left, right = st.columns(2)
        left.plotly_chart(viz.history_figure({info.run_id: hist}, "loss"), width="stretch", key=f"loss-{info.run_id}")
        right.plotly_chart(
            viz.history_figure({info.run_id: hist}, "accuracy"), width="stretch", key=f"acc-{info.run_id}"
        )
    else:
        st.caption("No epochs recorded yet.")
    with st.expander("Log (last lines)"):
        st.code(procs.tail(info.dir.log) or "(empty)", language="text")


@st.fragment(run_every=2.0)
def live(run_id: str) -> None:
    """Redraw an active run every 2 s; redraw the page once it ends."""
    info = tables.find_run(run_id)
    if info is None:
        st.warning("This run folder disappeared.")
        return
    run_detail(info)
    if info.state not in ACTIVE_STATES:
        st.rerun()


def actions(info: runs.RunInfo) -> None:
    if info.example:
        st.caption("An example run of the pre-built bundle (`examples/demo/`): read-only, no resume, cancel or "
                   "evaluate. Build your own on Home or above.")
        return
    cols = st.columns(3)
    if info.state in ACTIVE_STATES and cols[0].button("Cancel run", key="cancel"):
        try:
            jobs.cancel_run(info)
            st.toast("Asked the run to stop; it will show as cancelled.")
        except (ValueError, OSError) as exc:
            st.warning(str(exc))
    usable = caches.config_problem(info) is None
    missing = caches.weights_missing(info) is not None
    free = caches.trained_by(info) is None  # no live process holds the run's lock
    resumable = info.state in RESUMABLE_STATES or missing
    if usable and free and resumable and cols[1].button("Resume run", key="resume"):
        try:
            launch = jobs.launch_resume(info)
            st.toast(f"Resuming (pid {launch.pid}).")
        except (ValueError, OSError) as exc:
            st.warning(str(exc))
    if usable and not missing and info.state == "finished" and not info.evals and cols[2].button(
            "Evaluate", key="evaluate"):
        try:
            launch = jobs.launch_evaluate(info)
            st.toast(f"Evaluating (pid {launch.pid}).")
        except (ValueError, OSError) as exc:
            st.warning(str(exc))


def body() -> None:
    st.title("Train")
    widgets.guard(launch_form, "the launch form")
    last = st.session_state.get("last_launch")
    if last:
        with st.expander("Output of the last launch"):
            st.code(
                procs.tail(jobs.launch_log(last)) or "(starting…)", language="text"
            )
    st.subheader("Runs")
    table = caches.runs_table()
    if table.empty:
        st.info("No runs yet: launch one above, or build the demo on Home.")
        return
    st.dataframe(
        table.assign(state=table["state"].map(widgets.badge)).drop(columns=["updated"]),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "BLEU-1": st.column_config.NumberColumn("BLEU-1", format="%.3f"),
        },
    )
    info = widgets.pick_run(caches.list_runs(), "Run details", key="train_run")
    if info is None:
        return
    actions(info)
    if info.state in ACTIVE_STATES:
        live(info.run_id)
    else:
        run_detail(info)


widgets.guard(body, "the Train page")
