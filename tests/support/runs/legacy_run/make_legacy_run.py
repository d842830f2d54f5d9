"""Write the legacy run folder of tests/test_model_passes.py with the code of commit 5c9cdba.

Run once, from a checkout of that commit (`git archive 5c9cdba medcap | tar -x -C OLD`):

    PYTHONPATH=OLD python tests/support/runs/legacy_run/make_legacy_run.py tests/support/runs/legacy_run

It trains one tiny run (grid attention, 2 BiLSTM layers, decoder_state "last_context", 6 epochs,
synthetic features whose RMS is far from 1, so the run's `feature_scale` matters), keeps its
config/vocab/split/status/best weights and records, in `expected.json`, what the OLD code decoded
for fixed random features: greedy and beam-3 captions and the full model's next-word probabilities
and attention for fixed prefixes. It uses the old API (`medcap.train.loading.load_run`,
`LoadedRun.model_inputs`) on purpose; the tests import only `fixed_features` from it.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medcap.base.io import write_json, write_text
from medcap.config import RunConfig

CAPTIONS = ("small nodule in the right upper zone", "large mass in the left lower zone",
            "pleural effusion at the right base")
OVERRIDES = {"attention": "grid", "layers": 2, "decoder_state": "last_context", "max_words": 8}
FEATURE_SEED, N_IMAGES, GLOBAL_DIM, SD = 2026, 3, 8, 4.0
PREFIXES = [[2, 4, 5, 0], [2, 0, 0, 0], [2, 6, 7, 8]]  # one per image, right-padded


def fixed_features() -> tuple[np.ndarray, np.ndarray]:
    """The raw features the expectations were computed for (also rebuilt by the test): image i looks
    like class i of the training data plus noise."""
    rng = np.random.default_rng(FEATURE_SEED)
    g = rng.standard_normal((N_IMAGES, GLOBAL_DIM)) * 0.3  # (N, D)
    grid = np.abs(rng.standard_normal((N_IMAGES, 7, 7, 512))) * 0.3  # (N, 7, 7, 512)
    for i in range(N_IMAGES):
        g[i, i % 3] += 1.0
        grid[i, (i % 3) * 2, (i % 3) * 2, :] += 1.0
    return (g * SD).astype(np.float32), (grid * SD).astype(np.float32)


def make_dataset(root: Path, n: int = 30) -> tuple[str, Path]:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows, glob, grid = [], [], []
    for i in range(n):
        cls, name = i % 3, f"im{i:03d}"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
        rows.append({"image_id": name, "image_path": f"images/{name}.png", "caption": CAPTIONS[cls],
                     "group": f"g{name}", "modality": "CT"})
        g = rng.normal(0, 0.1, GLOBAL_DIM)
        g[cls] += 1.0
        m = np.abs(rng.normal(0, 0.1, (7, 7, 512)))
        m[cls * 2, cls * 2, :] += 1.0
        glob.append(g * SD)
        grid.append(m * SD)
    write_text(root / "data.csv", pd.DataFrame(rows).to_csv(index=False))
    store = root / "store"
    store.mkdir()
    np.save(store / "global.npy", np.array(glob, dtype=np.float16))
    np.save(store / "grid.npy", np.array(grid, dtype=np.float16))
    write_json(store / "ids.json", [r["image_id"] for r in rows])
    write_json(store / "meta.json", {"complete": True, "global_dim": GLOBAL_DIM, "backbone": "hand-made"})
    return f"csv:{root / 'data.csv'}", store


def rounded(a: np.ndarray) -> list:
    """float32 values to 7 significant digits (JSON size; the test compares to 1e-5)."""
    return np.vectorize(lambda x: float(f"{x:.7g}"), otypes=[float])(np.asarray(a, dtype=np.float64)).tolist()


def caption_json(c: object, with_attention: bool = True) -> dict:
    att = rounded(c.attention.reshape(-1, 49)) if with_attention and c.attention is not None else None
    return {"token_ids": list(map(int, c.token_ids)), "text": c.text, "probs": [float(p) for p in c.probs],
            "score": float(c.score), "attention": att}


def main(out: Path) -> None:
    from medcap.train import train_run

    old_loading = importlib.import_module("medcap.train.loading")  # the old module, gone from today's tree
    load_run = old_loading.load_run

    with tempfile.TemporaryDirectory() as tmp:
        spec, store = make_dataset(Path(tmp) / "data")
        cfg = RunConfig.from_preset(
            "model-80", dataset=spec, epochs=6, batch_size=16, embed_dim=8, lstm_units=8, dense_units=16,
            attn_units=8, dropout=0.1, min_count=1, seed=3, learning_rate=1e-2,
            extra={"feature_store": str(store)}, **OVERRIDES)
        run = train_run(cfg, run_dir=Path(tmp) / "run")
        (out / "weights").mkdir(parents=True, exist_ok=True)
        for rel in ("config.json", "vocab.json", "split.json", "status.json", "weights/best.weights.h5"):
            shutil.copyfile(run / rel, out / rel)
        loaded = load_run(out)
        g, grid = fixed_features()
        mg, mr = loaded.model_inputs(g, grid)
        prefix = np.array(PREFIXES, dtype=np.int32)
        full = loaded.model({"global": mg, "grid": mr, "prefix": prefix}, training=False)
        write_json(out / "expected.json", {
            "feature_scale": loaded.config["feature_scale"],
            "greedy": [caption_json(c) for c in loaded.decode(g, grid, beam=1)],
            "beam3": [caption_json(c, with_attention=False) for c in loaded.decode(g, grid, beam=3)],
            "prefixes": PREFIXES,
            "probs": rounded(full["probs"]),
            "attention": rounded(full["attention"]),
        })


if __name__ == "__main__":
    main(Path(sys.argv[1]))
