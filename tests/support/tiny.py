"""A tiny hand-made CSV dataset with a matching feature store, and the smallest config that trains on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medcap.base.io import write_json, write_text
from medcap.config import RunConfig

WORDS = {0: "small nodule in the right upper zone", 1: "large mass in the left lower zone",
         2: "pleural effusion at the right base"}


def make_tiny(root: Path, n: int = 36, seed: int = 0, prefix: str = "im", pooled_signal: bool = False
              ) -> tuple[str, Path]:
    """A CSV dataset of `n` tiny images (3 caption classes) and a matching complete feature store.

    The store's features encode the class (global one-hot-ish, grid bright in one region), so a tiny
    model learns something; `pooled_signal` also brightens a class's block of 16 grid channels everywhere,
    so the pooled grid (the fact predictors' input) tells the classes apart. Returns (dataset spec, store folder).
    """
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    rows, glob, grid = [], [], []
    for i in range(n):
        cls = i % 3
        name = f"{prefix}{i:03d}"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(img_dir / f"{name}.png")
        rows.append({"image_id": name, "image_path": f"images/{name}.png", "caption": WORDS[cls],
                     "group": f"g{name}", "modality": "CT" if cls else "MR"})
        g = rng.normal(0, 0.1, 8)
        g[cls] += 1.0
        m = rng.normal(0, 0.1, (7, 7, 512))
        m[cls * 2, cls * 2, :] += 1.0
        if pooled_signal:
            m[:, :, cls * 16:(cls + 1) * 16] += 1.0
        glob.append(g)
        grid.append(m)
    write_text(root / "data.csv", pd.DataFrame(rows).to_csv(index=False))
    store = root / "store"
    store.mkdir()
    np.save(store / "global.npy", np.array(glob, dtype=np.float16))
    np.save(store / "grid.npy", np.array(grid, dtype=np.float16))
    write_json(store / "ids.json", [r["image_id"] for r in rows])
    write_json(store / "meta.json", {"complete": True, "global_dim": 8, "backbone": "hand-made"})
    return f"csv:{root / 'data.csv'}", store


def tiny_config(spec: str, store: Path, **overrides: object) -> RunConfig:
    """The smallest model that still trains (embed/units 16)."""
    values = dict(dataset=spec, epochs=3, batch_size=16, embed_dim=16, lstm_units=16, dense_units=16,
                  attn_units=16, dropout=0.1, patience=10, lr_patience=10, min_count=1, seed=3,
                  learning_rate=5e-3, feature_store=str(store))
    values.update(overrides)
    return RunConfig.from_preset("model-80", **values)
