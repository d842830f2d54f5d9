"""Benchmark: a fresh clone's first results, the way a new user meets them, in a real browser.

    python benchmarks/first_screen.py [--shots DIR] [--keep]

Clones the project's committed HEAD into a temporary folder (so `artifacts/` is empty and only the
committed example bundle is there), starts `streamlit run streamlit_app.py` in it with this
interpreter, opens http://.../Compare in Debian's Chromium (Playwright) and measures the seconds
from the server's start to the Compare page showing the two evaluated example runs' metrics. Then
visits every page and saves a full-page screenshot of each to `--shots` (default
`artifacts/screenshots/fresh-clone/` of this checkout). Needs /usr/bin/chromium and playwright.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [  # url path, screenshot name, text visible once rendered
    ("", "home", "Explore now"),
    ("Data", "data", "Load dataset"),
    ("Train", "train", "example run of the pre-built bundle"),
    ("Compare", "compare", "Next-word classification"),
    ("Per-image_BLEU", "per_image_bleu", "Per-image BLEU-1"),
    ("Attention", "attention", "Generated:"),
    ("Caption_an_image", "caption_an_image", "PNG or JPEG image"),
]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", type=Path, default=ROOT / "artifacts" / "screenshots" / "fresh-clone")
    args = ap.parse_args()
    args.shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medcap-fresh-clone-") as tmp:
        clone = Path(tmp) / "medcap"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        assert not (clone / "artifacts" / "runs").exists()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDCAP_") and k != "PYTHONPATH"}  # as a user
        port = _port()
        url = f"http://127.0.0.1:{port}/"
        log = open(Path(tmp) / "streamlit.log", "wb")  # noqa: SIM115 - closed below
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            while True:
                try:
                    with urllib.request.urlopen(url + "_stcore/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() - start > 120:
                        raise RuntimeError("streamlit did not start") from None
                    time.sleep(0.2)
            served = time.monotonic() - start
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 2200})
                page.goto(url + "Compare", wait_until="domcontentloaded")
                table = page.locator('[data-testid="stDataFrame"]').first
                table.wait_for(state="visible", timeout=120_000)
                page.get_by_text("Next-word classification", exact=False).first.wait_for(timeout=120_000)
                compare_s = time.monotonic() - start
                body = page.inner_text("body")
                both = "example-model-80" in body and "example-model-70" in body
                for path, name, text in PAGES:
                    page.goto(url + path, wait_until="domcontentloaded")
                    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=60_000)
                    page.get_by_role("button", name="Stop").wait_for(state="hidden", timeout=60_000)
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(args.shots / f"{name}.png"), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
    print(f"fresh clone ({os.cpu_count()} CPUs): server answering after {served:.1f} s; Compare showing "
          f"{'both example runs' if both else 'NOT both example runs'} after {compare_s:.1f} s")
    print(f"screenshots: {args.shots}")
    return 0 if both else 1


if __name__ == "__main__":
    raise SystemExit(main())
