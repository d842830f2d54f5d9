"""The pre-built example bundle (`examples/demo/`): copy finished demo runs into it, normalised.

`scripts/build_example_bundle.py` builds the demo in a scratch artifacts folder, then calls
`export_run` for each run and `write_manifest`. What makes the bundle bit-for-bit reproducible on
one machine and TensorFlow build (training and feature extraction are seeded and deterministic):

- run ids are fixed (`example-<preset>`), no timestamps or random suffixes;
- every time stamp in JSON (`created`, `updated`) is `fixed_time()` (`$SOURCE_DATE_EPOCH`, else a
  constant), the git commit and feature-store path are dropped, per-epoch `seconds` are zeroed;
- zip members (`attention.npz`, check features) carry a fixed date and are written in a fixed order;
- weights are re-saved without optimizer state (smaller, and no optimizer bookkeeping);
- image paths are relative to the run folder (`../../images/<file>`), never absolute; test images are
  re-encoded as grayscale JPEG (`IMAGE_QUALITY`) to keep the bundle small: they are shown, never featurised;
- similar cases ship as `cases/` (`medcap.runs.cases`): thumbnails, captions and float16 global features;
- logs, resume state, last weights and TensorBoard events (all time-stamped) are left out.

No TensorFlow in this module; the weights are re-saved by the caller's `resave_weights` function.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base.io import read_json, write_bytes, write_json, write_text
from medcap.runs.cases import CASES, FEATURES, INDEX, INDEX_COLUMNS, THUMB_QUALITY, THUMB_SIDE, THUMBS, jpeg_bytes
from medcap.runs.folder import EvalDir, RunDir

DEFAULT_EPOCH = 1767225600  # 2026-01-01T00:00:00Z: the stamp used when SOURCE_DATE_EPOCH is unset
IMAGES = "images"
CHECK = "check"
MANIFEST = "manifest.json"
N_CHECK_IMAGES = 3  # test images per run whose raw features ship in check/<run>.npz
MAX_BUNDLE_BYTES = 20 * 2**20
IMAGE_SIDE = 256  # test images: the attention page's view, re-encoded as JPEG (display only; the model saw the PNG)
IMAGE_QUALITY = 75


def fixed_epoch() -> int:
    """`$SOURCE_DATE_EPOCH` (seconds since 1970, UTC) when set, else `DEFAULT_EPOCH`; never before 1980 (zip)."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_EPOCH
    except ValueError as exc:
        raise ValueError(f"SOURCE_DATE_EPOCH={raw!r}: not a whole number of seconds") from exc
    return max(value, 315532800)  # 1980-01-01: the earliest date a zip member can carry


def fixed_time() -> str:
    """The fixed time stamp as ISO text, like `medcap.runs.folder.now_iso`."""
    return dt.datetime.fromtimestamp(fixed_epoch(), dt.UTC).isoformat(timespec="seconds")


def example_id(preset: str) -> str:
    """The fixed id of the bundle's run of a preset."""
    return f"example-{preset}"


# ----------------------------------------------------------------------------------------------
# normalisers (pure: dict/text/bytes in, the same out)


def normalise_config(config: dict[str, Any]) -> dict[str, Any]:
    """config.json without machine- or moment-specific fields (store and dataset paths, commit, creation time)."""
    out = json.loads(json.dumps(config))
    store = out.get("feature_store")
    if isinstance(store, dict):
        store["path"] = None  # the store is not shipped; the check features are (check/<run>.npz)
        if isinstance(store.get("dataset"), dict) and "root" in store["dataset"]:
            store["dataset"]["root"] = None  # the scratch folder the demo was built in
    out["git_commit"] = None
    out["created"] = fixed_time()
    return out


def normalise_status(status: dict[str, Any]) -> dict[str, Any]:
    """status.json of a finished example run: no pid, no live fields, a fixed update time."""
    keep = ("state", "epoch", "epochs", "progress", "best_val_loss", "best_epoch", "message")
    out = {k: status[k] for k in keep if k in status}
    out["updated"] = fixed_time()
    return out


