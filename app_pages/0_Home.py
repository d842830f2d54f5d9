"""Home: what medcap is, the demo button and its progress, the runs at a glance, the paper's figures."""

from __future__ import annotations

import streamlit as st

from medcap.app import jobs, tables
from medcap.base import procs
from medcap.eval import paper
from medcap.experiments import demo
from medcap.runs.folder import ACTIVE_STATES
from ui import caches, widgets


def _demo_progress(status: dict) -> None:
    progress = status.get("progress")
    try:
        fraction = min(max(float(progress), 0.0), 1.0)
    except (TypeError, ValueError):
        fraction = 0.0
    stage = status.get("stage") or "starting"
    st.progress(fraction, text=f"Demo · {stage}: {status.get('message') or '…'} ({fraction:.0%})")


@st.fragment(run_every=2.0)
def _live_demo() -> None:
    status = jobs.demo_status()
    _demo_progress(status)
    done = status.get("evaluated") or []
    if done:
        st.success(
            f"{' and '.join(done)} {'is' if len(done) == 1 else 'are'} evaluated: open **Compare**, "
            "**Per-image BLEU** or **Attention** now; the other run joins when it finishes."
        )
    with st.expander("Demo log (last lines)"):
        st.code(procs.tail(jobs.demo_dir().log, 2000) or "(starting…)", language="text")
    if status["state"] not in ACTIVE_STATES:
        st.rerun()  # the demo ended: redraw the whole page with its runs
    if st.button("Cancel the demo", key="cancel_demo"):
        try:
            jobs.cancel_demo()
            st.toast("Asked the demo to stop.")
        except (ValueError, OSError) as exc:
            st.warning(str(exc))


def examples_note(n_examples: int) -> None:
    """Say what the example runs are, when they are all there is."""
    st.info(
        f"**Explore now:** the {n_examples} runs marked *example* are pre-built (a Model-80 and a Model-70 trained "
        "on a 3,000-image synthetic set, fifteen times the demo's, `examples/demo/`): **Compare**, **Per-image BLEU**, "
        "**Attention** (with similar cases) and **Caption an image** show them at once. They are read-only; your "
        "own runs go to `artifacts/`."
    )


def demo_section(n_runs: int, n_examples: int = 0) -> None:
    """Demo: one button with no runs of your own yet; live progress while it runs; its outcome afterwards."""
    status = jobs.demo_status()
    state = status["state"]
    if state in ACTIVE_STATES:
        st.subheader("Building the demo")
        st.caption(
            "Synthetic dataset → features → Model-80 and Model-70 side by side, each evaluated as soon as it is "
            f"trained, in a background process ({demo.EXPECTED_TIME}): you may reload or close this page."
        )
        _live_demo()
        return
    if state == "failed":
        st.markdown(f":red[**The demo failed**] at stage *{status.get('stage', '?')}*: {status.get('error') or ''}")
        with st.expander("Demo log (last lines)"):
            st.code(procs.tail(jobs.demo_dir().log) or "(empty)", language="text")
    elif state in ("interrupted", "cancelled"):
        st.markdown(f":orange[**The demo was {state}**] at stage *{status.get('stage', '?')}*.")
    elif state == "finished" and n_runs:
        seconds = status.get("seconds")
        took = f" in {float(seconds) / 60:.1f} min" if isinstance(seconds, int | float) else ""
        st.success(f"The demo finished{took}: its runs are listed below and on every page.")
    if n_runs == 0 and n_examples:
        examples_note(n_examples)
    if n_runs == 0 or state in ("failed", "interrupted", "cancelled"):
        st.markdown(
            "**Train your own?** Build the demo: a small synthetic CT-like dataset, VGG16 features, a Model-80 and a "
            "Model-70 run (a few epochs each, side by side) and their evaluation, in the background — "
            f"{demo.EXPECTED_TIME}. The first evaluated run appears on every page before the second is done."
        )
        label = "Build the demo" if state in ("none", "finished") else "Build the demo again"
        if st.button(label, type="primary", key="start_demo"):
            try:
                launch = jobs.start_demo()
                st.toast(f"Demo started (pid {launch.pid}).")
            except (ValueError, OSError) as exc:
                st.warning(f"Could not start the demo: {exc}")
            st.rerun()


def runs_section() -> None:
    """The runs at a glance."""
    table = caches.runs_table()
    st.subheader("Runs")
    if table.empty:
        st.info("No runs yet.")
        return
    shown = table.assign(state=table["state"].map(widgets.badge))
    st.dataframe(
        shown.drop(columns=["updated"]),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "BLEU-1": st.column_config.NumberColumn("BLEU-1 (test)", format="%.3f"),
            "message": st.column_config.TextColumn("message / error", width="large"),
        },
    )
    counts = table["state"].value_counts().to_dict()
    st.caption(" · ".join(f"{widgets.badge(k)}: {v}" for k, v in counts.items()))


def paper_section() -> None:
    """The paper's reported figures, and ours beside them."""
    st.subheader("The paper's reported figures")
    paper_tables = paper.table_frames()
    notes = paper.NOTES
    left, right = st.columns(2)
    with left:
        st.markdown("**Table 2** · next-word classification on the test split")
        st.dataframe(paper_tables["table2"], hide_index=True, width="stretch")
        st.caption(notes.get("table2", ""))
    with right:
        st.markdown("**Table 3** · corpus BLEU of generated captions")
        st.dataframe(paper_tables["table3"], hide_index=True, width="stretch")
        st.caption(notes.get("table3", ""))
    infos = caches.list_runs()
    chosen = [i for i in infos if i.run_id in tables.default_compare(infos)]
    if chosen:
        labels = tables.run_labels(chosen)
        presets = {labels[i.run_id]: i.preset for i in chosen}
        metrics, problems = {}, []
        for info in chosen:  # one run's broken metrics.json never hides the others
            name = tables.latest_eval(info)
            if not name:
                continue
            label = labels[info.run_id]
            try:
                found = caches.metrics(info, name)
                paper.comparison({label: found}, presets)  # its shape is usable
            except Exception as exc:
                problems.append(f"`{info.run_id}`: {exc}")
                continue
            metrics[label] = found
        beside = paper.comparison(metrics, presets)
        for problem in problems:
            st.markdown(f":orange[Left out of the comparison] {problem}")
        if not beside.empty:
            st.markdown("**medcap beside the paper** (latest evaluated Model-80 / Model-70 runs)")
            widgets.paper_beside(beside)
            st.caption("Like with like only: the paper's figures come from MedICaT (an image-level split), so a run "
                       f"on any other data reads *{paper.NOT_COMPARABLE}* and gets no signed difference. "
                       "*medcap 95% CI*: the evaluation's interval over cases, where it has one.")


def body() -> None:
    """The Home page."""
    st.title("medcap · medical image captioning")
    st.markdown(
        "medcap reproduces *Integrating Convolutional and Recurrent Neural Networks for Enhanced Medical Image "
        "Captioning* (Kanavos, Vonitsanos, Mylonas): VGG16 image features and a bidirectional LSTM with attention "
        "generate a caption for a CT or MR image, word by word. This dashboard launches and compares training "
        "runs, shows per-image results and attention maps, and captions your own images."
    )
    infos = []
    try:
        infos = caches.list_runs()
    except Exception as exc:
        st.warning(f"Could not list the runs: {exc}")
    own = [i for i in infos if not i.example]
    widgets.guard(lambda: demo_section(len(own), len(infos) - len(own)), "the demo")
    widgets.guard(runs_section, "the runs")
    widgets.guard(paper_section, "the paper's figures")


body()
