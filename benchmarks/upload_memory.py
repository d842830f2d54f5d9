"""Benchmark: the dashboard server's memory while users upload a 9000 x 9000 JPEG to Caption an image.

    python benchmarks/upload_memory.py [--rev REV] [--concurrent 4] [--json OUT]

Generates the issue's upload (a 9000 x 9000 JPEG of smooth colour noise at quality 85, ~1.6 MB, seeded),
starts `streamlit run streamlit_app.py` on 127.0.0.1 against an empty artifacts folder and the committed
example bundle (its runs caption uploads; VGG16 weights from $MEDCAP_CACHE), and drives Debian's Chromium
(Playwright) on the Caption page. The server's resident memory (VmRSS of its process, sampled every 20 ms)
is reported:
- idle: after a warm-up upload of a small PNG (TensorFlow and the run's model loaded, a caption shown);
- one request: the peak while one tab uploads the big JPEG and its caption is drawn, above idle;
- `--concurrent` tabs uploading it at once: the peak above idle;
- after: the RSS 5 s and 20 s after the last caption (memory handed back or not).
The acceptance of issue 22: one request < 300 MB above idle, four at once < 1 GB above idle.

`--rev REV` serves a clone of that commit instead of this checkout (e.g. the code before the fix).
Needs /usr/bin/chromium and playwright. Prints one line per figure, and JSON with --json.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
UPLOADER = '[data-testid="stFileUploaderDropzoneInput"]'
MB = 2**20


def big_jpeg(side: int = 9000, seed: int = 0) -> bytes:
    """The issue's upload: smooth colour noise (12 x 12 control points, bicubic) at JPEG quality 85."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=85,
                                                                                 optimize=True)
    return buf.getvalue()


def small_png() -> bytes:
    """A 256 x 256 phantom for the warm-up."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (256, 256), 20)
    ImageDraw.Draw(img).ellipse((60, 60, 200, 200), fill=180)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class RssSampler:
    """VmRSS of one process every `interval` s in a thread; `mark()` starts a window whose max `peak()` gives."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.now = 0
        self._peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._read()
            except OSError:
                return
            with self._lock:
                self.now = rss
                self._peak = max(self._peak, rss)
            time.sleep(self.interval)

    def mark(self) -> None:
        with self._lock:
            self._peak = self.now

    def peak(self) -> int:
        with self._lock:
            return self._peak

    def settled(self, seconds: float = 3.0) -> int:
        """The median RSS over `seconds`."""
        values = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            values.append(self.now)
            time.sleep(0.1)
        return sorted(values)[len(values) // 2]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(src: Path, artifacts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDCAP_") and k != "PYTHONPATH"}
    env.update(MEDCAP_ARTIFACTS=str(artifacts), MEDCAP_EXAMPLES=str(src / "examples" / "demo"),
               MEDCAP_DATA=str(artifacts))
    if os.environ.get("MEDCAP_CACHE"):
        env["MEDCAP_CACHE"] = os.environ["MEDCAP_CACHE"]
    port = _port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=src, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115 - lives with the server
    )  # fmt: skip
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() - start > 120:
                raise RuntimeError(f"streamlit did not start; see {log}") from None
            time.sleep(0.2)


def _open_caption_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(url + "Caption_an_image", wait_until="domcontentloaded")
    page.locator(UPLOADER).wait_for(state="attached", timeout=120_000)
    return page


def _upload(page: Any, name: str, data: bytes, mime: str) -> None:
    page.locator(UPLOADER).set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def _captioned(page: Any, timeout_ms: int = 600_000) -> str:
    """Wait for the caption (or an error box) of the last upload; return what the page says."""
    done = page.locator('[data-testid="stCaptionContainer"]', has_text="log-probability").or_(
        page.locator('[data-testid="stAlertContentError"]'))
    done.first.wait_for(state="visible", timeout=timeout_ms)
    page.get_by_role("button", name="Stop").wait_for(state="hidden", timeout=timeout_ms)
    return done.first.inner_text()


def measure(src: Path, concurrent: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    data = big_jpeg()
    out: dict[str, Any] = {"served": str(src), "upload_bytes": len(data), "upload_size": "9000 x 9000 JPEG q85"}
    with tempfile.TemporaryDirectory(prefix="medcap-upload-mem-") as tmp:
        artifacts = Path(tmp) / "artifacts"
        artifacts.mkdir()
        proc, url = _serve(src, artifacts, Path(tmp) / "streamlit.log")
        sampler = RssSampler(proc.pid)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                warm = _open_caption_page(browser, url)
                _upload(warm, "phantom.png", small_png(), "image/png")
                out["warm_up_says"] = _captioned(warm)[:120]
                warm.close()
                idle = sampler.settled(3.0)
                out["idle_mb"] = idle / MB

                page = _open_caption_page(browser, url)
                sampler.mark()
                start = time.monotonic()
                _upload(page, "big9000.jpg", data, "image/jpeg")
                out["one_request_says"] = _captioned(page)[:160]
                out["one_request_seconds"] = round(time.monotonic() - start, 1)
                time.sleep(1.0)
                out["one_request_peak_above_idle_mb"] = (sampler.peak() - idle) / MB
                page.close()
                out["after_one_mb"] = sampler.settled(3.0) / MB

                pages = [_open_caption_page(browser, url) for _ in range(concurrent)]
                sampler.mark()
                start = time.monotonic()
                for page in pages:  # all uploads are sent before any caption is awaited
                    _upload(page, "big9000.jpg", data, "image/jpeg")
                said = [_captioned(page) for page in pages]
                out["concurrent"] = concurrent
                out["concurrent_seconds"] = round(time.monotonic() - start, 1)
                out["concurrent_captioned"] = sum("log-probability" in s for s in said)
                time.sleep(1.0)
                out["concurrent_peak_above_idle_mb"] = (sampler.peak() - idle) / MB
                for page in pages:
                    page.close()
                time.sleep(4.0)
                out["after_5s_above_idle_mb"] = (sampler.now - idle) / MB
                time.sleep(15.0)
                out["after_20s_above_idle_mb"] = (sampler.now - idle) / MB
                browser.close()
        finally:
            sampler.stop()
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", help="serve a clone of this commit instead of this checkout")
    ap.add_argument("--concurrent", type=int, default=4, help="tabs uploading at once (default 4)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="medcap-rev-") as tmp:
        src = ROOT
        if args.rev:
            src = Path(tmp) / "medcap"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(src)], check=True)
            subprocess.run(["git", "-C", str(src), "checkout", "-q", args.rev], check=True)
        out = measure(src, args.concurrent)
    out["rev"] = args.rev or "working tree"
    for key, value in out.items():
        print(f"{key:34} {value:.0f}" if isinstance(value, float) else f"{key:34} {value}")
    if args.json:
        from medcap.base.io import write_json

        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