def normalise_metrics(metrics: dict[str, Any], run_id: str) -> dict[str, Any]:
    """metrics.json with the example's run id and a fixed creation time."""
    out = json.loads(json.dumps(metrics))
    out["run_id"] = run_id
    prov = out.get("provenance")
    if isinstance(prov, dict) and "created" in prov:
        prov["created"] = fixed_time()
    return out


def normalise_history(text: str) -> str:
    """history.csv with the wall-clock `seconds` column zeroed (the only column that varies between builds)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    header = rows[0]
    col = header.index("seconds") if "seconds" in header else None
    lines = [",".join(header)]
    for row in rows[1:]:
        if col is not None and col < len(row):
            row[col] = "0.0"
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def relative_image(file_name: str) -> str:
    """An image's path as written in the bundle's predictions: relative to the run folder."""
    return f"../../{IMAGES}/{file_name}"


def normalise_predictions(text: str, image_names: dict[str, str]) -> str:
    """predictions.csv with `image_path` replaced by the bundle-relative path (`image_names`: old -> file name)."""
    df = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)
    df["image_path"] = [relative_image(image_names[p]) for p in df["image_path"]]
    return df.to_csv(index=False)


def zip_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip (stored, no compression) of `members` in the given order, every member dated `fixed_epoch()`."""
    stamp = dt.datetime.fromtimestamp(fixed_epoch(), dt.UTC).timetuple()[:6]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the host
            zf.writestr(info, data)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (readable by np.load) with fixed member dates, members in the dict's order."""
    members = []
    for key, value in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
        members.append((f"{key}.npy", buf.getvalue()))
    return zip_bytes(members)


def halve_weights(path: Path) -> None:
    """Rewrite a Keras `.weights.h5` in place with every float32 array stored as float16 (half the bytes).

    Groups, attributes and the order of entries are kept; other arrays (ints, strings) are copied as they
    are. Keras loads the file into its float32 variables unchanged (each array is cast on assignment):
    weights come back as float32, rounded to float16 precision (relative error <= 2**-11).
    """
    import h5py

    from medcap.base.io import atomic_path

    src_path = Path(path)

    def copy(src: Any, dst: Any) -> None:
        dst.attrs.update(dict(src.attrs))
        for key in src:
            item = src[key]
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(key))
                continue
            data = item[()]
            if isinstance(data, np.ndarray) and data.dtype == np.float32:
                data = data.astype(np.float16)
            elif isinstance(data, np.float32):
                data = np.float16(data)
            out = dst.create_dataset(key, data=data)
            out.attrs.update(dict(item.attrs))

    with h5py.File(src_path, "r") as src, atomic_path(src_path) as tmp, h5py.File(tmp, "w") as dst:
        copy(src, dst)


def normalise_npz(path: Path) -> bytes:
    """An existing .npz rewritten with fixed member dates (array bytes unchanged)."""
    with np.load(path, allow_pickle=False) as npz:
        return npz_bytes({key: npz[key] for key in npz.files})


# ----------------------------------------------------------------------------------------------
# export


def export_run(
    src: Path,
    bundle: Path,
    preset: str,
    resave_weights: Callable[[Path, Path], None],
    check_features: Callable[[Path, list[str]], tuple[np.ndarray, np.ndarray]],
) -> Path:
    """Copy one finished, evaluated run into `<bundle>/runs/example-<preset>/`, normalised.

    `resave_weights(run_dir, dst_file)` writes the run's best weights without optimizer state;
    `check_features(run_dir, image_ids)` returns the raw (global, grid) store features of those images.
    Images referenced by the predictions are copied to `<bundle>/images/`.
    """
    run, run_id = RunDir(src), example_id(preset)
    out = RunDir(bundle / "runs" / run_id)
    out.weights_dir.mkdir(parents=True, exist_ok=True)
    write_json(out.config, normalise_config(run.read_config()))
    write_bytes(out.vocab, run.vocab.read_bytes())
    write_bytes(out.split, run.split.read_bytes())
    write_text(out.history, normalise_history(run.history.read_text(encoding="utf-8")))
    write_json(out.status, normalise_status(run.read_status()))
    resave_weights(src, out.best_weights)
    evals = run.evals()
    if not evals:
        raise ValueError(f"{src}: no complete evaluation to export")
    images = bundle / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    for ev in evals:
        dst = EvalDir(out.eval_root / ev.name)
        dst.path.mkdir(parents=True, exist_ok=True)
        text = ev.predictions.read_text(encoding="utf-8")
        paths = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)
        names = {}
        for path in paths["image_path"]:
            source = Path(path)
            names[path] = f"{source.stem}.jpg"
            target = images / names[path]
            if not target.exists():
                write_bytes(target, jpeg_bytes(source, IMAGE_SIDE, IMAGE_QUALITY))
        write_text(dst.predictions, normalise_predictions(text, names))
        write_bytes(dst.attention, normalise_npz(ev.attention))
        write_json(dst.metrics, normalise_metrics(read_json(ev.metrics), run_id))
        ids = list(paths["image_id"][:N_CHECK_IMAGES])
        g, r = check_features(src, ids)
        write_bytes(bundle / CHECK / f"{run_id}.npz",
                    npz_bytes({"image_ids": np.array(ids), "global": g, "grid": r}))
    return out.path


