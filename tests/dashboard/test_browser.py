"""Drive the real dashboard in Debian's Chromium: every page renders its content with no error box.

Screenshots go to `artifacts/screenshots/<page>.png` under the project root (or $MEDCAP_SCREENSHOTS).
Set MEDCAP_BROWSER_ARTIFACTS to point the dashboard at existing artifacts (e.g. a real demo)
instead of the hand-written fixture runs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT
from tests.support.dashboard_fixtures import full_state

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# url path, screenshot name, text that must be visible once the page has rendered, tables, charts
PAGES = [
    ("", "home", "medcap · medical image captioning", 4, 0),
    ("Data", "data", "Load dataset", 0, 0),
    ("Train", "train", "Launch a run", 1, 0),
    ("Compare", "compare", "Caption metrics (95% bootstrap CI", 3, 3),
    ("Per-image_BLEU", "per_image_bleu", "Per-image BLEU-1", 2, 1),
    ("Attention", "attention", "Generated:", 0, 2),
    ("Caption_an_image", "caption_an_image", "PNG or JPEG image", 0, 0),
    ("Study", "study", "case-disjoint folds", 0, 0),
]
TABLE = '[data-testid="stDataFrame"]'
CHART = '[data-testid="stPlotlyChart"]'
ERROR_SELECTORS = (
    '[data-testid="stException"], [data-testid="stAlertContentError"], [data-testid="stAlertContentWarning"]'
)

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout:.0f} s")


@contextlib.contextmanager
def _serve(artifacts: Path, log_path: Path, **extra_env: str) -> Iterator[str]:
    """`streamlit run streamlit_app.py` headless on a free port, against `artifacts`; yields its URL."""
    port = _free_port()
    env = dict(os.environ, MEDCAP_ARTIFACTS=str(artifacts), **extra_env)
    log = open(log_path, "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _browser_ready() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium (apt-get install chromium chromium-driver)")
    pytest.importorskip("playwright.sync_api", reason="playwright Python package not installed")


def _fixture_artifacts(artifacts: Path) -> Path:
    """The artifacts the dashboard is pointed at: $MEDCAP_BROWSER_ARTIFACTS, else the fixture runs."""
    root = os.environ.get("MEDCAP_BROWSER_ARTIFACTS")
    if root:
        return Path(root)
    full_state(artifacts)
    return artifacts


@pytest.fixture
def server(artifacts: Path, tmp_path: Path) -> Iterator[str]:
    """One dashboard server for a whole test, against fixture (or given) artifacts."""
    _browser_ready()
    with _serve(_fixture_artifacts(artifacts), tmp_path / "streamlit.log") as url:
        yield url


def _upload_a_bad_file(page: Any, shots: Path) -> None:
    """A PNG that is not an image gets a clear error box naming the file, never a traceback."""
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "not-an-image.png", "mimeType": "image/png", "buffer": b"this is not a PNG"}]
    )
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for(state="visible", timeout=30_000)
    assert "not-an-image.png: not an image file PIL can read" in error.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "caption_an_image_bad_file.png"), full_page=True)


def _upload_an_oversized_image(page: Any, shots: Path, server: str) -> None:
    """A 13000 x 13000 PNG (a small file, 169 MP) gets a clear error box; the server stays up."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (13000, 13000)).save(buf, format="PNG")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "huge-scan.png", "mimeType": "image/png", "buffer": buf.getvalue()}]
    )
    error = page.locator('[data-testid="stAlertContentError"]', has_text="huge-scan.png")
    error.wait_for(state="visible", timeout=60_000)
    assert "image is too large (13000 x 13000" in error.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shots / "caption_an_image_oversized.png"), full_page=True)
    with urllib.request.urlopen(server + "_stcore/health", timeout=10) as resp:
        assert resp.status == 200  # the server is still up


