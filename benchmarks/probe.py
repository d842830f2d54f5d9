"""How much do the image features know of each clinical fact? Probes on the study's case-disjoint folds.

Run: `MEDCAP_ARTIFACTS=/work/art-probe .venv/bin/python benchmarks/probe.py [--store DIR] [--folds 5]
[--configs global,mean,mean+max,mlp,...] [--json FILE]`
For each of the k folds of the study (`medcap.data.splits.kfold_splits` over the images with a usable
caption, long ones truncated, split seed 0: the folds `medcap study` trains on), fits a probe per fact
on the fold's training images (`--fit-on train`, as the captioner's fact heads; or `train+val`) and scores
it on the fold's test images. Facts from the MedPix loader's fields, read as the fact heads read them
(`medcap.data.facts.label_facts`): modality = `Type` (ct/mr), plane (Axial/Transverse -> axial, coronal,
sagittal; any other plane = no label), region = `Location Category`; modality_detail = `Description.Modality`.
Prints accuracy on the labelled test images per fact x config (mean over folds, min..max), the share of
all test images answered correctly (unlabelled = not correct: the issue's "of all test images"), the
majority-class baseline, and seconds per fold. Configs `<kind>[:mlp][:c=<C>]`: the pooled features
(global | mean | max | mean+max, default mean+max), a linear probe (L2 strength 1/C, default C = 1) or
`mlp` (one hidden layer); e.g. `mean:c=0.01`, `mlp`, `c=0.1`;
`aug-train` / `aug-tta` / `aug-both` (mean+max, C = 0.01; needs a store extracted with `--augment K`):
augmented views as extra training rows / test-time average of the class probabilities over the
original and its K views / both.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from medcap.base.io import write_json  # noqa: E402
from medcap.data.facts import label_facts  # noqa: E402
from medcap.data.loaders import load_records  # noqa: E402
from medcap.data.splits import kfold_splits  # noqa: E402
from medcap.data.text import prepare_captions  # noqa: E402
from medcap.eval.probe import POOL_KINDS, make_head, pool_grid, pooled_features, probe_fact  # noqa: E402
from medcap.features.store import FeatureStore, is_complete, open_store  # noqa: E402

log = logging.getLogger("benchmarks.probe")

FACTS = ("modality", "plane", "region", "modality_detail")
TARGETS = {"modality": 0.95, "plane": 0.85, "region": 0.75}  # of all test images (issue 21)
DEFAULT_CONFIGS = "global:c=0.01,mean:c=0.01,max:c=0.01,mean+max:c=0.01,mean+max,mlp"


def medpix_facts(spec: str) -> dict[str, dict[str, str | None]]:
    """image id -> {fact: label or None}: the loader's MedPix fields read as the fact heads read them
    (`medcap.data.facts.label_facts`), plus the detailed modality as it is written."""
    table = load_records(spec).table
    return {str(row["image_id"]): {**label_facts(row),
                                   "modality_detail": str(row.get("modality_detail") or "").strip() or None}
            for row in table.to_dict("records")}


def study_folds(spec: str, k: int, seed: int) -> list[dict[str, list[str]]]:
    """The study's case-disjoint folds (as `medcap.data.captioned.split_for_run` cuts them for protocol kfold)."""
    result = load_records(spec)
    pool, _ = prepare_captions(result.table, max_words=20, long_captions="truncate")
    return kfold_splits(pool.reset_index(drop=True), k=k, seed=seed)


def find_store(features: Path, prefix: str, augmented: bool) -> Path | None:
    """The newest complete store folder `<prefix>*` with (or without) augmented views."""
    found = []
    for folder in sorted(features.glob(f"{prefix}*")):
        if is_complete(folder) and "shard" not in folder.name:
            k = int((json.loads((folder / "meta.json").read_text()).get("augment") or {}).get("k", 0))
            if (k > 0) == augmented:
                found.append(folder)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def aug_pooled(store: FeatureStore, rows: np.ndarray, kind: str) -> np.ndarray:
    """(N, K, F) pooled features of the K augmented views of each row."""
    grid = store.aug_grid()  # (M, K, 7, 7, C)
    views = np.asarray(grid[np.sort(rows)], dtype=np.float32)[np.argsort(np.argsort(rows))]  # (N, K, 7, 7, C)
    n, k = views.shape[:2]
    return pool_grid(views.reshape(n * k, *views.shape[2:]), kind).reshape(n, k, -1)  # (N, K, F)


