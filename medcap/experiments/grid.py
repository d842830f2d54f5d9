"""Grid search (paper section 4.4): one run per (learning rate, layers), each decoded with every beam."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.base import paths
from medcap.base.io import write_json, write_text
from medcap.config import RunConfig
from medcap.runs.index import new_unique_dir, read_history

log = logging.getLogger(__name__)

GRID_COLUMNS = ("lr", "layers", "seed", "beam", "run_id", "state", "epochs_run", "best_epoch", "val_loss",
                "val_accuracy", "bleu1", "bleu2", "bleu3", "bleu4", "n_val_images", "error")


def new_grid_dir(label: str, root: Path | None = None) -> Path:
    """A fresh, uniquely named folder under artifacts/grids/."""
    return new_unique_dir(root or paths.artifacts_dir() / "grids", label)


def bleu_on_split(loaded: Any, split: str, beam: int) -> tuple[dict[str, float], int]:
    """Corpus BLEU-1..4 of a loaded run's captions on one split of its own data (refs from the feature table)."""
    from medcap.data import load_captioned
    from medcap.eval.metrics import corpus_bleu_scores

    cfg = loaded.cfg
    _, table, _ = load_captioned(cfg.dataset, max_words=cfg.max_words, long_captions=cfg.long_captions)
    by_id = dict(zip(table["image_id"], table["tokens"], strict=True))
    store_ids = set(loaded.store.ids)
    ids = [i for i in loaded.split.get(split, []) if i in by_id and i in store_ids]
    if not ids:
        return {f"bleu{n}": math.nan for n in range(1, 5)}, 0
    caps = loaded.caption_ids(ids, loaded.decode_options(beam_size=beam))
    refs = [[list(by_id[i])] for i in ids]
    hyps = [list(c.words) for c in caps]
    return corpus_bleu_scores(refs, hyps), len(ids)


def run_grid(base: RunConfig, lrs: list[float], layers: list[int], beams: list[int],
             grid_dir: Path | None = None, seeds: list[int] | None = None) -> Path:
    """Train each (lr, layers, seed) combination, decode its validation split with each beam; write the table.

    `seeds` (default: the base config's seed) vary only the weight initialisation and batch order: the
    split stays fixed (its seed is `split_seed`, else the base seed), so seed noise can be measured.

    Writes `results.csv` and `results.json` (and `grid.json`, the search itself) into the grid folder,
    updated after each combination so a long search shows partial results. One failed combination is
    recorded with its error and the search goes on.
    """
    from medcap.inference.opened import load_run
    from medcap.train.runner import RunCancelled, train_run

    grid_dir = grid_dir or new_grid_dir(base.name or f"grid-{base.preset}")
    seeds = list(seeds) if seeds else [base.seed]
    split_seed = base.effective_split_seed
    write_json(grid_dir / "grid.json", {"base": base.to_dict(), "lr": lrs, "layers": layers, "beam": beams,
                                        "seeds": seeds, "split_seed": split_seed})
    rows: list[dict[str, Any]] = []
    for lr, n_layers, seed in itertools.product(lrs, layers, seeds):
        label = f"{base.name + '-' if base.name else ''}grid-lr{lr:g}-l{n_layers}" + (
            f"-s{seed}" if len(seeds) > 1 else "")
        common: dict[str, Any] = {"lr": lr, "layers": n_layers, "seed": seed, "run_id": "", "state": "failed"}
        try:
            cfg = dataclasses.replace(base, learning_rate=float(lr), layers=int(n_layers), name=label, seed=int(seed),
                                      split_seed=split_seed)
            run_dir = train_run(cfg)
            common["run_id"] = run_dir.name
            hist = read_history(run_dir)
            best = hist.loc[hist["val_loss"].idxmin()] if hist["val_loss"].notna().any() else hist.iloc[-1]
            common.update(state="finished", epochs_run=len(hist), best_epoch=int(best["epoch"]),
                          val_loss=float(best["val_loss"]), val_accuracy=float(best["val_accuracy"]))
            loaded = load_run(run_dir)
            for beam in beams:
                scores, n = bleu_on_split(loaded, "val", beam)
                rows.append({**common, "beam": beam, "n_val_images": n, "error": "", **scores})
        except RunCancelled:
            raise
        except Exception as exc:  # one failed combination never stops the search
            log.exception("grid combination lr=%g layers=%d seed=%d failed", lr, n_layers, seed)
            rows.extend({**common, "beam": b, "error": f"{type(exc).__name__}: {exc}"} for b in beams)
        _write_table(grid_dir, rows)
    return grid_dir


def _write_table(grid_dir: Path, rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(rows).reindex(columns=list(GRID_COLUMNS))
    write_text(grid_dir / "results.csv", frame.to_csv(index=False))
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in frame.to_dict(orient="records")]
    write_json(grid_dir / "results.json", records)
