"""Acceptance figures of a run on the synthetic demo set: findings named, attention inside the true box."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def box_mass(attention: np.ndarray, box: list[float]) -> float:
    """Attention mass inside a box: the (h, w) map is taken as uniform within each cell and integrated.

    `box` = [x0, y0, x1, y1] as fractions of width/height; cell (i, j) spans rows [i/h, (i+1)/h) and
    columns [j/w, (j+1)/w). The map is normalised to sum 1 first.
    """
    att = np.asarray(attention, dtype=np.float64)  # (h, w)
    total = att.sum()
    if total <= 0:
        return 0.0
    h, w = att.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    xs = np.arange(w + 1) / w
    ys = np.arange(h + 1) / h
    ox = np.clip(np.minimum(xs[1:], x1) - np.maximum(xs[:-1], x0), 0, None) * w  # (w,) cell fraction inside
    oy = np.clip(np.minimum(ys[1:], y1) - np.maximum(ys[:-1], y0), 0, None) * h  # (h,)
    return float((att * oy[:, None] * ox[None, :]).sum() / total)


def box_share(box: list[float]) -> float:
    """Area fraction of the image covered by the box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def score_captions(captions: list[Any], boxes: list[list[dict]]) -> dict[str, Any]:
    """Fraction of images whose caption names the true findings + locations, and box attention figures.

    For each true finding that the caption names, the attention map of the word naming it is integrated
    over the finding's box (`box_mass`) and compared to the box's share of the image.
    """
    from medcap.data.synthetic import caption_names_findings, finding_word_positions

    named = [bool(caption_names_findings(c.text, b)) for c, b in zip(captions, boxes, strict=True)]
    masses, mean_masses, shares, missing_word = [], [], [], 0
    for cap, img_boxes in zip(captions, boxes, strict=True):
        if cap.attention is None:
            continue
        positions = finding_word_positions(list(cap.words))
        for b in img_boxes:
            pos = positions.get(b["finding"])
            if pos is None or pos >= len(cap.attention):
                missing_word += 1
                continue
            masses.append(box_mass(cap.attention[pos], b["box"]))
            if cap.attention_mean is not None:
                mean_masses.append(box_mass(cap.attention_mean[pos], b["box"]))
            shares.append(box_share(b["box"]))
    mass = float(np.mean(masses)) if masses else float("nan")
    share = float(np.mean(shares)) if shares else float("nan")
    ratios = [m / s for m, s in zip(masses, shares, strict=True) if s > 0]
    return {
        "n_images": len(captions),
        "named_fraction": float(np.mean(named)) if named else float("nan"),
        "n_findings_scored": len(masses),
        "findings_not_generated": missing_word,
        "mean_box_mass": mass,
        "mean_box_share": share,
        "mass_over_share": mass / share if share and share > 0 else float("nan"),
        # the same for the mean over prefix positions (the map older evaluations showed)
        "mass_over_share_mean_map": (float(np.mean(mean_masses)) / share if mean_masses and share and share > 0
                                     else float("nan")),
        "median_instance_ratio": float(np.median(ratios)) if ratios else float("nan"),
    }


def content_key(modality: str, boxes: list[dict]) -> tuple:
    """What a synthetic caption has to say: the study kind and each finding's (finding, location, size)."""
    return (str(modality), tuple(sorted((b["finding"], b["location"], b.get("size", "")) for b in boxes)))


def distinct_figures(captions: list[str], references: list[str], contents: list[tuple]) -> dict[str, float]:
    """Distinct share (distinct / images) of the generated captions, of the references and of the images'
    contents (`content_key`): the last is the most a captioner can reach that states every finding,
    location and size in one wording per content, the references' share adds their random wording."""
    n = len(captions)
    if not n == len(references) == len(contents):
        raise ValueError(f"{n} captions, {len(references)} references, {len(contents)} contents")
    if n == 0:
        return {"distinct_captions": float("nan"), "distinct_references": float("nan"),
                "distinct_contents": float("nan")}
    return {"distinct_captions": len(set(captions)) / n, "distinct_references": len(set(references)) / n,
            "distinct_contents": len(set(contents)) / n}


def check_run(run_dir: str | Path, split: str = "test", beam: int = 1, store: str | Path | None = None
              ) -> dict[str, Any]:
    """Caption a run's `split` images (greedy when beam=1) and score them against the true boxes.

    `store`: the feature store to use for a run that ships without one (the example bundle's runs).
    """
    from medcap.data import load_records
    from medcap.inference.opened import load_run

    loaded = load_run(run_dir)
    if store is not None:
        loaded.attach_store(store)
    table = load_records(loaded.cfg.dataset).table
    if "boxes" not in table.columns:
        raise ValueError(f"{loaded.cfg.dataset}: not a synthetic dataset (no boxes column)")
    boxes_of = {i: json.loads(b) if isinstance(b, str) else list(b or [])
                for i, b in zip(table["image_id"], table["boxes"], strict=True)}
    store_ids = set(loaded.store.ids)
    ids = [i for i in loaded.split.get(split, []) if i in boxes_of and i in store_ids]
    if not ids:
        raise ValueError(f"{loaded.run_dir}: no {split} images with boxes and features")
    captions = loaded.caption_ids(ids, loaded.decode_options(beam_size=beam))
    result = score_captions(captions, [boxes_of[i] for i in ids])
    rows = table.set_index(table["image_id"].astype(str))
    result.update(distinct_figures([c.text for c in captions], [str(rows.at[i, "caption"]) for i in ids],
                                   [content_key(rows.at[i, "modality"], boxes_of[i]) for i in ids]))
    result.update(run=str(loaded.run_dir), split=split, beam=beam,
                  examples=[{"image_id": i, "caption": c.text} for i, c in zip(ids[:5], captions[:5], strict=True)])
    return result
