"""Benchmark (by hand): how many project files an evaluation and an upload cross, entry to result.

    python benchmarks/crossings.py [--json] [--work DIR]
    cd OLD && PYTHONPATH=OLD python /path/to/benchmarks/crossings.py   # an older checkout OLD

Counts the distinct source files of the project (the `medcap` package folder, `ui/`, `app_pages/`,
`streamlit_app.py`) whose functions are called, recorded with `sys.setprofile` and
`threading.setprofile` ("call" events), while doing

  (a) an evaluation: `python -m medcap evaluate RUN_A --no-meteor` (through `medcap/__main__.py`),
      then the Compare page (Streamlit AppTest) showing it beside RUN_B with its paired difference
      (runs A and B picked, key="paired_btn" clicked). The CLI and the page run in separate
      processes, as they do for a user. A Python child process started meanwhile (the paired
      difference ran `python -m medcap compare` before the restructuring) is traced too, through a
      `sitecustomize` put on its PYTHONPATH;
  (b) an upload: the "Caption an image" page (AppTest) with a generated PNG uploaded: decode, open
      the run, caption, word probabilities, similar cases, attention.

The project root is the folder holding the imported `medcap`, so PYTHONPATH picks the checkout.
Every module of `medcap` and `ui` is imported before tracing, and module bodies, class bodies and
comprehensions are not counted: a file counts when one of its functions runs (the entry files
`medcap/__main__.py` and the page are counted as entered). Functions called by TensorFlow from its
own C++ threads are not seen (the traced steps extract no features, so none of ours are).

Setup, in a temporary MEDCAP_ARTIFACTS (or `--work DIR`, reused when it holds a finished setup):
two tiny model-80 runs on `synthetic:40` (1 epoch, 16 units, one split, seeds 1 and 2; VGG16 features,
so MEDCAP_CACHE must hold the converted weights, as `~/.cache/medcap` does once a run was trained), run B
evaluated.
About 2.5-3 minutes on two busy cores. Each measurement runs in a fresh process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import pkgutil
import runpy
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks.crossings")
CO_NEWLOCALS = 0x02  # functions have it; module and class bodies do not
COMPREHENSIONS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")
PROJECT_DIRS = ("medcap", "ui", "app_pages")
CHILD_ENV = "MEDCAP_CROSSINGS_CHILD"
TINY = ["--preset", "model-80", "--dataset", "synthetic:40", "--epochs", "1", "--embed-dim", "16",
        "--lstm-units", "16", "--dense-units", "16", "--attn-units", "16", "--min-count", "1",
        "--split-seed", "7", "--json"]
SITECUSTOMIZE = f'''"""Trace this child process's function calls (benchmarks/crossings.py); dumped at exit."""
import os
if os.environ.get("{CHILD_ENV}"):
    import atexit, json, sys, threading
    _codes = set()
    def _prof(frame, event, arg, _add=_codes.add):
        if event == "call":
            _add(frame.f_code)
    def _dump():
        sys.setprofile(None)
        threading.setprofile(None)
        files = sorted({{c.co_filename for c in list(_codes)
                         if c.co_flags & {CO_NEWLOCALS} and c.co_name not in {COMPREHENSIONS!r}}})
        with open(os.path.join(os.environ["{CHILD_ENV}"], f"{{os.getpid()}}.json"), "w") as fh:
            json.dump({{"argv": sys.argv, "files": files}}, fh)
    atexit.register(_dump)
    threading.setprofile(_prof)
    sys.setprofile(_prof)
