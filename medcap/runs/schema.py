"""The shapes of the run files medcap reads back: metrics.json, config.json, status.json, predictions.csv.

One checker per file. Each returns None for a usable file, or one short sentence that names the first bad
field by its path and says what it is and what was expected ("model.bleu1 is a string; expected an object
with a number `value`"). `RunFileError` wraps that as "unreadable metrics.json: model.bleu1 is a string; ...".
Only the fields medcap reads are checked; unknown keys are allowed (files of a newer or older medcap).
Readers (`medcap.runs.folder`, `medcap.runs.index`, `medcap.eval.artifacts`) call these, so one bad file marks its
own run and never breaks a listing. No TensorFlow, no Streamlit, no file access here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PREDICTIONS_FILE = "predictions.csv"

# predictions.csv: columns every reader needs, and the columns that hold numbers (empty cells allowed).
PREDICTION_REQUIRED: tuple[str, ...] = ("image_id", "image_path", "references", "prediction", "bleu1")
PREDICTION_NUMERIC: tuple[str, ...] = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "ref_len", "pred_len",
                                       "nn_bleu1", "nn_cider")


class RunFileError(ValueError):
    """A run file that exists but cannot be used: "unreadable <file>: <problem>"."""

    def __init__(self, file_name: str, problem: str) -> None:
        self.file_name = file_name
        self.problem = problem
        super().__init__(f"unreadable {file_name}: {problem}")


# ----------------------------------------------------------------------------------------------
# value kinds


def kind_of(value: Any) -> str:
    """How a JSON value reads in a message: 'a string', 'a list', 'null', 'an object', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def is_number(value: Any) -> bool:
    """An int or float (NaN included), never a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


Check = tuple[Callable[[Any], bool], str]  # (test, what was expected)
NUMBER: Check = (is_number, "a number")
INT: Check = (is_int, "an integer")
STRING: Check = (lambda v: isinstance(v, str), "a string")
OBJECT: Check = (lambda v: isinstance(v, dict), "an object")


def nullable(check: Check) -> Check:
    test, what = check
    return (lambda v: v is None or test(v), f"{what} or null")


def _bad(where: str, value: Any, expected: str) -> str:
    return f"{where} is {kind_of(value)}; expected {expected}"


def _fields(data: Mapping[str, Any], spec: Mapping[str, Check], prefix: str = "") -> str | None:
    """The first field of `spec` present in `data` whose value fails its check (absent fields are fine)."""
    for key, (test, expected) in spec.items():
        if key in data and not test(data[key]):
            return _bad(f"{prefix}{key}", data[key], expected)
    return None


def _object(value: Any, where: str) -> str | None:
    return None if isinstance(value, dict) else _bad(where, value, "an object")


# ----------------------------------------------------------------------------------------------
# metrics.json


def _metric(item: Any, where: str) -> str | None:
    """One scored metric: {"value": number, "ci95": [lo, hi] (optional), "corpus_value": number (optional)}."""
    if not isinstance(item, dict):
        return _bad(where, item, "an object with a number `value`")
    if "value" not in item:
        return f"{where} has no `value`"
    if not is_number(item["value"]):
        return _bad(f"{where}.value", item["value"], "a number")
    ci = item.get("ci95")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(is_number(v) for v in ci)):
        return _bad(f"{where}.ci95", ci, "a list of two numbers [low, high]")
    return _fields(item, {"corpus_value": nullable(NUMBER), "swapped": nullable(NUMBER)}, f"{where}.")


def _metric_block(block: Any, where: str) -> str | None:
    """{metric: metric object}."""
    problem = _object(block, where)
    if problem:
        return problem
    for key, item in block.items():
        problem = _metric(item, f"{where}.{key}")
        if problem:
            return problem
    return None


# Keys of a numbers block that hold a list of names instead (caption health: what decoding enforces).
_NAME_LISTS = ("enforced_by_decoding",)


def _numbers(block: Any, where: str, depth: int = 1) -> str | None:
    """An object whose values are numbers or null (or, `depth` levels down, such objects; `_NAME_LISTS` keys: a
    list of strings)."""
    if block is None:
        return None
    problem = _object(block, where)
    if problem:
        return problem
    for key, value in block.items():
        if isinstance(value, dict) and depth > 0:
            problem = _numbers(value, f"{where}.{key}", depth - 1)
            if problem:
                return problem
        elif key in _NAME_LISTS:
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                return _bad(f"{where}.{key}", value, "a list of names")
        elif not (value is None or is_number(value)):
            return _bad(f"{where}.{key}", value, "a number")
    return None


_METRICS_TOP: dict[str, Check] = {
    "name": STRING, "run_id": STRING, "dataset": STRING, "split": STRING, "decode": STRING, "images": STRING,
    "run_label": STRING, "split_role": STRING, "most_frequent_caption": STRING, "n_images": INT,
    "bootstrap": nullable(OBJECT), "skipped": nullable(OBJECT), "weights": nullable(OBJECT),
}


def metrics_problem(data: Any) -> str | None:
    """Why an evaluation's metrics.json cannot be read (None when it can)."""
    if not isinstance(data, dict):
        return f"the file holds {kind_of(data)}; expected an object"
    if "model" not in data:
        return "it has no `model` metrics"
    problem = _metric_block(data["model"], "model") or _fields(data, _METRICS_TOP)
    if problem:
        return problem
    baselines = data.get("baselines")
    if baselines is not None:
        problem = _object(baselines, "baselines")
        for name, block in ({} if problem else baselines).items():
            problem = problem or _metric_block(block, f"baselines.{name}")
        if problem:
            return problem
    reliance = data.get("image_reliance")
    if reliance is not None:
        problem = _object(reliance, "image_reliance")
        if problem is None and reliance.get("metrics") is not None:
            problem = _metric_block(reliance["metrics"], "image_reliance.metrics")
        if problem:
            return problem
    problem = _numbers(data.get("next_word"), "next_word") or _numbers(data.get("caption_health"), "caption_health")
    if problem:
        return problem
    boot = data.get("bootstrap") or {}
    return _fields(boot, {"n_groups": INT, "unit": STRING, "n_resamples": INT}, "bootstrap.")


