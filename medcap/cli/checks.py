"""Argument checks every command runs before it creates anything: no run, grid or study folder for a typo.

Ranges come from `medcap.config.RunConfig` (the one place that says beam_size >= 1, n_folds >= 2, ...), so
a flag is refused with the same words a config.json value would be. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medcap.config import RunConfig
from medcap.data.loaders import parse_spec


def check_dataset(spec: str, flag: str = "--dataset") -> str:
    """`spec` when its kind is known and its path exists (generated `synthetic[:N]` sets need no path).

    ValueError for an unknown kind or `synthetic:N` with N < 1; FileNotFoundError naming the path otherwise.
    """
    kind, arg = parse_spec(spec)  # unknown kinds, synthetic:N with N < 1
    if kind == "synthetic" and (not arg or arg.isdigit()):
        return spec
    path = Path(arg).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{flag} {spec}: {path} does not exist")
    return spec


def check_setting(field: str, value: Any, flag: str) -> Any:
    """`value` when the RunConfig field `field` accepts it; ValueError "<flag>: <field> must be ..." otherwise."""
    try:
        dataclasses.replace(RunConfig(), **{field: value})
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None
    return value


def check_settings(field: str, values: Iterable[Any], flag: str) -> list[Any]:
    """Every value of a comma-separated flag through `check_setting`."""
    return [check_setting(field, v, flag) for v in values]


__all__ = ["check_dataset", "check_setting", "check_settings"]