'''


def project_root() -> Path:
    """The checkout holding the imported `medcap` (PYTHONPATH decides which)."""
    import medcap

    return Path(medcap.__file__).resolve().parent.parent


def project_files(filenames: set[str] | list[str], root: Path) -> list[str]:
    """The given source paths that belong to the project, relative to `root`, sorted."""
    out = set()
    for name in filenames:
        try:
            rel = Path(os.path.realpath(name)).relative_to(root)
        except ValueError:
            continue
        if rel.as_posix() == "streamlit_app.py" or (len(rel.parts) > 1 and rel.parts[0] in PROJECT_DIRS):
            out.add(rel.as_posix())
    return sorted(out)


@contextlib.contextmanager
def traced(codes: set[Any]) -> Iterator[set[Any]]:
    """Record the code object of every Python call, in this thread and in threads started meanwhile."""
    add = codes.add

    def prof(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            add(frame.f_code)

    threading.setprofile(prof)
    sys.setprofile(prof)
    try:
        yield codes
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def called_files(codes: set[Any], root: Path) -> list[str]:
    """Project files of the functions among `codes` (module/class bodies and comprehensions left out)."""
    names = {c.co_filename for c in codes if c.co_flags & CO_NEWLOCALS and c.co_name not in COMPREHENSIONS}
    return project_files(names, root)


def import_everything(root: Path) -> list[str]:
    """Import every module of `medcap` and `ui` (untimed), so tracing sees calls, not imports."""
    failed = []
    for package in ("medcap", "ui"):
        pkg = importlib.import_module(package)
        for mod in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if mod.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(mod.name)
            except Exception as exc:  # an optional module that cannot load here is reported, not fatal
                failed.append(f"{mod.name}: {exc}")
    return failed


def _run_cli(argv: list[str]) -> str:
    """`python -m medcap ARGV` in this process (through medcap/__main__.py); its stdout."""
    buf = io.StringIO()
    saved = sys.argv
    sys.argv = ["medcap", *argv]
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_module("medcap", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"medcap {' '.join(argv)} exited with {exc.code}") from exc
    finally:
        sys.argv = saved
    return buf.getvalue()


def _page_problems(at: Any) -> list[str]:
    """What stopped a page early: exceptions, errors, 'Could not ...' warnings, 'unavailable' notes."""
    out = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
    out += [str(w.value) for w in at.warning if str(w.value).startswith("Could not")]
    out += [str(i.value) for i in at.info if "unavailable" in str(i.value)]
    return out


def step_setup(state: dict[str, Any]) -> dict[str, Any]:
    """Train runs A and B (tiny), evaluate B."""
    _run_cli(["train", "--name", "crossa", "--seed", "1", *TINY])
    _run_cli(["train", "--name", "crossb", "--seed", "2", *TINY])
    runs = Path(os.environ["MEDCAP_ARTIFACTS"]) / "runs"
    a, b = (next(runs.glob(f"*-{n}-*")) for n in ("crossa", "crossb"))
    _run_cli(["evaluate", str(b), "--no-meteor"])
    return {"run_a": str(a), "run_b": str(b)}


def step_evaluate(state: dict[str, Any]) -> dict[str, Any]:
    """(a), CLI half: `python -m medcap evaluate RUN_A --no-meteor`."""
    with traced(set()) as codes:
        _run_cli(["evaluate", state["run_a"], "--no-meteor"])
    return {"codes": codes, "entry": ["medcap/__main__.py"]}


def step_compare(state: dict[str, Any]) -> dict[str, Any]:
    """(a), page half: Compare with runs A and B picked, then the paired difference."""
    from streamlit.testing.v1 import AppTest

    page = state["root"] / "app_pages" / "3_Compare.py"
    a, b = Path(state["run_a"]).name, Path(state["run_b"]).name
    with traced(set()) as codes:
        at = AppTest.from_file(str(page), default_timeout=900).run()
        at.multiselect(key="cmp").set_value([a, b]).run()
        at.button(key="paired_btn").click().run()
    problems = _page_problems(at)
    if not any("B − A" in getattr(d.value, "columns", []) for d in at.dataframe):
        problems.append("no paired-difference table: " + "; ".join(str(w.value) for w in at.warning))
    return {"codes": codes, "entry": [page.relative_to(state["root"]).as_posix()], "problems": problems}


def _png() -> bytes:
    """A 96x96 RGB PNG with a bright blob on noise (seeded)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 80, (96, 96, 3), dtype=np.uint8)
    pixels[30:60, 40:70] += 150
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def step_upload(state: dict[str, Any]) -> dict[str, Any]:
    """(b): the Caption page with run A picked and a PNG uploaded."""
    from streamlit.testing.v1 import AppTest

    page = state["root"] / "app_pages" / "6_Caption_an_image.py"
    png = _png()
    with traced(set()) as codes:
        at = AppTest.from_file(str(page), default_timeout=900).run()
        at.selectbox(key="cap_run").set_value(Path(state["run_a"]).name)
        at.file_uploader(key="cap_file").set_value(("scan.png", png, "image/png")).run()
    problems = _page_problems(at)
    if not any(str(m.value).startswith("### ") for m in at.markdown):
        problems.append("no caption shown")
    return {"codes": codes, "entry": [page.relative_to(state["root"]).as_posix()], "problems": problems}


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "setup": step_setup, "evaluate": step_evaluate, "compare": step_compare, "upload": step_upload,
}


def run_step(name: str, state_path: Path, out_path: Path) -> None:
    """Child side: one step in this fresh process; its result as JSON in `out_path`."""
    root = project_root()
    sys.path.insert(0, str(root))  # `ui` for the pages
    state = json.loads(state_path.read_text())
    state["root"] = root
    if name == "setup":
        result = step_setup(state)
    else:
        failed = import_everything(root)
        child_dir = Path(state["work"]) / f"children-{name}"
        child_dir.mkdir(exist_ok=True)
        os.environ[CHILD_ENV] = str(child_dir)  # python children of this step trace themselves
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (state["site"], os.environ.get("PYTHONPATH")) if p)
        got = STEPS[name](state)
        result = {"files": sorted(set(called_files(got.pop("codes"), root)) | set(got.pop("entry"))),
                  "import_failures": failed, **got}
    out_path.write_text(json.dumps(result))


def _child(name: str, work: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Run one step in a fresh interpreter (same PYTHONPATH, cwd = project root); its result."""
    state_path, out_path = work / "state.json", work / f"{name}.json"
    state_path.write_text(json.dumps(state))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_step", name, str(state_path), str(out_path)]
    log.info("step %s ...", name)
    done = subprocess.run(cmd, cwd=state["root_str"], check=False, stdout=sys.stderr)
    if done.returncode != 0 or not out_path.is_file():
        raise SystemExit(f"step {name} failed (exit {done.returncode}); see the log above")
    return json.loads(out_path.read_text())


def _children(work: Path, name: str, root: Path) -> tuple[list[str], list[str]]:
    """Project files called by the python children of step `name`, and their command lines."""
    files: set[str] = set()
    argvs = []
    for path in sorted((work / f"children-{name}").glob("*.json")):
        got = json.loads(path.read_text())
        found = project_files(got["files"], root)
        if found:  # children that never touched the project (pip, a shell helper) are left out
            files |= set(found)
            argvs.append(" ".join(got["argv"]))
    return sorted(files), argvs


def measure(work: Path) -> dict[str, Any]:
    """Setup (unless `work` holds one), then the three traced steps; both crossings."""
    root = project_root()
    os.environ["MEDCAP_ARTIFACTS"] = str(work / "artifacts")
    os.environ["MEDCAP_EXAMPLES"] = "off"
    site = work / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    state: dict[str, Any] = {"work": str(work), "site": str(site), "root_str": str(root)}
    setup_file = work / "setup-done.json"
    if not setup_file.is_file():
        setup_file.write_text(json.dumps(_child("setup", work, state)))
    state.update(json.loads(setup_file.read_text()))
    parts = {name: _child(name, work, state) for name in ("evaluate", "compare", "upload")}
    out: dict[str, Any] = {"root": str(root), "runs": [Path(state["run_a"]).name, Path(state["run_b"]).name]}
    for key, steps in (("evaluation", ("evaluate", "compare")), ("upload", ("upload",))):
        files: set[str] = set()
        entry: dict[str, Any] = {"parts": {}, "child_processes": [], "problems": []}
        for step in steps:
            own, (kids, argvs) = parts[step]["files"], _children(work, step, root)
            entry["parts"][step] = own
            if kids:
                entry["parts"][f"{step} (child processes)"] = kids
            entry["child_processes"] += argvs
            entry["problems"] += parts[step].get("problems", [])
            files |= set(own) | set(kids)
        entry["count"], entry["files"] = len(files), sorted(files)
        out[key] = entry
    out["import_failures"] = parts["evaluate"]["import_failures"]
    return out


def report(out: dict[str, Any]) -> str:
    """The text form: counts, then the files of each crossing."""
    lines = [f"project root: {out['root']}  (runs {', '.join(out['runs'])})"]
    titles = {"evaluation": "(a) `python -m medcap evaluate RUN --no-meteor` -> Compare page, paired difference",
              "upload": "(b) upload on 'Caption an image' -> caption, similar cases, attention"}
    for key, title in titles.items():
        entry = out[key]
        sizes = ", ".join(f"{k} {len(v)}" for k, v in entry["parts"].items())
        lines += ["", f"{title}: {entry['count']} files  ({sizes})"]
        lines += [f"  child process: {a}" for a in entry["child_processes"]]
        lines += [f"  PROBLEM: {p}" for p in entry["problems"]]
        lines += [f"  {f}" for f in entry["files"]]
    if out["import_failures"]:
        lines += ["", "modules that could not be imported beforehand:"] + [f"  {f}" for f in out["import_failures"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--work", type=Path, help="work folder (kept; a finished setup in it is reused)")
    parser.add_argument("--_step", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args._step:
        name, state_path, out_path = args._step
        run_step(name, Path(state_path), Path(out_path))
        return 0
    with tempfile.TemporaryDirectory(prefix="medcap-crossings-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        out = measure(work)
    print(json.dumps(out, indent=2) if args.json else report(out))
    return 1 if out["evaluation"]["problems"] or out["upload"]["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
