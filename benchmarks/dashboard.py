"""Dashboard interactivity: 10 runs x 10,000 predictions each; time one interaction per page (AppTest).

    .venv/bin/python -m benchmarks.dashboard [--runs 10] [--preds 10000] [--repeat 3]

Builds the fixture under a temporary MEDCAP_ARTIFACTS, runs each page once (cold: caches filled),
then times interactions that re-run the page script (warm caches, as a user clicking). Goal < 2 s.
Run it as a module from the project root: it reuses the test fixtures (`tests.support.dashboard_fixtures`).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(artifacts: Path, n_runs: int, n_preds: int) -> list[str]:
    """n_runs finished, evaluated runs (alternating presets) with n_preds predictions each."""
    from tests.support.dashboard_fixtures import make_run

    images = artifacts / "fixture-images"
    ids = []
    for i in range(n_runs):
        preset = "model-80" if i % 2 == 0 else "model-70"
        run_id = f"20250101-{100000 + i:06d}-{preset}-{i:06x}"
        make_run(artifacts / "runs", run_id, preset, n_preds=n_preds, images_dir=images, bleu1=0.25 + 0.01 * i)
        ids.append(run_id)
    return ids


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--preds", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp) / "artifacts"
        os.environ["MEDCAP_ARTIFACTS"] = str(artifacts)
        t0 = time.perf_counter()
        ids = build(artifacts, args.runs, args.preds)
        print(f"fixture: {args.runs} runs x {args.preds} predictions built in {time.perf_counter() - t0:.1f} s")

        def page(name: str) -> AppTest:
            return AppTest.from_file(str(ROOT / name), default_timeout=120)

        results: list[tuple[str, float, float]] = []

        def bench(label: str, at: AppTest, interact) -> None:
            cold = timed(at.run)
            assert not at.exception, [e.value for e in at.exception]
            warm = [timed(lambda: interact(at)) for _ in range(args.repeat)]
            assert not at.exception, [e.value for e in at.exception]
            results.append((label, cold, statistics.median(warm)))

        bench("home: rerun", page("streamlit_app.py"), lambda at: at.run())
        per_image = page("app_pages/4_Per-image_BLEU.py")
        toggle = iter([False, True] * args.repeat)
        bench("per-image: sort order", per_image, lambda at: at.toggle(key="pi_order").set_value(next(toggle)).run())
        picks = iter(ids[1:] + ids[:1])
        bench("per-image: switch run", per_image, lambda at: at.selectbox(key="pi_run").set_value(next(picks)).run())
        compare = page("app_pages/3_Compare.py")
        pairs = iter([[ids[0], ids[1]], [ids[2], ids[3]], [ids[4], ids[5]]] * args.repeat)
        bench("compare: pick runs", compare, lambda at: at.multiselect(key="cmp").set_value(next(pairs)).run())
        attention = page("app_pages/5_Attention.py")
        words = iter(["2. ct", "3. shows", "4. a"] * args.repeat)
        bench(
            "attention: pick word", attention, lambda at: at.select_slider(key="att_word").set_value(next(words)).run()
        )
        bench("train: rerun", page("app_pages/2_Train.py"), lambda at: at.run())

    print(f"{'interaction':28s} {'first load (s)':>15s} {'interaction (s)':>16s}")
    for label, cold, warm in results:
        flag = "" if warm < 2.0 else "  > 2 s goal"
        print(f"{label:28s} {cold:15.2f} {warm:16.2f}{flag}")
    worst = max(w for _, _, w in results)
    print(f"slowest interaction: {worst:.2f} s (goal < 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
