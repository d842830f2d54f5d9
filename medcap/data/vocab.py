"""Word vocabulary with fixed special ids, saved and loaded as JSON."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from medcap.base.io import read_json, write_json

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
SPECIALS = (PAD, UNK, START, END)


class Vocabulary:
    """Maps words to ids: `<pad>`=0, `<unk>`=1, `<start>`=2, `<end>`=3, then words by frequency."""

    pad_id = 0
    unk_id = 1
    start_id = 2
    end_id = 3

    def __init__(self, words: Sequence[str], min_count: int = 1) -> None:
        """Build from the full word list (specials first, in order); use `build` to count tokens."""
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {list(SPECIALS)}, got {words[:4]}")
        index = {w: i for i, w in enumerate(words)}
        if len(index) != len(words):
            raise ValueError("vocabulary has duplicate words")
        self.words: list[str] = words
        self.index: dict[str, int] = index
        self.min_count = min_count

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 2) -> Vocabulary:
        """Count tokens and keep words seen at least `min_count` times (most frequent first, ties A-Z)."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept], min_count=min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Word ids of `tokens` (unknown words -> `<unk>`), without start/end markers."""
        return [self.index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of `ids`, stopping at `<end>`; specials (pad/unk/start) and out-of-range ids are dropped."""
        out: list[str] = []
        n = len(self.words)
        for raw in ids:
            i = int(raw)
            if i == self.end_id:
                break
            if len(SPECIALS) <= i < n:
                out.append(self.words[i])
        return out

    def to_dict(self) -> dict:
        return {"format": "medcap-vocab-1", "min_count": self.min_count, "words": self.words}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON (atomically)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary saved by `save`; ValueError naming the file when it is not one."""
        p = Path(path)
        data = read_json(p)
        words = data.get("words") if isinstance(data, dict) else None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{p}: not a medcap vocabulary (no 'words' list of strings)")
        try:
            return cls(words, min_count=int(data.get("min_count", 1)))
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from exc
