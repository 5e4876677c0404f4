#!/usr/bin/env bash
# Installs PyPI torch==2.9.0 (the libtorch that tch 0.22 / burn-tch 0.22.1 expects) and the Python
# packages the parity tests use into a virtualenv, idempotently.
#
#   scripts/setup-libtorch.sh            # venv at $GATELAB_VENV (default ~/.cache/gatelab/venv)
#
# The venv lives outside the clone so that CI runs on the same machine reuse it (~6.7 GB: the Linux
# wheel pulls in CUDA libraries that libtorch links even on a CPU-only machine).
set -euo pipefail
VENV="${GATELAB_VENV:-$HOME/.cache/gatelab/venv}"
TORCH_VERSION=2.9.0
TRANSFORMERS_SPEC='transformers>=4.57,<5'

have() { "$VENV/bin/python" - "$@" 2>/dev/null <<'PY'
import sys, importlib.metadata as m
want_torch = sys.argv[1]
assert m.version("torch") == want_torch
import transformers, safetensors, numpy  # noqa: F401
PY
}

if [ -x "$VENV/bin/python" ] && have "$TORCH_VERSION"; then
  echo "setup-libtorch: torch $TORCH_VERSION already in $VENV"
else
  echo "setup-libtorch: installing torch==$TORCH_VERSION and transformers into $VENV (a few GB, a few minutes)"
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "torch==$TORCH_VERSION" "$TRANSFORMERS_SPEC" safetensors numpy
  have "$TORCH_VERSION" || { echo "setup-libtorch: install finished but torch $TORCH_VERSION is not importable from $VENV" >&2; exit 1; }
fi
echo "setup-libtorch: ok ($VENV)"
