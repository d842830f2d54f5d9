"""The architecture document's layer line is the import contract's, and the tree keeps modules small."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import PROJECT_ROOT

MAX_MODULE_LINES = 350


def _architecture_script():
    spec = importlib.util.spec_from_file_location("architecture", PROJECT_ROOT / "scripts" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_layer_line_is_the_contracts() -> None:
    arch = _architecture_script()
    layers = arch.contract_layers()
    assert layers[0] == "__main__" and layers[-1] == "base"
    assert arch.documented_line() == arch.layer_line(layers)


def test_the_layer_line_keeps_independent_layers_apart(tmp_path: Path) -> None:
    arch = _architecture_script()
    assert arch.layer_line(["app", "eval | train", "base"]) == (
        "`medcap.app` ->\n`medcap.eval` | `medcap.train` ->\n`medcap.base`"
    )


def test_every_medcap_package_is_a_layer_of_the_contract() -> None:
    arch = _architecture_script()
    named = {name.strip() for layer in arch.contract_layers() for name in layer.split("|")}
    top = {p.stem for p in (PROJECT_ROOT / "medcap").glob("*.py") if p.stem != "__init__"}
    top |= {p.name for p in (PROJECT_ROOT / "medcap").iterdir() if (p / "__init__.py").is_file()}
    assert top == named


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in (PROJECT_ROOT / "medcap").rglob("*.py")}
    too_big = {str(p.relative_to(PROJECT_ROOT)): n for p, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_big