def export_cases(bundle: Path, ids: list[str], captions: list[str], thumb_sources: dict[str, Path],
                 feats: np.ndarray) -> None:
    """Write the bundle's similar-cases index (`medcap.runs.cases`): one row per id, in the given order.

    `captions[i]` is image `ids[i]`'s reference caption and `feats[i]` its raw global features (N, D), stored
    as float16; `thumb_sources` maps the ids that get a thumbnail (the training images) to their image file.
    """
    if len(set(ids)) != len(ids) or not len(ids) == len(captions) == len(feats):
        raise ValueError(f"cases: {len(ids)} ids (unique: {len(set(ids))}), {len(captions)} captions, "
                         f"{len(feats)} feature rows")
    root = bundle / CASES
    (root / THUMBS).mkdir(parents=True, exist_ok=True)
    thumbs = []
    for image_id in ids:
        source = thumb_sources.get(image_id)
        name = f"{image_id}.jpg" if source is not None else ""
        if source is not None:
            write_bytes(root / THUMBS / name, jpeg_bytes(Path(source), THUMB_SIDE, THUMB_QUALITY))
        thumbs.append(name)
    table = pd.DataFrame({"image_id": ids, "caption": captions, "thumb": thumbs}, columns=INDEX_COLUMNS)
    write_text(root / INDEX, table.to_csv(index=False))
    write_bytes(root / FEATURES, npz_bytes({"image_ids": np.asarray(ids),
                                            "global": np.asarray(feats, dtype=np.float16)}))  # (N, D)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_files(bundle: Path) -> list[Path]:
    """Every file of the bundle except the manifest and its README, sorted."""
    skip = {bundle / MANIFEST, bundle / "README.md"}
    return sorted(p for p in bundle.rglob("*") if p.is_file() and p not in skip)


def write_manifest(bundle: Path, settings: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    """`manifest.json`: demo settings, library versions, every file with size and SHA-256, the total size."""
    files = {p.relative_to(bundle).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in bundle_files(bundle)}
    manifest = {
        "what": "medcap example bundle: the demo's two evaluated runs (Model-80, Model-70) on its synthetic set",
        "rebuild": "python scripts/build_example_bundle.py",
        "settings": settings,
        "versions": versions,
        "created": fixed_time(),
        "total_bytes": sum(f["bytes"] for f in files.values()),
        "files": files,
    }
    write_json(bundle / MANIFEST, manifest)
    return manifest


def verify_manifest(bundle: Path) -> list[str]:
    """Problems found comparing the bundle's files with its manifest (empty when they agree)."""
    manifest = read_json(bundle / MANIFEST)
    listed = manifest.get("files", {})
    present = {p.relative_to(bundle).as_posix(): p for p in bundle_files(bundle)}
    problems = [f"{name}: listed in {MANIFEST} but missing" for name in sorted(set(listed) - set(present))]
    problems += [f"{name}: not listed in {MANIFEST}" for name in sorted(set(present) - set(listed))]
    for name in sorted(set(listed) & set(present)):
        if sha256(present[name]) != listed[name]["sha256"]:
            problems.append(f"{name}: SHA-256 differs from {MANIFEST}")
    return problems
