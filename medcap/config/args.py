"""The `python -m medcap train` argument list that trains a given config (dashboard launches, the demo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medcap.config.run import RunConfig, default, field_names

FLAG_NAMES = {"learning_rate": "--lr"}


def flag_for(name: str) -> str:
    """The `train` flag of a RunConfig field (`learning_rate` -> `--lr`, `split_by` -> `--split-by`)."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def train_cli_args(settings: RunConfig | Mapping[str, Any]) -> list[str]:
    """The `python -m medcap train ...` argument list (starting with "train") that trains `settings`.

    `settings` is a RunConfig or a mapping of RunConfig field names to values (None = the preset's;
    "preset" defaults to model-80); a mapping is validated like any RunConfig. Only settings that differ
    from the preset's are given as flags, besides --preset and --dataset. Parsing the list with the
    `train` parser and `config_from_args` gives the same RunConfig back (feature_store as an absolute path).
    """
    if isinstance(settings, RunConfig):
        cfg = settings
    else:
        values = {k: v for k, v in settings.items() if k != "preset"}
        cfg = RunConfig.from_preset(settings.get("preset") or default("preset"), **values)
    base = RunConfig.from_preset(cfg.preset)
    args = ["train", flag_for("preset"), cfg.preset, flag_for("dataset"), cfg.dataset]
    for name in field_names():
        value = getattr(cfg, name)
        if name in ("preset", "dataset") or value == getattr(base, name) or value is None:
            continue
        flag = flag_for(name)
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]
    return args
