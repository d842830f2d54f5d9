"""Join the N shard stores of one extraction into the store an unsharded extraction would have made.

The merged store has the unsharded store's folder name (under `features_dir()` unless told
otherwise), row order, arrays and meta fields; `meta["shards"]` records where each part came from.
Shards must share the fingerprint, backbone facts and augmentation, and cover every row exactly once.
No TensorFlow here.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from medcap.base import paths
from medcap.features.store import ARRAYS, FeatureStore, is_complete, open_store, store_folder_name
from medcap.features.writer import write_store

log = logging.getLogger(__name__)

COPY_ROWS = 256  # rows per copied block (keeps memory flat whatever the store size)
# meta fields every shard must agree on (the backbone facts, augmentation, format)
_SAME = ("format", "fingerprint", "backbone", "input_size", "global_dim", "grid_shape", "weights_source",
         "weights_sha256", "global_from", "grid_layer", "preprocess", "precision", "dtype", "augment")


def merge_stores(shard_paths: list[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None
                 ) -> FeatureStore:
    """Merge complete shard stores into one store (at `out`, default the unsharded store's folder).

    A merge whose target is already complete with the same fingerprint is reused (`store.reused`).
    ValueError naming the store when a shard is not one, does not match the others, or rows are missing.
    """
    shards = _open_shards(shard_paths)
    first = shards[0].meta
    folder = Path(out) if out is not None else paths.features_dir() / store_folder_name(
        first["dataset"]["name"], first["backbone"], first["fingerprint"])
    if is_complete(folder):
        existing = open_store(folder)
        if existing.meta.get("fingerprint") != first["fingerprint"] or "shard" in existing.meta:
            raise ValueError(f"{folder}: already holds a different feature store; choose another --out")
        log.info("%s: already merged (same fingerprint); reusing it", folder)
        existing.reused = True
        return existing
    ids = [i for s in shards for i in s.ids]
    names = [name for name in ARRAYS if shards[0].array(name) is not None]
    shapes = {name: (len(ids), *shards[0].array(name).shape[1:]) for name in names}
    with write_store(folder, shapes) as writer:
        for name in names:
            start = 0
            for store in shards:
                src = store.array(name)
                for lo in range(0, len(store), COPY_ROWS):
                    block = src[lo : lo + COPY_ROWS]  # (b, ...) float16
                    writer.write(name, start + lo, block)
                start += len(store)
        writer.finish(ids, _merged_meta(shards))
    log.info("merged %d shards (%d images) into %s", len(shards), len(ids), folder)
    return open_store(folder)


def _open_shards(shard_paths: list[str | os.PathLike[str]]) -> list[FeatureStore]:
    """Open and check the shards; returned in shard order."""
    if not shard_paths:
        raise ValueError("merge: no shard stores given")
    shards = []
    for path in shard_paths:
        store = open_store(Path(path))
        if "shard" not in store.meta:
            raise ValueError(f"{store.path}: not a shard store (meta.json has no 'shard'); "
                             f"extract with `features --shard I/N`")
        shards.append(store)
    shards.sort(key=lambda s: int(s.meta["shard"]["index"]))
    ref = shards[0]
    count = int(ref.meta["shard"]["count"])
    for store in shards[1:]:
        for key in _SAME:
            if store.meta.get(key) != ref.meta.get(key):
                raise ValueError(f"{store.path}: {key} differs from {ref.path} ({store.meta.get(key)!r} vs "
                                 f"{ref.meta.get(key)!r}); shards of one extraction must match")
        if store.meta["dataset"].get("name") != ref.meta["dataset"].get("name"):
            raise ValueError(f"{store.path}: dataset name differs from {ref.path}")
        if int(store.meta["shard"]["count"]) != count:
            raise ValueError(f"{store.path}: made for {store.meta['shard']['count']} shards, {ref.path} for {count}")
    indices = [int(s.meta["shard"]["index"]) for s in shards]
    if len(set(indices)) != len(indices):
        dup = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(f"merge: shard(s) {dup} given more than once")
    missing = sorted(set(range(count)) - set(indices))
    if missing:
        raise ValueError(f"merge: shard(s) {missing} of {count} missing; give all {count} shard stores")
    expected = 0
    for store in shards:
        lo, hi = (int(r) for r in store.meta["shard"]["rows"])
        if lo != expected:
            raise ValueError(f"{store.path}: covers rows [{lo}, {hi}) but row {expected} was expected next")
        expected = hi
    total = int(ref.meta["shard"]["n_candidates_total"])
    if expected != total:
        raise ValueError(f"merge: shards cover {expected} rows of {total}")
    return shards


def _merged_meta(shards: list[FeatureStore]) -> dict:
    """The unsharded store's meta fields (counts, skipped list, extraction summed) plus `shards` provenance."""
    ref = shards[0].meta
    meta = {k: v for k, v in ref.items() if k != "shard"}
    meta["n_candidates"] = int(ref["shard"]["n_candidates_total"])
    meta["n_images"] = sum(len(s) for s in shards)
    meta["skipped"] = [item for s in shards for item in s.meta.get("skipped", [])]
    ext = [s.meta.get("extraction", {}) for s in shards]
    seconds = sum(float(e.get("seconds") or 0.0) for e in ext)
    done = sum(int(e.get("images_extracted") or 0) for e in ext)
    meta["extraction"] = {
        **ext[0],
        "seconds": round(seconds, 3),  # summed over the shards (worker time, not wall time)
        "images_extracted": done,
        "images_per_s": round(done / seconds, 3) if seconds > 0 else None,  # per worker
        "resumed_from_row": sum(int(e.get("resumed_from_row") or 0) for e in ext),
        "device": ", ".join(dict.fromkeys(str(e.get("device")) for e in ext)),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    meta["shards"] = [
        {"index": s.meta["shard"]["index"], "count": s.meta["shard"]["count"], "rows": s.meta["shard"]["rows"],
         "path": str(s.path), "n_images": len(s), "dataset_root": s.meta["dataset"].get("root"),
         "extraction": s.meta.get("extraction", {})}
        for s in shards
    ]
    return meta
