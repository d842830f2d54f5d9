"""Run-folder fixtures written by hand, following the documented layout (medcap.runs.index, ARCHITECTURE.md).

Used by the dashboard tests, the browser test and benchmarks/dashboard.py. No tests here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medcap.base.io import save_npz, write_json, write_text

WORDS = ["axial", "ct", "shows", "a", "small", "lesion", "in", "the", "left", "right", "liver", "lung", "mass"]
FINISHED_BLEU1 = 0.312
FINISHED_CI = (0.281, 0.344)
FAILED_ERROR = "ValueError: loss became NaN at epoch 2 (synthetic failure for tests)"


def write_image(path: Path, seed: int, size: int = 64) -> Path:
    """A small grey PNG with a bright square at a seeded place."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size)) * 60).astype(np.uint8)  # (H, W)
    x, y = rng.integers(4, size - 20, size=2)
    arr[y : y + 14, x : x + 14] = 230
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="L").save(path)
    return path


def _config(preset: str, dataset: str, epochs: int) -> dict:
    protocol = preset if preset in ("model-80", "model-70") else "model-80"
    return {
        "run": {"name": "", "preset": preset, "dataset": dataset, "protocol": protocol, "seed": 42, "epochs": epochs},
        "dataset_fingerprint": "test",
        "feature_store": "test",
        "vocab_size": len(WORDS) + 4,
        "versions": {"medcap": "0.1.0"},
        "git_commit": "test",
        "created": "2025-01-01T00:00:00+00:00",
    }


def _history(epochs: int) -> str:
    rows = ["epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"]
    for e in range(1, epochs + 1):
        rows.append(f"{e},{4.0 / e:.4f},{0.1 * e:.4f},{4.2 / e:.4f},{0.09 * e:.4f},0.001,1.5")
    return "\n".join(rows) + "\n"


def _metric(value: float, ci: tuple[float, float]) -> dict:
    return {"value": value, "ci95": list(ci)}