# ----------------------------------------------------------------------------------------------
# config.json and status.json

_RUN_FIELDS: dict[str, Check] = {
    "name": STRING, "preset": STRING, "dataset": STRING, "seed": nullable(INT), "split_seed": nullable(INT),
    "epochs": nullable(INT),
}
_STORE_FIELDS: dict[str, Check] = {"path": nullable(STRING), "global_dim": nullable(INT)}


def config_problem(data: Any) -> str | None:
    """Why a run's config.json cannot be listed (None when it can).

    Checks the shape the listings read (`run` settings, `feature_store`); the settings' own values are
    checked by `medcap.config.RunConfig.from_dict` where a run is rebuilt.
    """
    if not isinstance(data, dict):
        return f"the file holds {kind_of(data)}; expected an object"
    run = data.get("run", data)
    problem = _object(run, "run")
    if problem:
        return problem
    problem = _fields(run, _RUN_FIELDS, "run." if "run" in data else "")
    if problem:
        return problem
    store = data.get("feature_store")
    if store is not None and not isinstance(store, dict | str):
        return _bad("feature_store", store, "an object, a string or null")
    if isinstance(store, dict):
        problem = _fields(store, _STORE_FIELDS, "feature_store.")
    return problem or _fields(data, {"vocab_size": nullable(INT), "dataset_fingerprint": nullable(STRING)})


_STATUS_FIELDS: dict[str, Check] = {
    "state": STRING, "epoch": nullable(INT), "epochs": nullable(INT), "step": nullable(INT), "steps": nullable(INT),
    "progress": nullable(NUMBER), "message": nullable(STRING), "error": nullable(STRING), "pid": nullable(INT),
    "updated": nullable(STRING), "best_val_loss": nullable(NUMBER), "best_epoch": nullable(INT),
    "stage": nullable(STRING), "restarted": nullable(STRING), "seconds": nullable(NUMBER),
}


def status_problem(data: Any) -> str | None:
    """Why a status.json (of a run, a study, the demo or a job) cannot be read (None when it can)."""
    if not isinstance(data, dict):
        return f"the file holds {kind_of(data)}; expected an object"
    return _fields(data, _STATUS_FIELDS)


# ----------------------------------------------------------------------------------------------
# predictions.csv


def predictions_header_problem(columns: Iterable[str]) -> str | None:
    """Why a predictions.csv with these columns cannot be read (missing required columns), or None."""
    have = set(columns)
    missing = [c for c in PREDICTION_REQUIRED if c not in have]
    return f"lacks columns {missing} (older medcap version?)" if missing else None


def _not_number(values: Sequence[Any]) -> tuple[int, Any] | None:
    """(row, value) of the first cell that is neither empty nor a number."""
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or is_number(value):
            continue
        text = str(value).strip()
        if not text:
            continue
        try:
            float(text)
        except ValueError:
            return row, value
    return None


def predictions_problem(columns: Sequence[str], cells: Mapping[str, Sequence[Any]]) -> str | None:
    """Why a read predictions.csv cannot be used: missing columns, or a non-number in a score column.

    `cells`: column -> its values as read (text or numbers). Rows are numbered as in the file (header = 1).
    """
    problem = predictions_header_problem(columns)
    if problem:
        return problem
    for col in PREDICTION_NUMERIC:
        if col in cells:
            bad = _not_number(cells[col])
            if bad is not None:
                return f"{col} is not a number in row {bad[0] + 2} ({str(bad[1])[:40]!r})"
    return None


def check(file_name: str, problem: str | None) -> None:
    """Raise `RunFileError(file_name, problem)` when there is a problem."""
    if problem:
        raise RunFileError(file_name, problem)


__all__ = ["CONFIG_FILE", "METRICS_FILE", "PREDICTIONS_FILE", "PREDICTION_NUMERIC", "PREDICTION_REQUIRED",
           "STATUS_FILE", "RunFileError", "check", "config_problem", "kind_of", "metrics_problem",
           "predictions_header_problem", "predictions_problem", "status_problem"]
