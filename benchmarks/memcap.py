"""Training under a hard memory limit: are the feature store's mapped pages really reclaimable?

    sudo .venv/bin/python benchmarks/memcap.py --folder W/n50000 --limit-mb 1600 [--steps 1000]

`W/n50000` is a folder `benchmarks/scale.py --keep --workdir W` left (its dataset and random-feature
store). Runs `python -m medcap train --preset model-80` on it inside a cgroup (v1 memory controller, or
v2) whose limit is `--limit-mb`, for `--steps` timed steps (then SIGTERM), and prints pairs/s, the
process's peak RSS and private memory, the cgroup's peak usage and whether the kernel had to kill
anything. Without the limit the same steps map most of the store (RSS grows towards the store size);
a run that keeps its speed under a limit well below that shows the pages are page cache, not memory
the process holds. Linux and root only (it creates a cgroup).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path

import scale  # benchmarks/scale.py: `python benchmarks/memcap.py` puts this folder on sys.path

CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup/unified")


def make_cgroup(limit_mb: int) -> tuple[Path, Path, Path]:
    """(cgroup folder, peak-usage file, procs file) of a fresh cgroup limited to `limit_mb`."""
    name = f"medcap-memcap-{uuid.uuid4().hex[:8]}"
    if CGROUP_V1.is_dir():
        group = CGROUP_V1 / name
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * scale.MB))
        return group, group / "memory.max_usage_in_bytes", group / "cgroup.procs"
    group = CGROUP_V2 / name
    group.mkdir()
    (group / "memory.max").write_text(str(limit_mb * scale.MB))
    return group, group / "memory.peak", group / "cgroup.procs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="a scale.py size folder (n50000)")
    parser.add_argument("--limit-mb", type=int, default=1600)
    parser.add_argument("--steps", type=int, default=1000, help="timed training steps before SIGTERM")
    args = parser.parse_args(argv)
    store = next((args.folder / "artifacts" / "features").iterdir())
    built = {"spec": f"csv:{args.folder / 'data' / 'captions.csv'}", "store": str(store)}
    group, peak_file, procs = make_cgroup(args.limit_mb)
    try:
        # the training process joins the cgroup before it starts (preexec in run_measured's Popen)
        result, _ = scale.train(args.folder, built, args.steps, f"memcap{args.limit_mb}",
                                preexec=lambda: procs.write_text(str(os.getpid())))
        peak = int(peak_file.read_text()) / scale.MB
    finally:
        os.rmdir(group)
    out = {"limit_mb": args.limit_mb, "cgroup_peak_mb": round(peak), "steps": result.get("timed_steps"),
           "pairs_per_s": result.get("pairs_per_s"), "peak_rss_mb": round(result["peak_rss_mb"]),
           "peak_private_mb": round(result["peak_anon_mb"]), "peak_mapped_mb": round(result["peak_file_mb"]),
           "killed": result["rc"] not in (0, 143, -15), "rc": result["rc"]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