def run_aug(store: FeatureStore, tr_rows: np.ndarray, te_rows: np.ndarray, ytr: list, yte: list,
            mode: str, base: dict[str, np.ndarray]) -> dict:
    """Linear probe with augmented views: extra training rows ("train"), probability averaging ("tta"), both."""
    kind = "mean+max"
    Xtr, Xte = base["train"], base["test"]
    atr = aug_pooled(store, tr_rows, kind) if mode in ("train", "both") else None
    ate = aug_pooled(store, te_rows, kind) if mode in ("tta", "both") else None
    tr = [i for i, y in enumerate(ytr) if y is not None]
    te = [i for i, y in enumerate(yte) if y is not None]
    X, y = Xtr[tr], [ytr[i] for i in tr]
    if atr is not None:
        K = atr.shape[1]
        X = np.concatenate([X, atr[tr].reshape(len(tr) * K, -1)])
        y = y + [lab for lab in y for _ in range(K)]
    model = make_head("linear", c=0.01)
    model.fit(X, y)
    proba = model.predict_proba(Xte[te])  # (n, classes)
    if ate is not None:
        K = ate.shape[1]
        views = model.predict_proba(ate[te].reshape(len(te) * K, -1)).reshape(len(te), K, -1)  # (n, K, classes)
        proba = (proba + views.sum(axis=1)) / (K + 1)
    pred = model.classes_[proba.argmax(axis=1)]
    acc = float(np.mean([p == yte[i] for p, i in zip(pred, te, strict=True)]))
    return {"accuracy": acc, "n_test": len(te)}


def parse_config(name: str) -> tuple[str, str, float]:
    """"<kind>[:mlp][:c=<C>]" -> (feature kind, head, C); a bare "mlp" or "c=<C>" means mean+max."""
    kind, head, c = "mean+max", "linear", 1.0
    for part in name.split(":"):
        if part == "mlp":
            head = "mlp"
        elif part.startswith("c="):
            c = float(part[2:])
        elif part in POOL_KINDS:
            kind = part
        else:
            raise SystemExit(f"unknown config part {part!r} in {name!r}")
    return kind, head, c


def run_config(name: str, store: FeatureStore, aug: FeatureStore | None, tr_rows: np.ndarray, te_rows: np.ndarray,
               labels: dict[str, dict[str, list]], cache: dict) -> dict[str, dict]:
    """One config's probe results per fact on one fold."""
    def feats(kind: str) -> dict[str, np.ndarray]:
        if kind not in cache:
            cache[kind] = {"train": pooled_features(store, tr_rows, kind),
                           "test": pooled_features(store, te_rows, kind)}
        return cache[kind]

    out = {}
    for fact in FACTS:
        ytr, yte = labels["train"][fact], labels["test"][fact]
        if name.startswith("aug-"):
            if aug is None:
                raise SystemExit(f"config {name} needs a store extracted with --augment K (none found)")
            aug_tr = np.asarray([aug.index_of(store.ids[r]) for r in tr_rows])
            aug_te = np.asarray([aug.index_of(store.ids[r]) for r in te_rows])
            base = {"train": pooled_features(aug, aug_tr, "mean+max"), "test": pooled_features(aug, aug_te, "mean+max")}
            out[fact] = run_aug(aug, aug_tr, aug_te, ytr, yte, name[4:], base)
            continue
        kind, head, c = parse_config(name)
        X = feats(kind)
        out[fact] = probe_fact(X["train"], ytr, X["test"], yte, head=head, c=c)
    return out


