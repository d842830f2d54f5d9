"""Does fine-tuning VGG16's last conv block on the facts make the features know more? (issue 21, item 4d)

Run (MEDCAP_ARTIFACTS and MEDCAP_CACHE as for `medcap features`):
  `.venv/bin/python benchmarks/finetune_block5.py cache`  block4_pool outputs (N, 14, 14, 512) float16 of
      every image of the feature store, once, beside the store (`<store>-block4/`); checks that the
      converted block5 on the cache reproduces the store's grid.
  `.venv/bin/python benchmarks/finetune_block5.py time [--images 1500]`  seconds per training epoch
      (block5 convs + heads, forward and backward), measured on 4 batches and scaled.
  `.venv/bin/python benchmarks/finetune_block5.py train [--epochs 4] [--folds 5] [--lr 1e-4]`  per fold of
      the study: block5_conv1..3 (ImageNet init) + mean+max pooling + one softmax head per fact, trained
      on the fold's training images (masked loss: unlabelled facts add nothing), the epoch chosen by the
      fold's validation accuracy (mean over facts). Scored on the test images twice: the heads
      themselves, and the linear probe (`medcap.eval.probe`, C = 0.1) on the fine-tuned mean+max features,
      beside the same probe on the ImageNet features (the floor).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import probe as bench  # noqa: E402

from medcap.base.io import atomic_path, write_json  # noqa: E402
from medcap.eval.probe import pool_grid, probe_fact  # noqa: E402
from medcap.features.store import FeatureStore, open_store  # noqa: E402

log = logging.getLogger("benchmarks.finetune_block5")
FACTS = bench.FACTS
BLOCK5 = ("block5_conv1", "block5_conv2", "block5_conv3")


def default_store(dataset: str) -> Path:
    root = Path(dataset.split(":", 1)[1])
    features = Path(os.environ.get("MEDCAP_ARTIFACTS", "artifacts")) / "features"
    found = bench.find_store(features, f"{root.name}-vgg16-", augmented=False)
    if found is None:
        raise SystemExit(f"no feature store under {features}: run `python -m medcap features` first")
    return found


def cache_dir(store: FeatureStore) -> Path:
    return store.path.parent / f"{store.path.name}-block4"


def vgg():  # -> keras.Model
    from medcap.features.vgg_weights import build_notop_vgg16

    return build_notop_vgg16(224)


def build_cache(store: FeatureStore, dataset: str, batch: int = 32) -> Path:
    """block4_pool of every store image (row order of the store) as float16 `block4.npy`."""
    import keras
    import tensorflow as tf

    from medcap.data.loaders import load_records
    from medcap.features.backbones import caffe_preprocess
    from medcap.features.imageload import load_array

    out = cache_dir(store)
    if (out / "block4.npy").is_file():
        print(f"cache exists: {out}")
        return out
    table = load_records(dataset).table
    path_of = dict(zip(table["image_id"].astype(str), table["image_path"], strict=True))
    full = vgg()
    to4 = keras.Model(full.input, full.get_layer("block4_pool").output)
    fn = tf.function(lambda x: to4(caffe_preprocess(x), training=False))
    n = len(store)
    t0 = time.perf_counter()
    with atomic_path(out / "block4.npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, 14, 14, 512))
        for start in range(0, n, batch):
            ids = store.ids[start:start + batch]
            imgs = np.stack([load_array(path_of[i], 224) for i in ids])  # (B, 224, 224, 3)
            arr[start:start + len(ids)] = fn(tf.constant(imgs)).numpy().astype(np.float16)  # (B, 14, 14, 512)
            if start // batch % 10 == 0:
                print(f"  {start + len(ids)}/{n} images, {time.perf_counter() - t0:.0f}s", flush=True)
        arr.flush()
        del arr
    write_json(out / "ids.json", store.ids)
    print(f"cached block4_pool of {n} images in {time.perf_counter() - t0:.0f}s: {out}")
    check_cache(store, out)
    return out


def block5_model(full, n_classes: dict[str, int], dropout: float = 0.3):  # -> keras.Model
    """(B, 14, 14, 512) block4_pool -> {"feat": (B, 1024) mean+max of block5_pool, fact: (B, n) logits}."""
    import keras

    x_in = keras.Input((14, 14, 512))
    x = x_in
    for name in BLOCK5:
        src = full.get_layer(name)
        layer = keras.layers.Conv2D(512, 3, padding="same", activation="relu", name=name)
        x = layer(x)  # (B, 14, 14, 512)
        layer.set_weights(src.get_weights())
    x = keras.layers.MaxPooling2D(2, name="block5_pool")(x)  # (B, 7, 7, 512)
    feat = keras.layers.Concatenate(name="feat")([keras.layers.GlobalAveragePooling2D()(x),
                                                  keras.layers.GlobalMaxPooling2D()(x)])  # (B, 1024)
    h = keras.layers.Dropout(dropout)(keras.layers.LayerNormalization()(feat))  # (B, 1024)
    outs = {"feat": feat, "grid": x}
    for fact, k in n_classes.items():
        outs[fact] = keras.layers.Dense(k, name=f"head_{fact}")(h)  # (B, k)
    return keras.Model(x_in, outs)


def check_cache(store: FeatureStore, folder: Path, n: int = 16) -> float:
    """Max relative difference between block5 on the cache and the store's grid for the first n images."""
    model = block5_model(vgg(), {})
    block4 = np.load(folder / "block4.npy", mmap_mode="r")
    grid = model(np.asarray(block4[:n], np.float32), training=False)["grid"].numpy()  # (n, 7, 7, 512)
    ref = np.asarray(store.grid()[:n], np.float32)
    rel = float(np.abs(grid - ref).max() / (np.abs(ref).max() + 1e-6))
    print(f"check: block5(cached block4) vs store grid, max abs diff / max = {rel:.4f}")
    return rel


