"""Rebuild the pre-built example bundle `examples/demo/` with the examples' recipe, reproducibly.

    python scripts/build_example_bundle.py [--out examples/demo] [--from-demo ARTIFACTS] [--check]

Runs the demo pipeline with the examples' own recipe (`medcap.experiments.demo.EXAMPLE_OPTIONS`: synthetic
set -> features -> Model-80 and Model-70 -> evaluations) in a scratch artifacts folder, then exports both runs
into the bundle with `medcap.runs.bundle` (fixed ids and time stamps, relative image paths, float16 weights
without optimizer state: each run is evaluated again with them first, no logs), the test images as JPEG and
the similar-cases index (`cases/`), writes `manifest.json` (settings, versions, SHA-256 of every file) and
replaces `--out` in one rename. Set `SOURCE_DATE_EPOCH` to choose the stamp.
`--from-demo` exports the finished demo of an existing artifacts folder instead of building one (it must have
been built with `EXAMPLE_OPTIONS`).
`--check` rebuilds into a scratch folder and compares it with `--out`, file by file (exit 1 on a
difference). Bit-for-bit equality holds on one machine and TensorFlow build (seeded, deterministic
CPU kernels); another CPU or library version may change the trained numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("build_example_bundle")

README = """# Example bundle (pre-built, read-only)

Two evaluated runs of the demo pipeline — Model-80 and Model-70 trained on the synthetic set with the
examples' own recipe (`medcap.experiments.demo.EXAMPLE_OPTIONS`, recorded in `manifest.json`) — so that a
fresh clone's dashboard shows results at once. The dashboard
lists them as *example* runs beside your own (read-only: no resume, cancel or evaluate); your own
outputs go to `artifacts/`.

- `runs/example-model-80/`, `runs/example-model-70/`: config, vocabulary, split, history, status,
  best weights (no optimizer state; stored as float16, loaded as float32) and one evaluation each
  (`eval/<name>/`: metrics, per-image predictions, attention maps). Image paths in the predictions are
  relative to the run folder.
- `images/`: the test images the runs were evaluated on, re-encoded as grayscale JPEG to keep the bundle
  small (shown on the pages only; the models saw the PNGs).
- `cases/`: the similar-cases index (`medcap.runs.cases`): a thumbnail and the reference caption of every
  training image, and float16 global features of the training and test images.
- `check/<run>.npz`: the raw VGG16 features of a few of those images, to check that the current code
  decodes the stored captions (`tests/runs/test_example_bundle.py`).
- `manifest.json`: the demo settings, library versions and SHA-256 of every file.

Not shipped: the feature store (`config.json`'s `feature_store.path` is null; similar cases use `cases/`),
the full-size training images, logs, resume state
and TensorBoard events. Per-epoch `seconds` in `history.csv` are zeroed and every time stamp is
fixed, so that `python scripts/build_example_bundle.py` rebuilds the same bytes on the same machine
and TensorFlow build (`--check` compares).
"""


def _resave_weights(run_dir: Path, dst: Path) -> None:
    """The run's best weights, re-saved from an uncompiled model (no optimizer state), stored as float16
    (`bundle.halve_weights`: half the bytes per rebuild; Keras loads them back into float32 variables)."""
    from medcap.base.io import save_weights
    from medcap.inference.opened import load_run
    from medcap.runs.bundle import halve_weights

    save_weights(load_run(run_dir).model, dst)
    halve_weights(dst)


def _evaluate_as_shipped(run_dir: Path) -> None:
    """Round the run's best weights to float16, as the bundle ships them, and evaluate the run again: the
    shipped predictions and attention maps are then those of the shipped weights (idempotent)."""
    from medcap.base.io import save_weights
    from medcap.eval.evaluate import evaluate_run
    from medcap.inference.opened import load_run
    from medcap.runs.bundle import halve_weights
    from medcap.runs.folder import RunDir

    best = RunDir(run_dir).best_weights
    save_weights(load_run(run_dir).model, best)
    halve_weights(best)
    evaluate_run(run_dir)  # what the demo ran: the run's own test split, its decoding settings


def _check_features(run_dir: Path, image_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The raw store features (global (N, D), grid (N, 7, 7, 512)) of `image_ids`, as stored."""
    from medcap.features import open_store
    from medcap.runs.index import read_config

    store = open_store(Path(read_config(run_dir)["feature_store"]["path"]))
    rows = np.array([store.index_of(i) for i in image_ids], dtype=np.int64)
    return np.asarray(store.global_feats()[rows]), np.asarray(store.grid()[rows])  # (N, D), (N, 7, 7, 512)


def _export_cases(run_dirs: list[Path], staging: Path) -> int:
    """The bundle's similar-cases index: every training image of the runs (thumbnail, reference caption,
    global features) and every test image (features only: the queries). Returns the number of cases."""
    from medcap.inference.opened import open_run
    from medcap.inference.similar import stored_features
    from medcap.runs import bundle

    runs = [open_run(r) for r in run_dirs]
    train = list(dict.fromkeys(str(i) for r in runs for i in r.split.get("train", [])))
    in_train = set(train)
    queries = [str(i) for r in runs for i in r.split.get("test", []) if str(i) not in in_train]
    ids = list(dict.fromkeys(train + queries))
    _, table = runs[0].captioned()
    caption_of = dict(zip(table["image_id"].astype(str), table["caption"].astype(str), strict=True))
    path_of = dict(zip(table["image_id"].astype(str), table["image_path"].astype(str), strict=True))
    feats = stored_features(run_dirs[0], ids)  # (N, D), from the runs' shared store
    bundle.export_cases(staging, ids, [caption_of[i] for i in ids], {i: Path(path_of[i]) for i in train}, feats)
    return len(ids)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import medcap

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "medcap": medcap.__version__, "machine": platform.machine()}


