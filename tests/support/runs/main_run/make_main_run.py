"""Write the run folder of tests/test_main_run_folder.py with the code of main at commit 72793d2.

Run once, from a checkout of that commit (`git archive 72793d2 medcap | tar -x -C OLD`):

    PYTHONPATH=OLD .venv/bin/python tests/support/runs/main_run/make_main_run.py tests/support/runs/main_run

It trains one tiny run whose own decoding settings use every constraint the decoder had then: the
caption memory (memory_k > 0), no back-to-back repeats, a minimum length and beam 3. It keeps the run's
config/vocab/split/status/best weights (not its data: `make_dataset` rebuilds the same data set and
feature store, byte for byte, wherever a test asks) and records, in `expected.json`, what the OLD code
decoded for fixed query features: greedy and beam-3 captions with the run's settings, with the memory
off, with every constraint off, with a 2-gram ban and a length penalty, the image-reliance decode
(features and caption memory permuted together, as the old evaluation did with `memory.subset(perm)`)
and the caption memory itself; and what the old `evaluate_run` wrote for the run's test split (its own
settings, image-reliance decode included): predictions, `decode_options` and image-reliance metrics. It
uses the old API (`medcap.inference.opened.load_run`, `LoadedRun.decode(beam=..., **overrides)`); the tests
import only the data helpers and constants from it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

try:
    from medcap.base.io import write_json, write_text
except ImportError:  # the code of 72793d2, before medcap/base existed
    from medcap.base.io import write_json, write_text  # type: ignore[no-redef]

CAPTIONS = (("small nodule in the right upper lobe", "small round nodule in the right lung"),
            ("large mass in the left lower lobe", "large mass with effusion in the left lung"),
            ("pleural effusion at the right base", "small pleural effusion at the lung base"))
DECODING = {"beam_size": 3, "block_repeats": True, "min_words": 5, "memory_k": 3, "memory_lambda": 0.4,
            "memory_temperature": 0.1}
OVERRIDES = {"attention": "grid", "layers": 1, "region_positions": False, "decoder_state": "last_context",
             "max_words": 9, **DECODING}
FEATURE_SEED, N_IMAGES, N_QUERY, GLOBAL_DIM = 2027, 36, 4, 8
QUERY_IDS = [f"q{i}" for i in range(N_QUERY)]  # the ids the new code gives the query images
EVAL = {"split": "test", "with_meteor": False, "n_boot": 200, "seed": 0}  # the recorded evaluation
SWAP = [2, 3, 1, 0]  # the image-reliance permutation: query i decodes with query SWAP[i]'s features
# Decodings recorded: name -> (beam, overrides of the run's decoding settings).
VARIANTS: dict[str, tuple[int, dict]] = {
    "greedy": (1, {}),
    "beam3": (3, {}),
    "greedy_no_memory": (1, {"memory_k": 0}),
    "beam3_no_memory": (3, {"memory_k": 0}),
    "greedy_plain": (1, {"memory_k": 0, "min_words": 0, "block_repeats": False}),
    "beam3_plain": (3, {"memory_k": 0, "min_words": 0, "block_repeats": False}),
    "beam3_ngram_penalty": (3, {"no_repeat_ngram": 2, "length_penalty": 0.8}),
    "beam3_ngram_penalty_no_memory": (3, {"memory_k": 0, "no_repeat_ngram": 2, "length_penalty": 0.8}),
    "greedy_min8": (1, {"min_words": 8}),
    "greedy_ngram_no_memory": (1, {"memory_k": 0, "no_repeat_ngram": 2, "block_repeats": False}),
}


def fixed_features() -> tuple[np.ndarray, np.ndarray]:
    """The raw query features the expectations were computed for: query i looks like class i % 3, noisier
    than the training images."""
    rng = np.random.default_rng(FEATURE_SEED)
    g = rng.normal(0, 0.4, (N_QUERY, GLOBAL_DIM))  # (Q, D)
    grid = np.abs(rng.normal(0, 0.4, (N_QUERY, 7, 7, 512)))  # (Q, 7, 7, 512)
    for i in range(N_QUERY):
        g[i, i % 3] += 1.0
        grid[i, (i % 3) * 2, (i % 3) * 2, :] += 1.0
    return g.astype(np.float32), grid.astype(np.float32)


def make_dataset(root: Path) -> tuple[str, Path]:
    """The run's data set (csv + 8x8 images) and feature store under `root`: (dataset spec, store path)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows, glob, grid = [], [], []
    for i in range(N_IMAGES):
        cls, name = i % 3, f"im{i:03d}"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
        rows.append({"image_id": name, "image_path": f"images/{name}.png", "caption": CAPTIONS[cls][(i // 3) % 2],
                     "group": f"g{name}", "modality": "CT"})
        g = rng.normal(0, 0.2, GLOBAL_DIM)
        g[cls] += 1.0
        m = np.abs(rng.normal(0, 0.2, (7, 7, 512)))
        m[cls * 2, cls * 2, :] += 1.0
        glob.append(g)
        grid.append(m)
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


def caption_json(c: object, with_attention: bool = False) -> dict:
    att = rounded(c.attention.reshape(-1, 49)) if with_attention and c.attention is not None else None
    return {"token_ids": list(map(int, c.token_ids)), "text": c.text, "probs": rounded(c.probs),
            "score": float(c.score), "attention": att}


def evaluation_record(run: Path) -> dict:
    """The old `evaluate_run` on a copy of the run: its predictions, decode_options and image reliance."""
    from medcap.eval.evaluate import evaluate_run

    ev_dir = evaluate_run(run, **EVAL)
    metrics = json.loads((ev_dir / "metrics.json").read_text())
    preds = pd.read_csv(ev_dir / "predictions.csv", keep_default_na=False, dtype={"image_id": str})
    return {"predictions": dict(zip(preds["image_id"], preds["prediction"], strict=True)),
            "decode_options": metrics["decode_options"], "image_reliance": metrics["image_reliance"]}


def main(out: Path) -> None:
    from medcap.config import RunConfig
    from medcap.inference.opened import load_run  # the old module (medcap/inference.py at 72793d2)
    from medcap.train import train_run

    with tempfile.TemporaryDirectory() as tmp:
        spec, store = make_dataset(Path(tmp) / "data")
        cfg = RunConfig.from_preset(
            "model-80", dataset=spec, epochs=6, batch_size=8, embed_dim=16, lstm_units=16, dense_units=32,
            attn_units=8, dropout=0.0, min_count=1, seed=5, learning_rate=3e-3, feature_store=str(store),
            **OVERRIDES)
        run = train_run(cfg, run_dir=Path(tmp) / "run")
        (out / "weights").mkdir(parents=True, exist_ok=True)
        for rel in ("config.json", "vocab.json", "split.json", "status.json", "weights/best.weights.h5"):
            shutil.copyfile(run / rel, out / rel)
        loaded = load_run(out)
        g, grid = fixed_features()
        expected: dict = {"query_ids": QUERY_IDS, "swap": SWAP, "decoding": DECODING}
        for name, (beam, overrides) in VARIANTS.items():
            caps = loaded.decode(g, grid, beam=beam, **overrides)
            expected[name] = [caption_json(c, with_attention=name == "greedy") for c in caps]
        options = loaded.decode_options(g)
        train = loaded.training_set()
        expected["memory"] = {"neighbour_ids": [[train.ids[j] for j in row] for row in options.memory.neighbours],
                              "weights": rounded(options.memory.weights)}
        swapped = replace(options, memory=options.memory.subset(SWAP))  # what the old evaluation did
        for name, beam in (("swapped_greedy", 1), ("swapped_beam3", 3)):
            caps = loaded.decode(g[SWAP], grid[SWAP], beam=beam, options=swapped)
            expected[name] = [caption_json(c) for c in caps]
        shutil.copytree(out, Path(tmp) / "evaluated", ignore=shutil.ignore_patterns("*.py", "*.json.tmp*"))
        expected["evaluation"] = evaluation_record(Path(tmp) / "evaluated")
        write_text(out / "expected.json", json.dumps(expected, separators=(",", ":")) + "\n")  # compact: small


if __name__ == "__main__":
    main(Path(sys.argv[1]))