class Trainer:
    """Masked multi-fact training of block5 + heads with one Adam, deterministic per seed."""

    def __init__(self, n_classes: dict[str, int], lr: float, seed: int) -> None:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        self.tf = tf
        self.model = block5_model(vgg(), n_classes)
        self.facts = list(n_classes)
        self.opt = keras.optimizers.Adam(lr)
        self.step = tf.function(self._step)

    def _step(self, x, ys):
        tf = self.tf
        with tf.GradientTape() as tape:
            out = self.model(x, training=True)
            loss = 0.0
            for fact in self.facts:
                y = ys[fact]  # (B,) int, -1 = no label
                mask = tf.cast(y >= 0, tf.float32)
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(y, 0), out[fact])  # (B,)
                loss += tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.opt.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return loss

    def epoch(self, block4: np.ndarray, rows: np.ndarray, y: dict[str, np.ndarray], batch: int,
              rng: np.random.Generator, limit: int | None = None) -> float:
        order = rng.permutation(len(rows))
        losses = []
        for b, start in enumerate(range(0, len(order), batch)):
            if limit is not None and b >= limit:
                break
            idx = order[start:start + batch]
            x = np.asarray(block4[np.sort(rows[idx])], np.float32)  # (B, 14, 14, 512)
            srt = np.argsort(rows[idx])
            ys = {f: self.tf.constant(y[f][idx][srt]) for f in self.facts}
            losses.append(float(self.step(self.tf.constant(x), ys)))
        return float(np.mean(losses))

    def predict(self, block4: np.ndarray, rows: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
        parts: dict[str, list] = {}
        for start in range(0, len(rows), batch):
            r = rows[start:start + batch]
            out = self.model(np.asarray(block4[r], np.float32), training=False)
            for k in ["feat", *self.facts]:
                parts.setdefault(k, []).append(out[k].numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}


def encode(labels: list, classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index.get(lab, -1) if lab is not None else -1 for lab in labels], np.int32)


def head_accuracy(logits: np.ndarray, labels: list, classes: list[str]) -> float:
    lab = [(i, x) for i, x in enumerate(labels) if x is not None]
    pred = [classes[j] for j in logits.argmax(axis=1)]
    return float(np.mean([pred[i] == x for i, x in lab])) if lab else float("nan")


def time_epoch(store: FeatureStore, images: int, batch: int) -> float:
    tr = Trainer({"modality": 2, "plane": 3, "region": 5, "modality_detail": 28}, 1e-4, 0)
    folder = cache_dir(store)
    block4 = (np.load(folder / "block4.npy", mmap_mode="r") if (folder / "block4.npy").is_file()
              else np.random.default_rng(0).normal(size=(batch * 5, 14, 14, 512)).astype(np.float16))
    rows = np.arange(min(len(block4), batch * 5))
    y = {f: np.zeros(len(rows), np.int32) for f in tr.facts}
    rng = np.random.default_rng(0)
    tr.epoch(block4, rows, y, batch, rng, limit=1)  # trace + warm up
    t0 = time.perf_counter()
    tr.epoch(block4, rows, y, batch, rng, limit=4)
    per_batch = (time.perf_counter() - t0) / 4
    est = per_batch * np.ceil(images / batch)
    print(f"block5 + heads training: {per_batch:.2f}s per batch of {batch} -> {est:.0f}s per epoch of {images} images")
    return float(est)