def build(out: Path, from_demo: Path | None = None) -> dict:
    """Build the bundle into `out` (replaced at the end); returns the manifest."""
    from dataclasses import asdict

    from medcap.base.io import write_text
    from medcap.experiments.demo import EXAMPLE_OPTIONS, PRESETS, DemoDir, DemoOptions, run_demo
    from medcap.runs import bundle

    opts = EXAMPLE_OPTIONS
    with tempfile.TemporaryDirectory(prefix="medcap-bundle-") as tmp:
        work = (from_demo or Path(tmp) / "artifacts").resolve()
        os.environ["MEDCAP_ARTIFACTS"] = str(work)
        os.environ["MEDCAP_EXAMPLES"] = "off"
        if from_demo is None:
            log.info("building the demo in %s (%s)", work, asdict(opts))
            status = run_demo(opts)
        else:
            status = DemoDir(work / "demo").read_status()
            opts = DemoOptions(**{k: v for k, v in (status.get("options") or {}).items()
                                  if k in DemoOptions.__dataclass_fields__})
            if {**asdict(opts), "parallel": True} != {**asdict(EXAMPLE_OPTIONS), "parallel": True}:
                raise SystemExit(f"{from_demo}: the demo was built with {asdict(opts)}, not EXAMPLE_OPTIONS "
                                 f"{asdict(EXAMPLE_OPTIONS)}")
        if status.get("state") != "finished":
            raise SystemExit(f"the demo did not finish: {status.get('state')} {status.get('error') or ''}")
        for preset in PRESETS:
            _evaluate_as_shipped(work / "runs" / status["runs"][preset])
        staging = out.parent / f".{out.name}.building"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for preset in PRESETS:
            src = work / "runs" / status["runs"][preset]
            bundle.export_run(src, staging, preset, _resave_weights, _check_features)
        n_cases = _export_cases([work / "runs" / status["runs"][p] for p in PRESETS], staging)
        log.info("similar cases: %d images", n_cases)
        write_text(staging / "README.md", README)
        settings = {k: v for k, v in asdict(opts).items() if k != "parallel"}
        manifest = bundle.write_manifest(staging, settings, _versions())
        if manifest["total_bytes"] > bundle.MAX_BUNDLE_BYTES:
            raise SystemExit(f"bundle is {manifest['total_bytes']} bytes, over {bundle.MAX_BUNDLE_BYTES}")
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    return manifest


def compare(a: Path, b: Path) -> list[str]:
    """Files that differ between two bundles (by bytes), or exist in only one."""
    fa = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    diffs = [f"only in {a}: {n}" for n in sorted(fa - fb)] + [f"only in {b}: {n}" for n in sorted(fb - fa)]
    diffs += [f"differs: {n}" for n in sorted(fa & fb) if (a / n).read_bytes() != (b / n).read_bytes()]
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "demo")
    ap.add_argument("--from-demo", type=Path, help="export the finished demo of this artifacts folder")
    ap.add_argument("--check", action="store_true", help="rebuild into a scratch folder and compare with --out")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = args.out.resolve()
    if args.check:
        with tempfile.TemporaryDirectory(prefix="medcap-bundle-check-") as tmp:
            fresh = Path(tmp) / "demo"
            build(fresh, args.from_demo)
            diffs = compare(out, fresh)
        for line in diffs:
            print(line)
        print("identical" if not diffs else f"{len(diffs)} difference(s)")
        return 1 if diffs else 0
    manifest = build(out, args.from_demo)
    print(f"{out}: {len(manifest['files'])} files, {manifest['total_bytes'] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