def make_run(
    runs_root: Path,
    run_id: str,
    preset: str = "model-80",
    state: str = "finished",
    epochs: int = 3,
    n_preds: int = 6,
    bleu1: float = FINISHED_BLEU1,
    ci: tuple[float, float] = FINISHED_CI,
    images_dir: Path | None = None,
    dataset: str = "synthetic:40",
    evaluate: bool = True,
    pid: int | None = None,
    error: str = "",
) -> Path:
    """A run folder; `evaluate` adds eval/test/{metrics.json, predictions.csv, attention.npz}."""
    run = runs_root / run_id
    run.mkdir(parents=True)
    write_json(run / "config.json", _config(preset, dataset, epochs))
    done = epochs if state == "finished" else max(1, epochs // 2)
    status = {
        "state": state,
        "epoch": done,
        "epochs": epochs,
        "progress": done / epochs,
        "message": f"epoch {done}/{epochs}",
        "error": error,
        "pid": pid,
        "updated": "2025-01-01T00:00:00+00:00",
    }
    write_json(run / "status.json", status)
    write_text(run / "history.csv", _history(done))
    write_json(run / "vocab.json", {"words": ["<pad>", "<unk>", "<start>", "<end>", *WORDS]})
    ids = [f"img{i:05d}" for i in range(n_preds)]
    write_json(run / "split.json", {"train": [], "val": [], "test": ids})
    if state == "finished":  # a placeholder where a real run keeps its best weights (never loaded here)
        write_text(run / "weights" / "best.weights.h5", "placeholder\n")
    if not evaluate:
        return run
    images_dir = images_dir or (run / "_images")
    nn = min(n_preds, 50)  # distinct image files (reused beyond that, like real repeated cases)
    image_paths = [images_dir / f"img{i % nn:05d}.png" for i in range(n_preds)]
    for p in image_paths[:nn]:
        if not p.exists():
            write_image(p, seed=int(p.stem[3:]))
    rng = np.random.default_rng(len(run_id))
    per_image = np.clip(rng.normal(bleu1, 0.15, size=n_preds), 0, 1).round(4)
    per_image[0] = 0.0  # the worst image is img00000
    preds = pd.DataFrame(
        {
            "image_id": ids,
            "image_path": [str(p) for p in image_paths],
            "references": [json.dumps([["axial", "ct", "shows", "a", "lesion", "in", "the", "liver"]])] * n_preds,
            "prediction": ["axial ct shows a small mass in the left lung"] * n_preds,
            "bleu1": per_image,
            "bleu2": (per_image * 0.6).round(4),
            "bleu3": (per_image * 0.4).round(4),
            "bleu4": (per_image * 0.3).round(4),
            "rouge_l": (per_image * 0.9).round(4),
            "ref_len": [8 + (i % 5) for i in range(n_preds)],
            "pred_len": [10] * n_preds,
            "nn_caption": ["axial ct of the liver"] * n_preds,
            "nn_bleu1": (per_image * 0.8).round(4),
            "modality": ["CT" if i % 2 == 0 else "MR" for i in range(n_preds)],
        }
    )
    eval_dir = run / "eval" / "test"
    eval_dir.mkdir(parents=True)
    write_text(eval_dir / "predictions.csv", preds.to_csv(index=False))
    atts = {}
    for i, image_id in enumerate(ids[: min(n_preds, 200)]):
        att = np.full((10, 7, 7), 0.2 / 48, dtype=np.float16)  # (n_words, 7, 7)
        att[:, i % 7, (i * 3) % 7] = 0.8
        atts[image_id] = att
    save_npz(eval_dir / "attention.npz", **atts)
    metrics = {
        "name": "test",
        "run_id": run_id,
        "dataset": dataset,
        "split": "test",
        "decode": "greedy",
        "n_images": n_preds,
        "model": {
            "bleu1": _metric(bleu1, ci),
            "bleu2": _metric(round(bleu1 * 0.66, 3), (round(ci[0] * 0.66, 3), round(ci[1] * 0.66, 3))),
            "bleu3": _metric(0.11, (0.09, 0.13)),
            "bleu4": _metric(0.07, (0.05, 0.09)),
            "rouge_l": _metric(0.33, (0.3, 0.36)),
            "cider": _metric(0.41, (0.35, 0.47)),
        },
        "baselines": {
            "most_frequent": {"bleu1": _metric(0.15, (0.13, 0.17)), "bleu2": _metric(0.08, (0.07, 0.09))},
            "nearest_neighbour": {"bleu1": _metric(0.22, (0.2, 0.24)), "bleu2": _metric(0.12, (0.1, 0.14))},
        },
        "next_word": {
            "accuracy": 0.4567,
            "precision_macro": 0.61,
            "recall_macro": 0.28,
            "f1_macro": 0.38,
            "precision_weighted": 0.5,
            "recall_weighted": 0.45,
            "f1_weighted": 0.46,
            "n_pairs": 60,
        },
        "definitions": {},
        "provenance": {},
        "skipped": {"meteor": "Java not available"},
    }
    write_json(eval_dir / "metrics.json", metrics)
    return run


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


FINISHED_ID = "20250101-100000-model-80-aaaaaa"
FAILED_ID = "20250101-110000-model-70-bbbbbb"
FINISHED70_ID = "20250101-103000-model-70-cccccc"
KILLED_ID = "20250101-120000-model-80-dddddd"
HALF_ID = "20250101-130000-model-80-eeeeee"


def small_state(artifacts: Path) -> None:
    """One small finished, evaluated Model-80 run and one failed Model-70 run."""
    runs = artifacts / "runs"
    images = artifacts / "fixture-images"
    make_run(runs, FINISHED_ID, "model-80", images_dir=images)
    make_run(runs, FAILED_ID, "model-70", state="failed", evaluate=False, error=FAILED_ERROR)


def full_state(artifacts: Path, n_preds: int = 6) -> None:
    """Finished Model-80 and Model-70 runs, a failed, a killed and a half-written run."""
    runs = artifacts / "runs"
    images = artifacts / "fixture-images"
    make_run(runs, FINISHED_ID, "model-80", images_dir=images, n_preds=n_preds)
    make_run(runs, FINISHED70_ID, "model-70", images_dir=images, n_preds=n_preds, bleu1=0.29, ci=(0.26, 0.32))
    make_run(runs, FAILED_ID, "model-70", state="failed", evaluate=False, error=FAILED_ERROR)
    make_run(runs, KILLED_ID, "model-80", state="running", evaluate=False, pid=dead_pid())
    (runs / HALF_ID).mkdir(parents=True)
    write_json(runs / HALF_ID / "config.json", _config("model-80", "synthetic:40", 3))


SIMILAR_N = 12  # images of the similar-cases dataset: img00000..05 are the run's test images, 06..11 train
SIMILAR_STEP = 0.2  # image i has global features at angle i * SIMILAR_STEP (radians): known cosine neighbours


def similar_caption(i: int) -> str:
    return f"axial ct shows lesion number {i} in the {'liver' if i % 2 else 'lung'}"


def with_similar_cases(artifacts: Path, run_id: str = FINISHED_ID, store_dim: int = 8) -> Path:
    """Give a fixture run what similar cases need: a csv dataset of its images, a feature store, a split.

    Image `img000ii` has global features (cos(i * step), sin(i * step), 0, ...), so the training images
    closest to a test image are known: for img00005 they are img00006 (cosine cos(0.2)), img00007, ...
    """
    run = artifacts / "runs" / run_id
    data = artifacts / "similar-data"
    ids = [f"img{i:05d}" for i in range(SIMILAR_N)]
    for i, image_id in enumerate(ids):
        write_image(data / f"{image_id}.png", seed=i)
    rows = [{"image_id": image_id, "image_path": f"{image_id}.png", "caption": similar_caption(i),
             "group": f"case{i // 2}", "modality": "CT" if i % 2 == 0 else "MR"} for i, image_id in enumerate(ids)]
    write_text(data / "captions.csv", pd.DataFrame(rows).to_csv(index=False))
    store = artifacts / "features" / "similar-store"
    store.mkdir(parents=True, exist_ok=True)
    feats = np.zeros((SIMILAR_N, store_dim), dtype=np.float16)  # (N, D)
    angles = np.arange(SIMILAR_N) * SIMILAR_STEP
    feats[:, 0], feats[:, 1] = np.cos(angles), np.sin(angles)
    np.save(store / "global.npy", feats)
    write_json(store / "ids.json", ids)
    write_json(store / "meta.json", {"complete": True, "global_dim": store_dim, "format": 1})
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config["run"]["dataset"] = f"csv:{data / 'captions.csv'}"
    config["feature_store"] = {"path": str(store), "global_dim": store_dim}
    write_json(run / "config.json", config)
    write_json(run / "split.json", {"train": ids[6:], "val": [], "test": ids[:6]})
    return data