def train(store: FeatureStore, args: argparse.Namespace) -> dict:
    folder = cache_dir(store)
    block4 = np.load(folder / "block4.npy", mmap_mode="r")  # (N, 14, 14, 512) float16
    facts = bench.medpix_facts(args.dataset)
    folds = bench.study_folds(args.dataset, args.folds, args.seed)
    results = []
    in_store = set(store.ids)
    for i, fold in enumerate(folds[: args.max_folds or None]):
        t0 = time.perf_counter()
        parts = {}
        for part in ("train", "val", "test"):
            kept = [x for x in fold[part] if x in in_store and x in facts]
            parts[part] = (np.asarray([store.index_of(x) for x in kept]),
                           {f: [facts[x][f] for x in kept] for f in FACTS})
        classes = {f: sorted({x for x in parts["train"][1][f] if x is not None}) for f in FACTS}
        y = {f: encode(parts["train"][1][f], classes[f]) for f in FACTS}
        tr = Trainer({f: len(classes[f]) for f in FACTS}, args.lr, args.train_seed)
        rng = np.random.default_rng(args.train_seed)
        best, history = None, []
        for ep in range(args.epochs):
            te0 = time.perf_counter()
            loss = tr.epoch(block4, parts["train"][0], y, args.batch, rng)
            val = tr.predict(block4, parts["val"][0])
            val_acc = {f: head_accuracy(val[f], parts["val"][1][f], classes[f]) for f in FACTS}
            score = float(np.mean([val_acc[f] for f in ("modality", "plane", "region")]))
            history.append({"epoch": ep + 1, "loss": loss, "val": val_acc, "seconds": time.perf_counter() - te0})
            print(f"fold {i + 1} epoch {ep + 1}: loss {loss:.3f}, val " + ", ".join(
                f"{f} {a:.3f}" for f, a in val_acc.items()) + f" ({history[-1]['seconds']:.0f}s)", flush=True)
            if best is None or score > best[0]:
                best = (score, ep + 1, tr.predict(block4, parts["train"][0]), tr.predict(block4, parts["test"][0]))
        _, best_ep, ftr, fte = best
        base_tr = pool_grid(np.asarray(store.grid()[np.sort(parts["train"][0])], np.float32), "mean+max")
        base_te = pool_grid(np.asarray(store.grid()[np.sort(parts["test"][0])], np.float32), "mean+max")
        inv_tr, inv_te = np.argsort(np.argsort(parts["train"][0])), np.argsort(np.argsort(parts["test"][0]))
        row = {"fold": i, "best_epoch": best_ep, "history": history, "facts": {}}
        for f in FACTS:
            ytr, yte = parts["train"][1][f], parts["test"][1][f]
            row["facts"][f] = {
                "imagenet_probe": probe_fact(base_tr[inv_tr], ytr, base_te[inv_te], yte, c=0.1)["accuracy"],
                "finetuned_heads": head_accuracy(fte[f], yte, classes[f]),
                "finetuned_probe": probe_fact(ftr["feat"], ytr, fte["feat"], yte, c=0.1)["accuracy"],
            }
        row["seconds"] = time.perf_counter() - t0
        results.append(row)
        print(f"fold {i + 1}: best epoch {best_ep}, {row['seconds']:.0f}s; " + "; ".join(
            f"{f} " + " / ".join(f"{v:.3f}" for v in r.values()) for f, r in row["facts"].items())
            + "  (imagenet probe / fine-tuned heads / probe on fine-tuned features)", flush=True)
    print("\nmean over folds [min..max]:")
    for f in FACTS:
        cells = []
        for k in ("imagenet_probe", "finetuned_heads", "finetuned_probe"):
            v = [r["facts"][f][k] for r in results]
            cells.append(f"{k} {np.mean(v):.3f} [{np.min(v):.3f}..{np.max(v):.3f}]")
        print(f"  {f:<16}" + "  ".join(cells))
    out = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "folds": results}
    if args.json:
        write_json(args.json, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("cache", "time", "train"))
    p.add_argument("--dataset", default=f"medpix:{PROJECT_ROOT.parent / 'shared' / 'data' / 'medpix-dev'}")
    p.add_argument("--store", type=Path)
    p.add_argument("--images", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--max-folds", type=int, default=0, help="train only the first N folds (0: all)")
    p.add_argument("--seed", type=int, default=0, help="split seed of the folds")
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    store = open_store(args.store or default_store(args.dataset))
    if args.action == "cache":
        build_cache(store, args.dataset, args.batch)
    elif args.action == "time":
        time_epoch(store, args.images, args.batch)
    else:
        train(store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