def summarise(per_fold: list[dict], configs: list[str], n_test_all: list[int]) -> list[dict]:
    """Rows: config, fact, mean / min / max accuracy over folds, of-all-images share, majority."""
    rows = []
    for name in configs:
        for fact in FACTS:
            accs = [f["results"][name][fact]["accuracy"] for f in per_fold]
            correct = sum(f["results"][name][fact]["accuracy"] * f["results"][name][fact]["n_test"] for f in per_fold)
            maj = [f["results"][name][fact].get("majority", float("nan")) for f in per_fold]
            rows.append({"config": name, "fact": fact, "mean": float(np.mean(accs)), "min": float(np.min(accs)),
                         "max": float(np.max(accs)), "of_all_images": float(correct / sum(n_test_all)),
                         "majority": float(np.mean(maj)), "target_of_all": TARGETS.get(fact)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=f"medpix:{PROJECT_ROOT.parent / 'shared' / 'data' / 'medpix-dev'}")
    p.add_argument("--store", type=Path, help="feature store folder (default: newest medpix-dev-vgg16-* under "
                   "$MEDCAP_ARTIFACTS/features without augmented views)")
    p.add_argument("--aug-store", type=Path, help="store with augmented views for the aug-* configs")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="split seed of the folds (the study's default 0)")
    p.add_argument("--fit-on", choices=("train", "train+val"), default="train")
    p.add_argument("--configs", default=DEFAULT_CONFIGS)
    p.add_argument("--json", type=Path, help="also write every per-fold figure here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    root = Path(args.dataset.split(":", 1)[1])
    features = Path(os.environ.get("MEDCAP_ARTIFACTS", "artifacts")) / "features"
    prefix = f"{root.name}-vgg16-"
    store_path = args.store or find_store(features, prefix, augmented=False)
    if store_path is None:
        raise SystemExit(f"no feature store {prefix}* under {features}: run `python -m medcap features` first")
    store = open_store(store_path)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    aug_path = args.aug_store or (find_store(features, prefix, augmented=True)
                                  if any(c.startswith("aug-") for c in configs) else None)
    aug = open_store(aug_path) if aug_path else None
    facts = medpix_facts(args.dataset)
    folds = study_folds(args.dataset, args.folds, args.seed)
    print(f"store {store_path} ({len(store)} images){f'; augmented {aug_path} (K={aug.augment_k})' if aug else ''}")
    per_fold, n_test_all = [], []
    in_store = set(store.ids)
    for i, fold in enumerate(folds):
        train_ids = fold["train"] + (fold["val"] if args.fit_on == "train+val" else [])
        split_rows = {}
        for part, ids in (("train", train_ids), ("test", fold["test"])):
            kept = [x for x in ids if x in in_store and x in facts]
            split_rows[part] = (kept, np.asarray([store.index_of(x) for x in kept]))
        labels = {part: {f: [facts[x][f] for x in kept] for f in FACTS} for part, (kept, _) in split_rows.items()}
        n_test_all.append(len(split_rows["test"][0]))
        cache: dict = {}
        results, seconds = {}, {}
        for name in configs:
            t0 = time.perf_counter()
            results[name] = run_config(name, store, aug, split_rows["train"][1], split_rows["test"][1], labels, cache)
            seconds[name] = time.perf_counter() - t0
        per_fold.append({"fold": i, "n_train": len(split_rows["train"][0]), "n_test": n_test_all[-1],
                         "seconds": seconds, "results": results})
        print(f"fold {i + 1}/{len(folds)}: train {len(split_rows['train'][0])}, test {n_test_all[-1]}; "
              + ", ".join(f"{n} {s:.1f}s" for n, s in seconds.items()), flush=True)
    rows = summarise(per_fold, configs, n_test_all)
    print(f"\nprobe accuracy on the labelled test images, mean over {len(folds)} folds [min..max]")
    print(f"{'config':<14}" + "".join(f"{f:>24}" for f in FACTS))
    for name in configs:
        cells = [next(r for r in rows if r["config"] == name and r["fact"] == f) for f in FACTS]
        spans = [f"{r['mean']:.3f} [{r['min']:.3f}..{r['max']:.3f}]" for r in cells]
        print(f"{name:<14}" + "".join(f"{c:>24}" for c in spans))
    maj = {r["fact"]: r["majority"] for r in rows if r["config"] == configs[0]}
    print(f"{'majority':<14}" + "".join(f"{maj[f]:>24.3f}" for f in FACTS))
    print("\ncorrect / all test images (unlabelled = not correct), pooled over folds; issue 21 targets")
    print(f"{'config':<14}" + "".join(f"{f:>24}" for f in FACTS))
    for name in configs:
        cells = [next(r for r in rows if r["config"] == name and r["fact"] == f) for f in FACTS]
        print(f"{name:<14}" + "".join(f"{r['of_all_images']:>24.3f}" for r in cells))
    print(f"{'target':<14}" + "".join(f"{TARGETS[f]:>24.2f}" if f in TARGETS else f"{'-':>24}" for f in FACTS))
    secs = {n: float(np.mean([f["seconds"][n] for f in per_fold])) for n in configs}
    print("seconds per fold: " + ", ".join(f"{n} {s:.1f}" for n, s in secs.items()))
    if args.json:
        for f in per_fold:
            for res in f["results"].values():
                for r in res.values():
                    r.pop("predictions", None)
                    r.pop("test_rows", None)
        write_json(args.json, {"store": str(store_path), "fit_on": args.fit_on, "folds": args.folds,
                               "seed": args.seed, "summary": rows, "per_fold": per_fold})
    return 0


if __name__ == "__main__":
    sys.exit(main())
