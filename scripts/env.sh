# Sourced by scripts/gatelab and scripts/test: one build profile (release), one target directory and
# one feature set for tests and runs, so neither rebuilds Burn for the other.
#
#   CARGO_TARGET_DIR   default ~/.cache/gatelab/target (outside the clone: kept between CI runs)
#   GATELAB_VENV       the torch==2.9.0 virtualenv made by scripts/setup-libtorch.sh
#   GATELAB_FEATURES   cargo features; default "tch" when that virtualenv exists, else none
#                      (flex is always built; wgpu is a default feature)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatelab/target}"
GATELAB_VENV="${GATELAB_VENV:-$HOME/.cache/gatelab/venv}"
if [ -z "${GATELAB_FEATURES+x}" ]; then
  if [ -x "$GATELAB_VENV/bin/python" ]; then GATELAB_FEATURES=tch; else GATELAB_FEATURES=; fi
fi
export GATELAB_FEATURES GATELAB_VENV
case ",$GATELAB_FEATURES," in
  *,tch,*)
    # torch-sys finds libtorch through the virtualenv's python (LIBTORCH_USE_PYTORCH=1); the PyPI
    # wheel carries no rpath for its libraries, so the binaries need LD_LIBRARY_PATH at run time.
    export VIRTUAL_ENV="$GATELAB_VENV" LIBTORCH_USE_PYTORCH=1
    export PATH="$GATELAB_VENV/bin:$PATH"
    torch_lib="$(echo "$GATELAB_VENV"/lib/python3*/site-packages/torch/lib)"
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
esac
# Python used by the parity tests (reference implementation in tests/python): the venv when present.
if [ -x "$GATELAB_VENV/bin/python" ]; then export GATELAB_PYTHON="${GATELAB_PYTHON:-$GATELAB_VENV/bin/python}"; fi
# wgpu/Vulkan loaders complain without a writable runtime dir.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -w "${XDG_RUNTIME_DIR:-/nonexistent}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/gatelab-xdg-$(id -u)"; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
fi
GATELAB_CARGO_FLAGS=(--release --workspace)
[ -n "$GATELAB_FEATURES" ] && GATELAB_CARGO_FLAGS+=(--features "$GATELAB_FEATURES")
