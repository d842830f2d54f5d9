"""MediCat scale: feature stores of N images (no CNN run), then training, evaluation and dashboard at each N.

    .venv/bin/python benchmarks/scale.py [--sizes 2000,10000,50000] [--out scale.json]
        [--train-steps 0] [--global-dim 4096] [--workdir DIR] [--keep] [--skip meteor,dashboard]

For each N, in a fresh folder (its own MEDCAP_ARTIFACTS):
1. build (subprocess): a CSV dataset of N tiny PNGs whose captions come from the synthetic grammar
   (`medcap.data.synthetic_text`), in groups of 1-8 images sharing a finding pattern, and a feature store
   of random float16 features of the real shapes (global (N, D), grid (N, 7, 7, 512)) written with the
   store's own writer (`medcap.features.writer.write_store`) - VGG16 is never run.
2. train (`python -m medcap train --preset model-80 --epochs 1 --feature-store STORE`): pairs/s from the
   run's live step counter (status.json write times), peak RSS of the training process (wait4), epoch
   time from history.csv. With `--train-steps K` the measuring run is stopped (SIGTERM) after K timed
   steps and the epoch time is extrapolated (said so in the table); evaluation then trains one full
   epoch in a second run, because it needs a finished run.
3. evaluate (`python -m medcap evaluate RUN --no-meteor`): wall time and peak RSS of the whole command;
   a parts worker times decoding (images/s), metrics without METEOR, the bootstrap CIs and the baselines
   separately, and METEOR on its own (skipped without Java).
4. dashboard: `benchmarks/dashboard.py` with 10 runs of as many predictions as this N's test split;
   the slowest interaction.
Every step runs in its own process, so each peak RSS belongs to one step at one N.
Goals printed beside: peak RSS at the largest N within 1.3x of the smallest; pairs/s within 0.9x;
evaluating a 5,000-image test split (METEOR skipped) < 10 min; dashboard interactions < 2 s.
"""

from __future__ import annotations

import argparse
import hashlib
import io as std_io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("benchmarks.scale")

GRID = (7, 7, 512)
BLOCK_ROWS = 256  # rows of random features generated and written at a time
POLL_S = 0.05
MB = 1024 * 1024


# ---------------------------------------------------------------- dataset + store (no CNN)

def _tiny_png() -> bytes:
    from PIL import Image

    buf = std_io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="PNG")
    return buf.getvalue()


