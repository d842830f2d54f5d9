"""Caption tokenization and filtering, vocabulary round-trip."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medcap.data import Vocabulary, prepare_captions, tokenize
from medcap.data.text import is_placeholder

PLACEHOLDER = "Replace this - DESCRIPTION OF THE IMAGE OR FINDINGS."


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("CT of the chest: 3.5 cm LUL mass, T2-bright.", ["ct", "of", "the", "chest", "3.5", "cm", "lul", "mass",
                                                          "t2", "bright"]),
        ("Axial FLAIR", ["axial", "flair"]),
        ("Crohn's disease at L4-L5; 2.4cm lesion.", ["crohns", "disease", "at", "l4", "l5", "2.4cm", "lesion"]),
        ("Size 10.", ["size", "10"]),
        ("  ...  ", []),
        ("", []),
    ],
)
def test_tokenize_known_outputs(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenize_non_string_is_empty() -> None:
    assert tokenize(None) == []  # type: ignore[arg-type]
    assert tokenize(float("nan")) == []  # type: ignore[arg-type]


def test_placeholder_detected_but_real_caption_kept() -> None:
    assert is_placeholder(tokenize(PLACEHOLDER))
    assert not is_placeholder(tokenize("Atrophy and fatty replacement of the supraspinatus muscle."))


def _table(captions: list) -> pd.DataFrame:
    n = len(captions)
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "image_path": ["x"] * n, "caption": captions,
                         "group": ["g"] * n, "split": [""] * n})


def test_prepare_captions_drops_by_reason() -> None:
    long = " ".join(f"w{k}" for k in range(25))
    table = _table(["small nodule in the right lung", "", None, PLACEHOLDER, long, "axial flair"])
    kept, dropped = prepare_captions(table, max_words=20)
    assert kept["image_id"].tolist() == ["i0", "i5"]
    assert kept["tokens"].tolist() == [["small", "nodule", "in", "the", "right", "lung"], ["axial", "flair"]]
    assert dropped == {"empty_caption": 2, "placeholder": 1, "too_long": 1}
    assert len(table) == 6  # input untouched


def test_prepare_captions_truncate_keeps_first_words() -> None:
    long = " ".join(f"w{k}" for k in range(25))
    kept, dropped = prepare_captions(_table([long]), max_words=20, long_captions="truncate")
    assert dropped == {}
    assert kept["tokens"][0] == [f"w{k}" for k in range(20)]


def test_prepare_captions_boundary_and_bad_mode() -> None:
    exactly = " ".join(["word"] * 20)
    kept, dropped = prepare_captions(_table([exactly]), max_words=20)
    assert len(kept) == 1 and dropped == {}
    with pytest.raises(ValueError, match="long_captions"):
        prepare_captions(_table([exactly]), long_captions="cut")


def test_vocabulary_build_encode_decode() -> None:
    vocab = Vocabulary.build([["a", "b", "a"], ["b", "c", "a"]], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "<start>", "<end>", "a", "b"]
    assert (vocab.pad_id, vocab.unk_id, vocab.start_id, vocab.end_id) == (0, 1, 2, 3)
    assert len(vocab) == 6
    assert vocab.encode(["a", "c", "b"]) == [4, 1, 5]
    assert vocab.decode([2, 4, 1, 5, 3, 4, 0]) == ["a", "b"]
    assert vocab.index["b"] == 5


def test_vocabulary_ties_sorted_alphabetically() -> None:
    vocab = Vocabulary.build([["z", "y", "x", "x"]], min_count=1)
    assert vocab.words[4:] == ["x", "y", "z"]


def test_vocabulary_save_load_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build([["lung", "nodule", "lung"], ["nodule", "mass"]], min_count=1)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.words == vocab.words
    assert loaded.encode(["nodule", "mass", "liver"]) == vocab.encode(["nodule", "mass", "liver"])
    assert json.loads(path.read_text())["words"][:4] == ["<pad>", "<unk>", "<start>", "<end>"]


def test_vocabulary_load_rejects_bad_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"words": ["a", "b"]}))
    with pytest.raises(ValueError, match=r"bad\.json"):
        Vocabulary.load(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        Vocabulary.load(broken)