def _type_a_path_outside_the_data_folders(page: Any, shots: Path) -> None:
    """`csv:/etc/passwd` on the Data page: the uniform refusal, and nothing of the file."""
    from medcap.data.roots import REFUSED_TEXT

    page.get_by_label("…or type a spec", exact=True).fill("csv:/etc/passwd")
    page.get_by_role("button", name="Load dataset").click()
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for(state="visible", timeout=30_000)
    assert REFUSED_TEXT in error.inner_text()
    body = page.inner_text("body")
    assert "root:" not in body and "/bin/" not in body and "Traceback" not in body
    page.screenshot(path=str(shots / "data_refused.png"), full_page=True)


def _caption_an_image(page: Any, shots: Path) -> None:
    """Upload a valid PNG to a real run: the caption, word probabilities and attention appear."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("L", (256, 256), 20)
    ImageDraw.Draw(img).ellipse((60, 60, 200, 200), fill=180)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "phantom.png", "mimeType": "image/png", "buffer": buf.getvalue()}]
    )
    page.get_by_text("log-probability", exact=False).first.wait_for(state="visible", timeout=240_000)
    page.get_by_role("button", name="Stop").wait_for(state="hidden", timeout=60_000)
    page.wait_for_timeout(800)
    page.screenshot(path=str(shots / "caption_an_image_result.png"), full_page=True)
    # the phantom is unlike any training image: a run with a feature store says so (a warning, not an error)
    assert page.locator(ERROR_SELECTORS).filter(has_not_text="is unlike the images").count() == 0


def test_every_page_renders_without_errors(server: str) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("MEDCAP_SCREENSHOTS") or PROJECT_ROOT / "artifacts" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    fixture_run = not os.environ.get("MEDCAP_BROWSER_ARTIFACTS")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            for path, name, text, tables, charts in PAGES:
                page.goto(server + path, wait_until="domcontentloaded")
                page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=30_000)
                for selector, n in ((TABLE, tables), (CHART, charts)):
                    if n:
                        page.locator(selector).nth(n - 1).wait_for(state="visible", timeout=30_000)
                page.get_by_role("button", name="Stop").wait_for(state="hidden", timeout=30_000)  # script done
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(800)  # let charts finish drawing before the screenshot
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                errors = page.locator(ERROR_SELECTORS)
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                assert "Traceback" not in page.inner_text("body"), name
                if name == "data":
                    _type_a_path_outside_the_data_folders(page, shots)
                if name == "caption_an_image":
                    _upload_a_bad_file(page, shots)
                    _upload_an_oversized_image(page, shots, server)
                    if not fixture_run:  # a real run: caption a real image end to end
                        _caption_an_image(page, shots)
                if fixture_run and name == "home":
                    body = page.inner_text("body")
                    assert "Table 2" in body and "medcap beside the paper" in body
                    assert page.locator(TABLE).count() == 4  # runs, 2 paper tables, medcap beside the paper
        finally:
            browser.close()


def _nav_titles(page: Any) -> list[str]:
    """The page names in the sidebar navigation (icon ligature text dropped)."""
    links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    links.first.wait_for(state="visible", timeout=30_000)
    return [link.inner_text().strip().splitlines()[-1].strip() for link in links.all()]


def test_a_deep_link_on_a_fresh_server_shows_the_apps_navigation(artifacts: Path, tmp_path: Path) -> None:
    """A page's URL opened FIRST on a freshly started server (a bookmark) gets the app's own sidebar.

    Home, Data and the last page (Study) each on their own fresh server: the router registers every
    page the same way, so three cover it at three server start-ups instead of eight.

    Streamlit lists a `pages/` folder by itself until the app's script has run once; the sidebar
    would then read "streamlit app" ... "ui" instead of the app's page names.
    """
    _browser_ready()
    from playwright.sync_api import sync_playwright

    root = _fixture_artifacts(artifacts)
    expected = ["Home", "Data", "Train", "Compare", "Per-image BLEU", "Attention", "Caption an image", "Study"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for path, name, text, _, _ in (PAGES[0], PAGES[1], PAGES[-1]):  # Home, Data, Study (the last)
                with _serve(root, tmp_path / f"streamlit-{name}.log") as url:
                    page = browser.new_page(viewport={"width": 1400, "height": 1200})
                    page.goto(url + path, wait_until="domcontentloaded")
                    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=30_000)
                    assert _nav_titles(page) == expected, f"/{path}"
                    page.close()
        finally:
            browser.close()


BUNDLE = PROJECT_ROOT / "examples" / "demo"
# url path, screenshot name, text visible once rendered: a fresh clone (empty artifacts, the bundle present)
BUNDLE_PAGES = [
    ("", "home", "Explore now"),
    ("Train", "train", "example run of the pre-built bundle"),
    ("Compare", "compare", "Next-word classification"),
    ("Per-image_BLEU", "per_image_bleu", "Per-image BLEU-1"),
    ("Attention", "attention", "Generated:"),
    ("Caption_an_image", "caption_an_image", "PNG or JPEG image"),
]


def test_a_fresh_clone_shows_the_example_runs_on_every_page(artifacts: Path, tmp_path: Path) -> None:
    """Empty artifacts + the committed example bundle: results everywhere, and an uploaded image gets a caption.

    Screenshots go to `<screenshots>/bundle/<page>.png`.
    """
    _browser_ready()
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip("examples/demo not present")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("MEDCAP_SCREENSHOTS") or PROJECT_ROOT / "artifacts" / "screenshots") / "bundle"
    shots.mkdir(parents=True, exist_ok=True)
    with _serve(artifacts, tmp_path / "streamlit.log", MEDCAP_EXAMPLES=str(BUNDLE)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            for path, name, text in BUNDLE_PAGES:
                page.goto(url + path, wait_until="domcontentloaded")
                page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=60_000)
                if name == "attention":  # similar cases from the bundle's own index, without a feature store
                    page.get_by_text("#1 · similarity", exact=False).first.wait_for(state="visible", timeout=60_000)
                page.get_by_role("button", name="Stop").wait_for(state="hidden", timeout=60_000)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(800)
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                errors = page.locator(ERROR_SELECTORS)
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                body = page.inner_text("body")
                assert "Traceback" not in body and "No evaluated runs yet" not in body, name
                assert "Similar cases are unavailable" not in body, name
                if name == "compare":
                    assert "model-80 (example)" in body and "model-70 (example)" in body
                if name == "caption_an_image":
                    _caption_an_image(page, shots)  # the example run's model on a new image, end to end
        finally:
            browser.close()
    assert not (artifacts / "runs").exists() or not any((artifacts / "runs").iterdir())  # the bundle stays read-only


def _download_text(page: Any, label: str) -> str:
    """Click a download button and return the downloaded file's text."""
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name=label).click()
    return Path(info.value.path()).read_text(encoding="utf-8")