def _captions(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Captions from the synthetic grammar and group ids (groups of 1-8 images sharing their findings)."""
    from medcap.data.synthetic_text import FINDINGS, LOCATIONS, SIZES, make_caption

    rng = np.random.default_rng(seed)
    captions, groups = [], []
    g = 0
    while len(captions) < n:
        size = int(rng.integers(1, 9))
        kind = "XR" if rng.random() < 0.5 else "CT"
        n_find = int(rng.choice(3, p=(0.25, 0.55, 0.20)))
        lesions = [(str(rng.choice(FINDINGS)), str(rng.choice(LOCATIONS)), str(rng.choice(SIZES)))
                   for _ in range(n_find)]
        for _ in range(min(size, n - len(captions))):
            captions.append(make_caption(rng, kind, lesions))
            groups.append(f"g{g:06d}")
        g += 1
    return captions, groups


def build(folder: Path, n: int, global_dim: int, seed: int = 0) -> dict[str, Any]:
    """Write `folder/data/captions.csv` + images and a complete random store; return its facts."""
    import pandas as pd

    from medcap.base import io, paths
    from medcap.features.store import STORE_FORMAT, store_folder_name
    from medcap.features.writer import write_store

    t0 = time.perf_counter()
    data = folder / "data"
    images = data / "images"
    images.mkdir(parents=True, exist_ok=True)
    png = _tiny_png()
    ids = [f"mc{i:06d}" for i in range(n)]
    for image_id in ids:
        (images / f"{image_id}.png").write_bytes(png)  # benchmark fixture files (not medcap outputs)
    captions, groups = _captions(n, seed)
    csv = data / "captions.csv"
    table = pd.DataFrame({"image_id": ids, "image_path": [f"images/{i}.png" for i in ids], "caption": captions,
                          "group": groups})
    io.write_text(csv, table.to_csv(index=False))
    spec = f"csv:{csv}"
    name = io.safe_name(f"{data.name}-{csv.stem}")
    fp = hashlib.sha256(f"scale {n} {global_dim} {seed}".encode()).hexdigest()
    store_dir = paths.features_dir() / store_folder_name(name, "vgg16", fp)
    rng = np.random.default_rng(seed)
    shapes = {"global": (n, global_dim), "grid": (n, *GRID)}
    with write_store(store_dir, shapes) as writer:
        for lo in range(0, n, BLOCK_ROWS):
            b = min(BLOCK_ROWS, n - lo)
            writer.write("global", lo, rng.random((b, global_dim), dtype=np.float32))  # (b, D) ReLU-like >= 0
            writer.write("grid", lo, rng.random((b, *GRID), dtype=np.float32))  # (b, 7, 7, 512)
        meta = {
            "format": STORE_FORMAT, "fingerprint": fp,
            "dataset": {"spec": spec, "name": name, "kind": "csv", "root": str(data), "loader_skipped": {}},
            "backbone": "vgg16", "input_size": 224, "global_dim": global_dim, "grid_shape": list(GRID),
            "weights_source": "none: random features (benchmarks/scale.py)", "weights_sha256": "0" * 64,
            "global_from": "fc2" if global_dim == 4096 else "avgpool(block5_pool)", "grid_layer": "block5_pool",
            "preprocess": "caffe", "precision": "float32", "dtype": "float16", "n_candidates": n, "n_images": n,
            "skipped": [], "augment": {"k": 0},
            "extraction": {"seconds": 0.0, "images_extracted": 0, "images_per_s": None, "resumed_from_row": 0,
                           "batch_size": 0, "device": "none (random features)", "finished": None,
                           "versions": {"numpy": np.__version__}},
        }
        writer.finish(ids, meta)
    size = sum(f.stat().st_size for f in store_dir.iterdir() if f.is_file())
    return {"spec": spec, "store": str(store_dir.resolve()), "store_mb": size / MB, "build_s": time.perf_counter() - t0,
            "n_groups": len(set(groups))}


# ---------------------------------------------------------------- measured subprocesses

def _rss_parts(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile) of a live process in kB: private memory vs mapped file pages (the store's memmap)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    found = dict(re.findall(r"^(RssAnon|RssFile):\s+(\d+) kB", text, flags=re.MULTILINE))
    return int(found.get("RssAnon", 0)), int(found.get("RssFile", 0))


def run_measured(cmd: list[str], env: dict[str, str], folder: Path, label: str,
                 monitor: Any = None, preexec: Any = None) -> dict[str, Any]:
    """Run `cmd`, calling `monitor(proc)` every POLL_S while it runs; wall time, peak RSS (wait4) and
    the peaks of its two parts, sampled: private (anonymous) memory and mapped file pages."""
    out_path, err_path = folder / f"{label}.out", folder / f"{label}.err"
    t0 = time.perf_counter()
    peak_anon = peak_file = 0
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=ROOT, preexec_fn=preexec)
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps it: never proc.poll()/wait()
                if pid:
                    break
                anon, mapped = _rss_parts(proc.pid)
                peak_anon, peak_file = max(peak_anon, anon), max(peak_file, mapped)
                if monitor is not None:
                    monitor(proc)
                time.sleep(POLL_S)
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    res = {"rc": proc.returncode, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
           "peak_anon_mb": peak_anon / 1024, "peak_file_mb": peak_file / 1024,
           "stdout": out_path.read_text(errors="replace"), "stderr_tail": err_path.read_text(errors="replace")[-3000:]}
    return res


class TrainWatch:
    """Polls a training run's status.json: (write time, step) pairs during epoch 1; SIGTERM after `cap` steps."""

    def __init__(self, runs_root: Path, cap: int) -> None:
        self.runs_root = runs_root
        self.cap = cap
        self.points: list[tuple[float, int]] = []
        self.steps_per_epoch = 0
        self.run_dir: Path | None = None
        self.stopped = False
        self.last_mtime = 0
        self.before = set(runs_root.iterdir()) if runs_root.is_dir() else set()

    def _status_file(self) -> Path | None:
        from medcap.runs.folder import RunDir

        if self.run_dir is None:
            found = [p for p in self.runs_root.iterdir() if p.is_dir() and p not in self.before] \
                if self.runs_root.is_dir() else []
            if not found:
                return None
            self.run_dir = found[-1]
        return RunDir(self.run_dir).status

    def __call__(self, proc: subprocess.Popen) -> None:
        """One poll (called repeatedly by run_measured while the process runs)."""
        path = self._status_file()
        if path is None or not path.is_file():
            return
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self.last_mtime:
                return
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        self.last_mtime = mtime
        step, message = int(status.get("step") or 0), str(status.get("message") or "")
        if status.get("epoch") != 1 or " step " not in message or step <= 0:
            return  # only live in-epoch updates of epoch 1 (not the post-validation write)
        self.steps_per_epoch = int(status.get("steps") or 0)
        if not self.points or step > self.points[-1][1]:
            self.points.append((mtime / 1e9, step))
        if self.cap and step - self.points[0][1] >= self.cap and not self.stopped:
            proc.send_signal(signal.SIGTERM)
            self.stopped = True

    def rate(self, batch: int) -> tuple[float | None, float | None]:
        """(pairs/s, seconds timed) from the first to the last observed step (tracing excluded)."""
        if len(self.points) < 2:
            return None, None
        (t0, s0), (t1, s1) = self.points[0], self.points[-1]
        return (s1 - s0) * batch / (t1 - t0), t1 - t0


def _python() -> list[str]:
    return [sys.executable]


def _env(artifacts: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MEDCAP_ARTIFACTS"] = str(artifacts)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def train(folder: Path, built: dict[str, Any], cap: int, name: str,
          preexec: Any = None) -> tuple[dict[str, Any], Path | None]:
    """One training process (Model-80, one epoch or `cap` steps); its measurements and run folder."""
    artifacts = folder / "artifacts"
    watch = TrainWatch(artifacts / "runs", cap)
    cmd = [*_python(), "-m", "medcap", "train", "--preset", "model-80", "--dataset", built["spec"],
           "--feature-store", built["store"], "--epochs", "1", "--name", name]
    res = run_measured(cmd, _env(artifacts), folder, f"train-{name}", monitor=watch, preexec=preexec)
    batch = 64  # model-80 preset
    pairs_s, timed = watch.rate(batch)
    out: dict[str, Any] = {"rc": res["rc"], "peak_rss_mb": res["peak_rss_mb"], "peak_anon_mb": res["peak_anon_mb"],
                           "peak_file_mb": res["peak_file_mb"], "wall_s": res["wall_s"],
                           "pairs_per_s": pairs_s, "timed_s": timed, "steps_per_epoch": watch.steps_per_epoch,
                           "timed_steps": (watch.points[-1][1] - watch.points[0][1]) if len(watch.points) > 1 else 0}
    if watch.stopped:
        out["epoch_s"] = watch.steps_per_epoch * batch / pairs_s if pairs_s else None
        out["epoch_basis"] = f"extrapolated from {out['timed_steps']} steps (training only, no validation)"
    elif res["rc"] == 0 and watch.run_dir is not None:
        from medcap.runs.folder import RunDir

        hist = RunDir(watch.run_dir).read_history()
        out["epoch_s"] = float(hist["seconds"].iloc[-1]) if len(hist) else None
        out["epoch_basis"] = "measured (one epoch incl. validation)"
    else:
        out["error"] = res["stderr_tail"]
    ok = res["rc"] == 0 and not watch.stopped
    return out, (watch.run_dir if ok else None)


def eval_parts(run: Path, with_meteor: bool) -> dict[str, Any]:
    """Time each part of an evaluation in this process (mirrors medcap.eval.evaluate.evaluate_run)."""
    from medcap.eval import bootstrap as bs
    from medcap.eval.baselines import most_frequent_caption, nearest_neighbour_captions
    from medcap.eval.evaluate import decode_captions, prepare
    from medcap.eval.metrics import java_available, meteor_systems
    from medcap.eval.scoring import score_systems

    out: dict[str, Any] = {}
    t = time.perf_counter()
    prep = prepare(run, None, "test")
    out["prepare_s"] = time.perf_counter() - t
    ev = prep.evalset
    out["n_test"], out["n_train"] = len(ev), len(prep.train_tokens)
    t = time.perf_counter()
    caps = decode_captions(prep.loaded, ev, beam_size=1)
    out["decode_s"] = time.perf_counter() - t
    out["decode_img_s"] = len(ev) / out["decode_s"]
    t = time.perf_counter()
    mf = most_frequent_caption(prep.train_tokens)
    _, nn_caps = nearest_neighbour_captions(prep.train_global, prep.train_tokens, ev.global_feats)
    out["baselines_s"] = time.perf_counter() - t
    refs = ev.refs
    systems = {"model": [list(c.words) for c in caps], "most_frequent": [list(mf) for _ in refs],
               "nearest_neighbour": nn_caps}
    t = time.perf_counter()
    scores, _ = score_systems(refs, systems, n_boot=1, with_meteor=False)  # metrics, a token bootstrap
    out["metrics_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for sc in scores.values():  # the CIs as score_systems computes them (default 1,000 resamples)
        bs.bootstrap_bleu(sc.bleu_stats)
        for per_image in sc.per_image.values():
            bs.mean_ci(per_image)
    out["bootstrap_s"] = time.perf_counter() - t
    if with_meteor and java_available() is None:
        t = time.perf_counter()
        meteor_systems(refs, systems)
        out["meteor_s"] = time.perf_counter() - t
    else:
        out["meteor_s"] = None
    return out


def evaluate(folder: Path, run: Path, with_meteor: bool) -> dict[str, Any]:
    """The evaluate command (METEOR skipped) and the parts worker, each its own process."""
    env = _env(folder / "artifacts")
    res = run_measured([*_python(), "-m", "medcap", "evaluate", str(run), "--no-meteor"], env, folder, "evaluate")
    out: dict[str, Any] = {"eval_rc": res["rc"], "eval_wall_s": res["wall_s"], "eval_peak_rss_mb": res["peak_rss_mb"],
                           "eval_timings": eval_timings((folder / "evaluate.err").read_text(errors="replace"))}
    if res["rc"] != 0:
        out["eval_error"] = res["stderr_tail"]
    cmd = [*_python(), __file__, "--worker", "eval-parts", "--run", str(run)] + ([] if with_meteor else ["--no-meteor"])
    parts = run_measured(cmd, env, folder, "eval-parts")
    if parts["rc"] == 0:
        out["parts"] = json.loads(parts["stdout"].strip().splitlines()[-1])
        out["parts"]["peak_rss_mb"] = parts["peak_rss_mb"]
    else:
        out["parts_error"] = parts["stderr_tail"]
    return out


def eval_timings(log_text: str) -> dict[str, float]:
    """The parts `medcap evaluate` logs ("evaluate timings (s): decode 12.30, baselines 0.61, ...")."""
    found = re.findall(r"evaluate timings \(s\): (.*)", log_text)
    if not found:
        return {}
    return {name: float(sec) for name, sec in (part.rsplit(" ", 1) for part in found[-1].split(", "))}


def dashboard(folder: Path, n_preds: int, runs: int) -> dict[str, Any]:
    """benchmarks/dashboard.py with `runs` runs of `n_preds` predictions; its slowest interaction."""
    cmd = [*_python(), str(ROOT / "benchmarks" / "dashboard.py"), "--runs", str(runs), "--preds", str(n_preds),
           "--repeat", "1"]
    res = run_measured(cmd, _env(folder / "dash-artifacts"), folder, "dashboard")
    found = re.search(r"slowest interaction: ([0-9.]+) s", res["stdout"])
    out: dict[str, Any] = {"dashboard_rc": res["rc"], "dashboard_slowest_s": float(found.group(1)) if found else None}
    if not found:
        out["dashboard_error"] = (res["stdout"] + res["stderr_tail"])[-2000:]
    return out


def measure(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"n": n}
    cmd = [*_python(), __file__, "--worker", "build", "--n", str(n), "--global-dim", str(args.global_dim),
           "--folder", str(folder)]
    res = run_measured(cmd, _env(folder / "artifacts"), folder, "build")
    if res["rc"] != 0:
        row["error"] = "build failed: " + res["stderr_tail"]
        return row
    built = json.loads(res["stdout"].strip().splitlines()[-1])
    row.update({"store_mb": built["store_mb"], "build_s": built["build_s"], "build_peak_rss_mb": res["peak_rss_mb"]})
    log.info("N=%d: store %.0f MB built in %.1f s", n, built["store_mb"], built["build_s"])
    tr, run = train(folder, built, args.train_steps, f"scale{n}")
    row["train"] = tr
    log.info("N=%d: train %s", n, {k: v for k, v in tr.items() if k != "error"})
    if "eval" not in args.skip:
        if run is None and args.train_steps:
            log.info("N=%d: training one full epoch for the evaluation run", n)
            full, run = train(folder, built, 0, f"scale{n}-eval")
            row["eval_run_train"] = full
        if run is not None:
            row.update(evaluate(folder, run, "meteor" not in args.skip))
            log.info("N=%d: evaluate %.1f s", n, row["eval_wall_s"])
        else:
            row["eval_error"] = "no finished run to evaluate"
    if "dashboard" not in args.skip:
        n_test = (row.get("parts") or {}).get("n_test") or max(1, n // 10)
        row.update(dashboard(folder, int(n_test), args.dashboard_runs))
    return row


# ---------------------------------------------------------------- report

def _f(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| N | store MB | train pairs/s | train peak RSS MB (private + mapped store pages) | epoch s "
            "| decode img/s | test imgs | evaluate s "
            "(no METEOR) | eval peak RSS MB | decode / metrics / bootstrap / baselines s | dominant | METEOR s "
            "| dashboard slowest s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        tr, p = r.get("train") or {}, r.get("parts") or {}
        split = {k: p.get(f"{k}_s") for k in ("decode", "metrics", "bootstrap", "baselines")}
        timings = r.get("eval_timings") or {}
        dominant = max(timings, key=timings.get) if timings else \
            max((k for k in split if split[k] is not None), key=lambda k: split[k], default="-")
        if timings:
            dominant += f" ({timings[dominant]:.0f} of {sum(timings.values()):.0f} s)"
        epoch = _f(tr.get("epoch_s"))
        if tr.get("epoch_basis", "").startswith("extrapolated"):
            epoch += " (extrapolated)"
        lines.append(
            f"| {r['n']} | {_f(r.get('store_mb'), 0)} | {_f(tr.get('pairs_per_s'))} | {_f(tr.get('peak_rss_mb'), 0)} "
            f"({_f(tr.get('peak_anon_mb'), 0)} + {_f(tr.get('peak_file_mb'), 0)}) "
            f"| {epoch} | {_f(p.get('decode_img_s'))} | {p.get('n_test', '-')} | {_f(r.get('eval_wall_s'))} "
            f"| {_f(r.get('eval_peak_rss_mb'), 0)} | {' / '.join(_f(v, 2) for v in split.values())} | {dominant} "
            f"| {_f(p.get('meteor_s'))} | {_f(r.get('dashboard_slowest_s'), 2)} |")
    return "\n".join(lines)


def goals(rows: list[dict[str, Any]]) -> list[str]:
    ok = [r for r in rows if (r.get("train") or {}).get("pairs_per_s")]
    out = []
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        rss = b["train"]["peak_rss_mb"] / a["train"]["peak_rss_mb"]
        pps = b["train"]["pairs_per_s"] / a["train"]["pairs_per_s"]
        out.append(f"train peak RSS N={b['n']} / N={a['n']}: {rss:.2f}x (goal <= 1.3x) "
                   f"{'OK' if rss <= 1.3 else 'MISSED'} (RSS counts the store pages the memmap has touched)")
        if a["train"].get("peak_anon_mb") and b["train"].get("peak_anon_mb"):
            anon = b["train"]["peak_anon_mb"] / a["train"]["peak_anon_mb"]
            out.append(f"train peak private memory (RssAnon) N={b['n']} / N={a['n']}: {anon:.2f}x "
                       f"({a['train']['peak_anon_mb']:.0f} -> {b['train']['peak_anon_mb']:.0f} MB; goal <= 1.3x) "
                       f"{'OK' if anon <= 1.3 else 'MISSED'}")
        out.append(f"train pairs/s N={b['n']} / N={a['n']}: {pps:.2f}x (goal >= 0.9x) "
                   f"{'OK' if pps >= 0.9 else 'MISSED'}")
    evals = [r for r in rows if r.get("eval_wall_s") and (r.get("parts") or {}).get("n_test")]
    if evals:
        r = max(evals, key=lambda x: x["parts"]["n_test"])
        n_test, wall = r["parts"]["n_test"], r["eval_wall_s"]
        near = n_test >= 4900  # a 10% split of 50,000 with groups: 4,999 images
        basis = f"measured on {n_test} test images" if near else (
            f"extrapolated linearly from {n_test} test images, fixed start-up costs scaled too: an over-estimate")
        est = wall if near else wall * 5000 / n_test
        out.append(f"evaluate 5,000 test images, METEOR skipped: {est:.0f} s ({basis}; goal < 600 s) "
                   f"{'OK' if est < 600 else 'MISSED'}")
    dash = [r["dashboard_slowest_s"] for r in rows if r.get("dashboard_slowest_s") is not None]
    if dash:
        worst = max(dash)
        out.append(f"slowest dashboard interaction: {worst:.2f} s (goal < 2 s) {'OK' if worst < 2 else 'MISSED'}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000,50000", help="comma-separated image counts")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write every measurement as JSON")
    parser.add_argument("--train-steps", type=int, default=0,
                        help="time this many training steps then stop (epoch time extrapolated); 0: one full epoch")
    parser.add_argument("--global-dim", type=int, default=4096, help="global feature size (4096: VGG16 fc2)")
    parser.add_argument("--workdir", type=Path, help="where datasets, stores and runs go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--skip", default="", help="comma-separated: eval, meteor, dashboard")
    parser.add_argument("--dashboard-runs", type=int, default=10)
    parser.add_argument("--worker", choices=["build", "eval-parts"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-meteor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.worker == "build":
        print(json.dumps(build(args.folder, args.n, args.global_dim)))
        return 0
    if args.worker == "eval-parts":
        print(json.dumps(eval_parts(args.run, not args.no_meteor)))
        return 0
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="medcap-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            rows.append(measure(n, args, work))
            if args.out:
                from medcap.base.io import write_json

                write_json(args.out, {"sizes": sizes, "train_steps": args.train_steps,
                                      "global_dim": args.global_dim, "rows": rows})
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    cap = f"{args.train_steps} timed steps, epoch extrapolated" if args.train_steps else "one full epoch"
    print(f"random float16 features (global {args.global_dim}, grid 7x7x512), Model-80 (batch 64), training: {cap}")
    print(table(rows))
    for line in goals(rows):
        print(line)
    for r in rows:
        for key in ("error", "eval_error", "parts_error", "dashboard_error"):
            if r.get(key):
                print(f"N={r['n']} {key}: {r[key][-500:]}")
        if (r.get("train") or {}).get("error"):
            print(f"N={r['n']} train error: {r['train']['error'][-500:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
