"""Issue 22, item 3: run files never lead the dashboard outside the data folders, and nothing is generated.

Every image a page shows and every run dataset it reads goes through `medcap.data.confined` (the Data page's
root check); a run's synthetic set that is not on disk is never generated inside the server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medcap.data import confined
from medcap.data.roots import REFUSED_TEXT
from tests.support.dashboard_fixtures import FINISHED_ID, small_state, with_similar_cases, write_image
from tests.support.pages import frames, run_page, texts

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "demo"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A csv dataset with images, outside the data folders (MEDCAP_DATA unset: ./data and the artifacts)."""
    folder = tmp_path / "outside"
    rows = []
    for i in range(3):
        write_image(folder / f"secret{i}.png", seed=i)
        rows.append({"image_id": f"secret{i}", "image_path": f"secret{i}.png", "caption": f"private caption {i}"})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    return folder


def _point_run_at(artifacts: Path, dataset: str) -> None:
    path = artifacts / "runs" / FINISHED_ID / "config.json"
    config = json.loads(path.read_text())
    config["run"]["dataset"] = dataset
    path.write_text(json.dumps(config))


def test_an_image_outside_the_roots_gets_one_refusal_whether_or_not_it_exists(outside: Path,
                                                                               artifacts: Path) -> None:
    for path in (outside / "secret0.png", outside / "nothing-here.png", Path("/etc/passwd")):
        with pytest.raises(confined.ImageRefusedError) as info:
            confined.load_image(path)
        assert str(info.value) == f"{path.name}: {confined.IMAGE_REFUSED_TEXT}"
        assert confined.thumbnail(path) is None
    inside = write_image(artifacts / "mine" / "ok.png", seed=1)
    assert confined.load_image(inside).size == (64, 64)
    link = artifacts / "mine" / "link.png"
    link.symlink_to(outside / "secret1.png")  # a symlink out of a root is outside too
    with pytest.raises(confined.ImageRefusedError):
        confined.load_image(link)


def test_per_image_shows_no_thumbnail_of_a_path_outside_the_roots(outside: Path, artifacts: Path) -> None:
    small_state(artifacts)
    path = artifacts / "runs" / FINISHED_ID / "eval" / "test" / "predictions.csv"
    preds = pd.read_csv(path, dtype=str, keep_default_na=False)
    preds.loc[0, "image_path"] = str(outside / "secret0.png")  # the worst image, shown first
    preds.to_csv(path, index=False)
    at = run_page("per_image")
    assert not at.exception
    table = frames(at)[0].set_index("image_id")
    assert pd.isna(table.loc["img00000", "thumbnail"])  # was a data URI of the file outside
    assert table.loc["img00001", "thumbnail"].startswith("data:image/jpeg;base64,")
    assert "The image file cannot be read." in texts(at)  # the detail view of img00000
    assert not at.image


def test_caption_page_refuses_a_run_dataset_outside_the_roots(outside: Path, artifacts: Path) -> None:
    small_state(artifacts)
    _point_run_at(artifacts, f"csv:{outside / 'captions.csv'}")
    at = run_page("caption")
    at.radio(key="cap_source").set_value("An image of the run's dataset").run()
    assert not at.exception
    assert any(REFUSED_TEXT in i.value for i in at.info), [i.value for i in at.info]
    shown = texts(at)
    assert "private caption" not in shown and not at.image


def test_the_caption_pages_dataset_picker_never_generates_a_synthetic_set(artifacts: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip("examples/demo not present")
    monkeypatch.setenv("MEDCAP_EXAMPLES", str(BUNDLE))  # only the example runs (their dataset: synthetic:N)
    spec = json.loads((BUNDLE / "runs" / "example-model-80" / "config.json").read_text())["run"]["dataset"]
    assert spec.startswith("synthetic:")
    at = run_page("caption")
    at.radio(key="cap_source").set_value("An image of the run's dataset").run()
    assert not at.exception
    assert any(f"`{spec}` is not generated yet; generate it on the Data page" in i.value for i in at.info)
    datasets = artifacts / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir())  # nothing was generated in the server


def test_similar_cases_of_a_run_dataset_outside_the_roots_are_refused(outside: Path, artifacts: Path) -> None:
    small_state(artifacts)
    with_similar_cases(artifacts)  # a csv dataset under the artifacts folder: readable
    at = run_page("attention")
    assert "closest to this image in the run's global image features" in texts(at)
    _point_run_at(artifacts, f"csv:{outside / 'captions.csv'}")
    at = run_page("attention")
    assert not at.exception
    assert any(f"Similar cases are unavailable for this run: {REFUSED_TEXT}" in i.value for i in at.info)


def test_the_attention_page_does_not_show_an_image_outside_the_roots(outside: Path, artifacts: Path) -> None:
    small_state(artifacts)
    path = artifacts / "runs" / FINISHED_ID / "eval" / "test" / "predictions.csv"
    preds = pd.read_csv(path, dtype=str, keep_default_na=False)
    preds["image_path"] = str(outside / "secret0.png")
    preds.to_csv(path, index=False)
    at = run_page("attention")
    assert not at.exception
    assert [w.value for w in at.warning] == [f"secret0.png: {confined.IMAGE_REFUSED_TEXT}"]
    assert not at.get("plotly_chart")
