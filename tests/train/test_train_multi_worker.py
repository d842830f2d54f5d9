"""Multi-worker training (MultiWorkerMirroredStrategy from TF_CONFIG): replica slices of each global batch,
two worker processes on localhost against one process, chief-only files, resume after a worker is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medcap.config import flag_for
from medcap.runs.index import read_history, read_status
from tests.support.tiny import make_tiny, tiny_config

ROOT = Path(__file__).resolve().parents[2]
HISTORY = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]


# ---------------------------------------------------------------- the sharded pipeline (no cluster)

def _batches(ds) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x["global"].numpy(), y.numpy()) for x, y in ds]


@pytest.mark.parametrize("n_pairs_target", [0, 1])
def test_multi_worker_replica_slices_make_up_the_single_process_batches(n_pairs_target: int) -> None:
    from medcap.model.pipeline import ReplicaSlice, global_batches, make_pairs_dataset

    rng = np.random.default_rng(0)
    # 10 captions of 2 words = 30 pairs: batch 8 leaves 6 (kept); with 29 pairs the rest is 5
    tokens = [[4 + i % 5, 5 + i % 3] for i in range(10)]
    if n_pairs_target:
        tokens[-1] = [9]  # 29 pairs
    glob = np.arange(10, dtype=np.float16)[:, None] * np.ones((1, 4), np.float16)  # row i -> value i
    grid = rng.random((10, 7, 7, 512)).astype(np.float16)
    rows = np.arange(10)
    kw = dict(batch_size=8, shuffle=True, seed=5, max_len=4)
    whole = _batches(make_pairs_dataset(glob, grid, rows, tokens, **kw))
    assert len(whole) == global_batches(30 - n_pairs_target, 8) == 4
    # two workers of one replica each: worker w's batch i is slice w of global batch i
    parts = [_batches(make_pairs_dataset(glob, grid, rows, tokens, replicas=ReplicaSlice(w, 1, 2), **kw))
             for w in range(2)]
    assert [len(p) for p in parts] == [4, 4]
    for i, (g, y) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][i][0], parts[1][i][0]]), g)
        np.testing.assert_array_equal(np.concatenate([parts[0][i][1], parts[1][i][1]]), y)
        assert abs(len(parts[0][i][1]) - len(parts[1][i][1])) <= 1
    # one worker with 2 local replicas (2 GPUs): the slices come one after the other
    local = _batches(make_pairs_dataset(glob, grid, rows, tokens, replicas=ReplicaSlice(0, 2, 2), **kw))
    assert len(local) == 8
    for i, (_, y) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([local[2 * i][1], local[2 * i + 1][1]]), y)


def test_multi_worker_drops_a_last_batch_smaller_than_the_replicas() -> None:
    from medcap.model.pipeline import ReplicaSlice, global_batches, make_pairs_dataset

    tokens = [[4, 5]] * 3  # 9 pairs, batch 8: a last batch of 1 pair cannot feed 2 replicas
    glob, grid = np.ones((3, 4), np.float16), np.zeros((3, 7, 7, 512), np.float16)
    assert global_batches(9, 8, 1) == 2 and global_batches(9, 8, 2) == 1
    ds = make_pairs_dataset(glob, grid, np.arange(3), tokens, batch_size=8, replicas=ReplicaSlice(1, 1, 2))
    assert [len(y) for _, y in _batches(ds)] == [4]
    with pytest.raises(ValueError, match="replica slice"):
        make_pairs_dataset(glob, grid, np.arange(3), tokens, batch_size=8, replicas=ReplicaSlice(2, 1, 2))


def test_multi_worker_needs_tf_config() -> None:
    from medcap.train.multi_worker import start_cluster

    with pytest.raises(ValueError, match="TF_CONFIG environment variable is not set"):
        start_cluster({})


def test_multi_worker_chief_is_the_chief_task_or_worker_0() -> None:
    from medcap.base.cluster import read_tf_config

    def task(cluster: dict, kind: str, index: int):
        return read_tf_config({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})})

    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert [task(workers, "worker", i).is_chief for i in range(3)] == [True, False, False]
    assert task(workers, "worker", 2).rank == 2 and task(workers, "worker", 2).size == 3
    with_chief = {"chief": ["z:1"], **workers}
    assert task(with_chief, "chief", 0).is_chief and task(with_chief, "chief", 0).rank == 0
    assert not task(with_chief, "worker", 0).is_chief and task(with_chief, "worker", 0).rank == 1
    assert read_tf_config({}) is None and read_tf_config({"TF_CONFIG": " "}) is None
    with pytest.raises(ValueError, match="not a chief or worker"):
        task(workers, "evaluator", 0)


def test_train_run_dir_refuses_a_folder_holding_other_settings(tmp_path: Path, caplog) -> None:
    from medcap.base.io import write_json
    from medcap.cli import main

    run = tmp_path / "run"
    run.mkdir()
    data = tmp_path / "x.csv"  # arguments are checked first: the dataset must exist
    data.write_text("image_path,caption\n")
    saved = tiny_config(f"csv:{data}", tmp_path, epochs=3)
    write_json(run / "config.json", {"run": saved.to_dict()})
    args = ["train", *_cli_flags(tiny_config(f"csv:{data}", tmp_path, epochs=5)), "--run-dir", str(run)]
    assert main(args) == 2  # nothing trained, nothing written
    assert "holds a run with other settings (epochs: 3 there, 5 given)" in caplog.text
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    assert main(["train", *_cli_flags(saved), "--run-dir", str(tmp_path / "junk")]) == 2
    assert "the folder is not empty and holds no run" in caplog.text


# ---------------------------------------------------------------- two worker processes on localhost

def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _cli_flags(cfg) -> list[str]:
    out = []
    for key, value in cfg.to_dict().items():
        if value is None or key in ("name",):
            continue
        if isinstance(value, bool):
            out.append(flag_for(key) if value else "--no-" + flag_for(key)[2:])
        else:
            out += [flag_for(key), str(value)]
    return out


def _start_workers(cfg, run_dir: Path, ports: list[int], artifacts: Path, scratch: Path,
                   log_dir: Path) -> list[subprocess.Popen]:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(len(ports)):
        env = {**os.environ, "MEDCAP_ARTIFACTS": str(artifacts), "TF_CPP_MIN_LOG_LEVEL": "2",
               "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch), "MEDCAP_COLLECTIVE_TIMEOUT_S": "20",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        cmd = [sys.executable, "-m", "medcap", "train", *_cli_flags(cfg), "--run-dir", str(run_dir), "--json"]
        log = open(log_dir / f"worker{i}.log", "ab")  # noqa: SIM115 (closed with the process below)
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def _wait(procs: list[subprocess.Popen], log_dir: Path, timeout: float = 240.0) -> list[int]:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            logs = "\n".join((log_dir / f"worker{i}.log").read_text()[-1500:] for i in range(len(procs)))
            pytest.fail(f"workers did not finish in {timeout:.0f} s:\n{logs}")
    return [p.returncode for p in procs]


@pytest.mark.slow
def test_multi_worker_two_processes_match_one_process_and_resume_after_a_worker_is_killed(
        tmp_path: Path, artifacts: Path) -> None:
    from medcap.train import train_run

    spec, store = make_tiny(tmp_path / "data", n=60)
    # dropout 0: the same global batches and Adam steps must give the same losses, up to float summation order;
    # batch 12: 369 training pairs leave a last batch of 9 (a last batch of 1 pair would be dropped on 2 workers)
    cfg = tiny_config(spec, store, epochs=4, batch_size=12, dropout=0.0, strategy="multi_worker")
    run, scratch, logs = tmp_path / "run", tmp_path / "scratch", tmp_path / "logs"
    scratch.mkdir()
    logs.mkdir()
    ports = _free_ports(2)

    # 1. two workers; worker 1 is killed once the chief has finished an epoch
    procs = _start_workers(cfg, run, ports, artifacts, scratch, logs)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (not (run / "history.csv").is_file() or len(read_history(run)) < 1):
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    assert all(p.poll() is None for p in procs), (logs / "worker0.log").read_text()[-3000:]
    procs[1].send_signal(signal.SIGKILL)
    try:  # the chief's next all-reduce cannot complete: it fails (collective timeout 20 s) ...
        procs[0].wait(timeout=90)
    except subprocess.TimeoutExpired:  # ... or a scheduler would stop it: do so
        procs[0].kill()
        procs[0].wait()
    done_at_kill = len(read_history(run))
    assert 1 <= done_at_kill < 4, "the kill must land mid-run"
    assert read_status(run)["state"] in ("failed", "running")

    # 2. the same command on both workers resumes from the chief's last finished epoch
    procs = _start_workers(cfg, run, _free_ports(2), artifacts, scratch, logs)
    codes = _wait(procs, logs)
    assert codes == [0, 0], (logs / "worker0.log").read_text()[-3000:] + (logs / "worker1.log").read_text()[-3000:]
    assert read_status(run)["state"] == "finished"
    resumed = read_history(run)
    assert resumed["epoch"].tolist() == [1, 2, 3, 4]  # each epoch once
    log = (run / "train.log").read_text()
    assert "MultiWorkerMirroredStrategy (2 replicas)" in log and f"resumed after epoch {done_at_kill}" in log

    # chief-only files: worker 1 wrote nothing in the run, and its scratch folder is gone
    assert not list(scratch.glob("medcap-worker-*"))
    assert {p.name for p in run.iterdir()} >= {"config.json", "history.csv", "status.json", "weights"}

    # the same command once more: the chief tells every worker the run is finished; nothing changes
    before = (run / "history.csv").read_bytes()
    assert _wait(_start_workers(cfg, run, _free_ports(2), artifacts, scratch, logs), logs) == [0, 0]
    assert (run / "history.csv").read_bytes() == before and read_status(run)["state"] == "finished"

    # 3. one process, the same global batch: the same loss curve
    single = read_history(train_run(tiny_config(spec, store, epochs=4, batch_size=12, dropout=0.0)))
    a, b = resumed[HISTORY].to_numpy(), single[HISTORY].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # measured: max difference 3.3e-7
    assert resumed["loss"].iloc[-1] < resumed["loss"].iloc[0]  # it learned
