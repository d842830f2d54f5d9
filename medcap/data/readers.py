"""Tolerant readers for dataset index files: one bad line or record never stops a load.

Text is decoded as UTF-8 with `surrogateescape`, so a record holding invalid bytes is detected and
skipped on its own ("bad_encoding") instead of failing the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5  # offending names/lines kept per reason
_LOGGED = 3  # warnings logged per reason (the rest are counted)
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class SkipLog:
    """Counts skipped records by reason and keeps (and logs) the first few examples of each."""

    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # whole-file problems, e.g. a truncated index file

    def add(self, reason: str, where: str, detail: str = "") -> None:
        """Record one skipped item (`where`: file name or file:line)."""
        n = self.skipped.get(reason, 0) + 1
        self.skipped[reason] = n
        if n <= MAX_EXAMPLES:
            self.examples.setdefault(reason, []).append(where)
        if n <= _LOGGED:
            log.warning("skipped (%s): %s%s", reason, where, f": {detail}" if detail else "")
        elif n == _LOGGED + 1:
            log.warning("more records skipped for reason %s (counted, not logged)", reason)

    def note(self, text: str) -> None:
        """Record (and log) a problem with a whole file, such as a truncated index."""
        self.notes.append(text)
        log.warning("%s", text)

    def total(self) -> int:
        return sum(self.skipped.values())


def _byte_offset(text: str, pos: int) -> int:
    """Byte offset in the (UTF-8) file of character `pos` of its decoded text."""
    return len(text[:pos].encode("utf-8", errors="surrogateescape"))


def read_text(path: Path) -> str:
    """Read a text file as UTF-8 (invalid bytes kept as lone surrogates; see `has_bad_encoding`)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return path.read_bytes().decode("utf-8", errors="surrogateescape").lstrip("\ufeff")


def has_bad_encoding(value: Any) -> bool:
    """True when a decoded value (str, or nested list/dict of them) holds bytes that were not UTF-8."""
    if isinstance(value, str):
        return bool(_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(has_bad_encoding(k) or has_bad_encoding(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_bad_encoding(v) for v in value)
    return False


def iter_jsonl(path: Path, skips: SkipLog) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each valid JSON-object line; skip and count the others.

    A malformed last line with no final newline is a file cut off mid-record: it is counted as
    "truncated_record" and a note says how many records were read before the cut.
    """
    text = read_text(path)
    lines = text.splitlines()
    cut = bool(text) and not text.endswith(("\n", "\r"))
    n_read = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        if has_bad_encoding(line):
            skips.add("bad_encoding", where, "text is not valid UTF-8")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if cut and lineno == len(lines):
                skips.add("truncated_record", where, "the file ends inside this record")
                skips.note(f"{path.name}: truncated JSONL: read {n_read} records; the file ends at byte "
                           f"{path.stat().st_size} inside record line {lineno}, so anything after it is lost")
            else:
                skips.add("malformed_line", where, f"malformed JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            skips.add("malformed_line", where, "not a JSON object")
            continue
        n_read += 1
        yield lineno, obj


def _record_starts(text: str, first: int) -> list[int]:
    """Offsets of lines that open a top-level record: '{' at the same indentation as the first record."""
    line_start = text.rfind("\n", 0, first) + 1
    indent = text[line_start:first]
    pattern = re.compile(r"^" + re.escape(indent) + r"\{", re.MULTILINE)
    return [m.end() - 1 for m in pattern.finditer(text)]


def load_json_array(path: Path, skips: SkipLog) -> list[tuple[int, dict]]:
    """Parse a JSON array of objects, recovering from malformed records and reporting truncation.

    Well-formed files parse in one go. Otherwise records are decoded one after the other; a bad one is
    skipped ("malformed_line") and decoding resumes at the next record start (a '{' with the indentation
    of the first record). An array cut off before its closing ']' is a truncated file: the record it ends
    in is counted as "truncated_record" and a note says how many records were read before which byte.
    Returns (line number, object) pairs. A file that is not an array at all raises ValueError.
    """
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, list):
        out: list[tuple[int, dict]] = []
        for i, obj in enumerate(data):
            where = f"{path.name}: record {i + 1}"
            if not isinstance(obj, dict):
                skips.add("malformed_line", where, "not a JSON object")
            elif has_bad_encoding(obj):
                skips.add("bad_encoding", where, "text is not valid UTF-8")
            else:
                out.append((i + 1, obj))
        return out
    if data is not None:
        raise ValueError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    first = text.find("{")
    if not text.lstrip().startswith("[") or first < 0:
        raise ValueError(f"{path}: malformed JSON, not an array of records")
    return _recover_array(path, text, first, skips)


def _recover_array(path: Path, text: str, first: int, skips: SkipLog) -> list[tuple[int, dict]]:
    """Decode the records of a damaged JSON array one by one (see `load_json_array`)."""
    decoder = json.JSONDecoder()
    starts = _record_starts(text, first)
    out: list[tuple[int, dict]] = []
    pos, line_pos, lineno = first, 0, 1
    good_end = first  # end of the last record decoded
    closed = False
    while pos < len(text):
        ch = text[pos]
        if ch in " \t\r\n,":
            pos += 1
            continue
        if ch == "]":
            closed = True
            break
        lineno += text.count("\n", line_pos, pos)
        line_pos = pos
        where = f"{path.name}:{lineno}"
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            nxt = next((s for s in starts if s > pos), None)
            if nxt is None:
                if not text.rstrip().endswith("]"):
                    skips.add("truncated_record", where, "the file ends inside this record")
                    break
                skips.add("malformed_line", where, f"malformed JSON ({exc.msg})")
                closed = True
                break
            skips.add("malformed_line", where, f"malformed JSON ({exc.msg})")
            pos = nxt
            continue
        pos = good_end = end
        if not isinstance(obj, dict):
            skips.add("malformed_line", where, "not a JSON object")
        elif has_bad_encoding(obj):
            skips.add("bad_encoding", where, "text is not valid UTF-8")
        else:
            out.append((lineno, obj))
    if not closed:
        skips.note(f"{path.name}: truncated JSON: read {len(out)} records before byte "
                   f"{_byte_offset(text, good_end)} of {path.stat().st_size}; the array is cut off there, "
                   "so the records after it are lost (their number is unknown)")
    return out


def load_json_object(path: Path) -> dict:
    """Parse a whole JSON object file; ValueError naming the file when malformed."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def iter_csv(path: Path, skips: SkipLog, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row dict) for CSV rows with the header's field count; skip the others."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty CSV file (no header)") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: CSV header lacks required columns {missing} "
                         f"(its first line has {len(header)} column(s))")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            skips.add("malformed_line", f"{path.name}:{reader.line_num}", f"malformed CSV ({exc})")
            continue
        where = f"{path.name}:{reader.line_num}"
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            skips.add("malformed_line", where, f"{len(row)} fields, header has {len(header)}")
            continue
        if has_bad_encoding(row):
            skips.add("bad_encoding", where, "text is not valid UTF-8")
            continue
        yield reader.line_num, dict(zip(header, row, strict=True))


def iter_tsv_pairs(path: Path, skips: SkipLog, min_fields: int = 2) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for tab-separated lines with at least `min_fields` fields."""
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < min_fields or not fields[0]:
            skips.add("malformed_line", where, f"expected {min_fields} tab-separated fields")
            continue
        if has_bad_encoding(line):
            skips.add("bad_encoding", where, "text is not valid UTF-8")
            continue
        yield lineno, fields
