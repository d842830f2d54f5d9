"""Study: case-disjoint k-fold results (`python -m medcap study`): systems vs 1-NN retrieval, pooled and per fold."""

from __future__ import annotations

import streamlit as st

from medcap.app import facts, viz
from medcap.experiments import study
from ui import widgets


def body() -> None:
    st.title("Study")
    st.caption("A study trains each system on k case-disjoint folds (once per seed with `--seeds`) and scores every "
               "test image once per seed, beside the 1-NN retrieval and most-frequent baselines over the system's "
               "OWN training pool; the paired difference to that 1-NN has a 95% CI over cases (and seeds).")
    folders = study.list_studies()
    if not folders:
        st.info("No study yet. Run one with `python -m medcap study --dataset medpix:PATH --folds 5` "
                "(resumable; it appears here while it runs).")
        return
    picked = st.selectbox("Study", [f.name for f in folders], key="study")
    info = study.read_study(next(f for f in folders if f.name == picked))
    status, settings, results = info["status"], info["settings"], info["results"]
    if settings:
        systems = ", ".join(settings.get("systems", {}))
        st.markdown(f"`{settings.get('dataset')}` · {settings.get('folds')} folds · systems: {systems} · "
                    f"{widgets.badge(str(status.get('state', 'unknown')))}")
    if results is None:
        try:
            fraction = min(max(float(status.get("progress") or 0.0), 0.0), 1.0)
        except (TypeError, ValueError):
            fraction = 0.0
        st.progress(fraction, text=f"{status.get('message') or 'starting'}")
        st.caption("Results appear when every fold is trained and evaluated.")
        return
    seeds = results.get("seeds")
    st.subheader(f"Pooled over {results['folds']} folds: {results['n_images']} test images, "
                 f"{results['n_groups']} cases" + (f", seeds {', '.join(map(str, seeds))}" if seeds else ""))
    st.dataframe(study.pooled_frame(results), hide_index=True, width="stretch")
    st.markdown("\n".join(f"- {line}" for line in study.study_notes(results)))
    pools = study.pools_frame(results)
    if not pools.empty:
        st.markdown("**Training pools** the baselines retrieve from (each system is compared with its own pool's "
                    "1-NN; the other pools' figures are beside it, labelled)")
        st.dataframe(pools, hide_index=True, width="stretch")
    metric = st.selectbox("Per fold", ["cider", "bleu1", "bleu4", "rouge_l"], key="study_metric")
    per_fold = study.fold_frame(results, metric)
    st.dataframe(per_fold, hide_index=True, width="stretch")
    st.caption(f"Per fold and pooled figures come from the same per-image scores. {results.get('cider_rule', '')}")
    st.plotly_chart(viz.fold_figure(per_fold, metric), width="stretch")
    health = results.get("caption_health") or {}
    if health:
        st.subheader("Caption health (pooled)")
        st.dataframe(study.health_frame(health), hide_index=True, width="stretch")
    clinical = facts.pooled_facts_table(results.get("clinical_facts"))
    if not clinical.empty:
        st.subheader("Clinical facts (pooled)")
        st.dataframe(clinical, hide_index=True, width="stretch")
        st.caption("Modality, plane and body region a system states (a fact-aware system: its findings line, then "
                   "its caption; 'caption only' leaves the line out) against the dataset's labels, every test image "
                   "of every fold and seed; 95% CIs resample cases.")
    st.caption(" ".join(f"{k}: {v}." for k, v in (results.get("definitions") or {}).items()))


widgets.guard(body, "the Study page")