def _settled(page: Any) -> None:
    page.get_by_role("button", name="Stop").wait_for(state="hidden", timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(800)


def test_the_cross_run_and_dataset_views(artifacts: Path, tmp_path: Path) -> None:
    """Run-vs-run table with CSV export, similar cases (Attention, Caption), the gallery and leakage figure."""
    _browser_ready()
    if os.environ.get("MEDCAP_BROWSER_ARTIFACTS"):
        pytest.skip("needs the fixture runs (known images and features)")
    from playwright.sync_api import sync_playwright

    from tests.support.dashboard_fixtures import FINISHED70_ID, with_similar_cases

    full_state(artifacts)
    data = with_similar_cases(artifacts)
    with_similar_cases(artifacts, FINISHED70_ID)  # the newest run, shown first
    shots = Path(os.environ.get("MEDCAP_SCREENSHOTS") or PROJECT_ROOT / "artifacts" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    exceptions = '[data-testid="stException"]'
    with _serve(artifacts, tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600}, accept_downloads=True)
            # run A vs run B: the older fixture evaluations lack per-image CIDEr and groups (a note, no error)
            page.goto(url + "Per-image_BLEU", wait_until="domcontentloaded")
            page.get_by_text("Run A vs run B, per image").first.wait_for(state="visible", timeout=30_000)
            page.locator(TABLE).nth(2).wait_for(state="visible", timeout=30_000)
            _settled(page)
            assert page.get_by_text("predictions.csv has no", exact=False).count() >= 2
            csv = _download_text(page, "Download the run-vs-run table as CSV")
            assert csv.splitlines()[0].startswith("image_id,reference,prediction_a,prediction_b,bleu1_a,bleu1_b,")
            assert len(csv.strip().splitlines()) == 7  # header + the 6 shared test images
            page.screenshot(path=str(shots / "per_image_run_vs_run.png"), full_page=True)
            assert page.locator(ERROR_SELECTORS).count() == 0

            # similar cases beside a test image's attention
            page.goto(url + "Attention", wait_until="domcontentloaded")
            page.get_by_text("Similar cases").first.wait_for(state="visible", timeout=30_000)
            try:
                page.get_by_text("#1 · similarity", exact=False).first.wait_for(state="visible", timeout=30_000)
            finally:
                page.screenshot(path=str(shots / "attention_similar_cases.png"), full_page=True)
            _settled(page)
            assert page.locator(ERROR_SELECTORS).count() == 0

            # caption a dataset image: its reference and similar cases (the fixture run has no weights)
            page.goto(url + "Caption_an_image", wait_until="domcontentloaded")
            page.get_by_text("An image of the run's dataset").first.click()
            page.get_by_text("Reference:", exact=False).first.wait_for(state="visible", timeout=30_000)
            page.get_by_text("#1 · similarity", exact=False).first.wait_for(state="visible", timeout=30_000)
            _settled(page)
            page.screenshot(path=str(shots / "caption_dataset_image.png"), full_page=True)
            assert page.locator(exceptions).count() == 0

            # the gallery and the leakage figure of a dataset
            page.goto(url + "Data", wait_until="domcontentloaded")
            page.get_by_label("…or type a spec", exact=True).fill(f"csv:{data / 'captions.csv'}")
            page.get_by_role("button", name="Load dataset").click()
            page.get_by_text("12 of 12 images match", exact=False).first.wait_for(state="visible", timeout=60_000)
            page.get_by_text("image-level vs group-level", exact=False).first.wait_for(state="visible",
                                                                                      timeout=30_000)
            _settled(page)
            csv = _download_text(page, "Download the filtered list as CSV")
            assert csv.splitlines()[0].startswith("image_id,caption,group,split,caption_words")
            assert len(csv.strip().splitlines()) == 13
            page.screenshot(path=str(shots / "data_gallery.png"), full_page=True)
            assert page.locator(ERROR_SELECTORS).count() == 0
            assert "Traceback" not in page.inner_text("body")
        finally:
            browser.close()


def test_a_bad_run_file_and_paths_outside_the_data_folders(artifacts: Path, tmp_path: Path) -> None:
    """Issue 22, items 1 and 3, in the browser: the newest run has a metrics.json whose model.bleu1 is a string,
    a config.json naming a dataset outside the data folders, and a predictions.csv whose worst image lies
    outside them. Every page still shows the other runs; that run is marked; nothing outside is shown."""
    _browser_ready()
    if os.environ.get("MEDCAP_BROWSER_ARTIFACTS"):
        pytest.skip("needs the fixture runs")
    import json

    import pandas as pd
    from playwright.sync_api import sync_playwright

    from tests.support.dashboard_fixtures import FINISHED70_ID, make_run, write_image

    full_state(artifacts)
    bad = "20250101-140000-model-80-ffffff"
    run = make_run(artifacts / "runs", bad, "model-80", images_dir=artifacts / "fixture-images")
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    metrics["model"]["bleu1"] = "high"
    (run / "eval" / "test" / "metrics.json").write_text(json.dumps(metrics))
    outside = tmp_path / "outside"
    write_image(outside / "secret0.png", seed=0)
    pd.DataFrame([{"image_id": "secret0", "image_path": "secret0.png", "caption": "private caption"}]).to_csv(
        outside / "captions.csv", index=False)
    config = json.loads((run / "config.json").read_text())
    config["run"]["dataset"] = f"csv:{outside / 'captions.csv'}"
    (run / "config.json").write_text(json.dumps(config))
    preds = pd.read_csv(run / "eval" / "test" / "predictions.csv", dtype=str, keep_default_na=False)
    preds.loc[0, "image_path"] = str(outside / "secret0.png")  # img00000, the worst: shown in the detail view
    preds.to_csv(run / "eval" / "test" / "predictions.csv", index=False)
    (tmp_path / "data").mkdir()
    problem = "unreadable eval/test/metrics.json: model.bleu1 is a string"
    shots = Path(os.environ.get("MEDCAP_SCREENSHOTS") or PROJECT_ROOT / "artifacts" / "screenshots") / "sturdy"
    shots.mkdir(parents=True, exist_ok=True)
    warnings = '[data-testid="stAlertContentWarning"]'
    with _serve(artifacts, tmp_path / "streamlit.log", MEDCAP_DATA=str(tmp_path / "data")) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            # Home: every run listed, the bad one left out of the paper comparison with its reason
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("medcap beside the paper").first.wait_for(state="visible", timeout=30_000)
            _settled(page)
            page.screenshot(path=str(shots / "home.png"), full_page=True)
            body = page.inner_text("body")
            assert "Could not show" not in body and "Traceback" not in body
            assert page.locator(TABLE).count() == 4  # runs, Table 2, Table 3, medcap beside the paper
            left_out = page.locator('[data-testid="stMarkdown"]', has_text="Left out of the comparison")
            assert bad in left_out.inner_text() and problem in left_out.inner_text()
            # Train: the runs section stays; the newest run (the bad one) names its file
            page.goto(url + "Train", wait_until="domcontentloaded")
            page.locator(warnings, has_text=problem).first.wait_for(state="visible", timeout=30_000)
            _settled(page)
            page.screenshot(path=str(shots / "train.png"), full_page=True)
            assert "Could not show" not in page.inner_text("body")
            assert page.locator(TABLE).count() == 1 and page.get_by_text("Run details").count() >= 1
            # Per-image: the image outside the data folders is not shown
            page.goto(url + "Per-image_BLEU", wait_until="domcontentloaded")
            page.get_by_text("The image file cannot be read.").first.wait_for(state="visible", timeout=30_000)
            _settled(page)
            page.screenshot(path=str(shots / "per_image.png"), full_page=True)
            assert page.locator('[data-testid="stImage"]').count() == 0
            # Caption an image: the run's dataset outside the data folders is refused, nothing of it shown
            page.goto(url + "Caption_an_image", wait_until="domcontentloaded")
            page.get_by_text("An image of the run's dataset").first.click()
            page.get_by_text("this dataset is outside the data folders", exact=False).first.wait_for(
                state="visible", timeout=30_000)
            _settled(page)
            page.screenshot(path=str(shots / "caption_dataset_refused.png"), full_page=True)
            body = page.inner_text("body")
            assert "private caption" not in body and page.locator('[data-testid="stImage"]').count() == 0
            assert "Research use only, not for diagnosis." in body
            # Compare: the other runs' metrics, the bad one named
            page.goto(url + "Compare", wait_until="domcontentloaded")
            page.locator(warnings, has_text=problem).first.wait_for(state="visible", timeout=30_000)
            _settled(page)
            assert FINISHED70_ID[-6:] in page.inner_text("body")  # model-70 [cccccc] still compared
            assert "Could not show" not in page.inner_text("body")
        finally:
            browser.close()
    assert not (artifacts / "datasets").exists()  # nothing generated inside the server
