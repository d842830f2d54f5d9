"""What the Caption page says and guards around a caption: the research-use notice, the bounded upload
decoder (one per server), and the out-of-distribution warning (`medcap.inference.ood`, calibrated per run)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from medcap.app import tables
from medcap.data.bounded import DecodeGate
from medcap.inference import ood, similar
from medcap.runs import index as runs
from ui import caches

RESEARCH_NOTICE = ("**Research use only, not for diagnosis.** medcap is a research reproduction: its captions are "
                   "generated from patterns in its training images, are often wrong, and must never guide the care "
                   "of a patient.")


def research_notice() -> None:
    """The notice above every generated caption."""
    st.info(RESEARCH_NOTICE, icon=":material/science:")


@st.cache_resource(show_spinner=False)
def decode_gate() -> DecodeGate:
    """The server's one upload decoder: at most two decodes at once, each bounded in size and memory."""
    return DecodeGate()


@st.cache_data(show_spinner="Calibrating the out-of-distribution check…", max_entries=8)
def _familiarity(run_path: str, signature: tuple, _memory: similar.CaseMemory) -> ood.Familiarity:
    return ood.calibrate(_memory.feats)  # keyed on the run and its files, not on the (large) memory


def ood_note(info: runs.RunInfo, query: np.ndarray) -> None:
    """A warning when the image's closest training image is less similar than the run's calibrated threshold."""
    try:
        memory = caches.case_memory(info)
        signature = (caches.artifacts_key(), tables.file_signature(info.dir.config),
                     tables.file_signature(info.dir.split))
        calib = _familiarity(str(info.path), signature, memory)
    except (ValueError, FileNotFoundError, KeyError, OSError) as exc:
        st.caption(f"No out-of-distribution check for this run: {exc}")
        return
    similarity = ood.nearest_similarity(memory.feats, query)
    if calib.is_unfamiliar(similarity):
        st.warning(f"**This image is unlike the images `{info.run_id}` was trained on:** {calib.describe(similarity)}. "
                   "The caption above may describe nothing that is in it.")
    else:
        st.caption(f"Like the training images: the closest one has cosine similarity {similarity:.3f} (warning below "
                   f"{calib.threshold:.3f}, the {calib.percentile:g}% least typical training images).")
