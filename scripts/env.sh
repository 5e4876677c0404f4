# Sourced by scripts/gatelab and scripts/test (under `set -euo pipefail`): one build profile
# (release), one feature set and one target directory per feature set, so tests and runs share
# one build of Burn, and switching feature sets reuses each set's own build instead of
# rebuilding Burn.
#
#   GATELAB_FEATURES   cargo features beyond flex and wgpu (always built): "" (default), "tch",
#                      "cuda" (Burn's CUDA backend), or several ("tch,cuda"); "hub" for Hugging
#                      Face datasets. An explicit choice, never detected.
#   GATELAB_VENV       the torch==2.9.0 virtualenv made by scripts/setup-libtorch.sh
#                      (default ~/.cache/gatelab/venv); the tch feature needs it
#   CARGO_TARGET_DIR   default ~/.cache/gatelab/target/<feature set> (outside the clone, so CI
#                      runs on one machine share it)
#
# Sets GATELAB_CARGO_FLAGS (an array) and GATELAB_BUILD_NOTE (one line saying what is built).
GATELAB_FEATURES="${GATELAB_FEATURES:-}"
GATELAB_VENV="${GATELAB_VENV:-$HOME/.cache/gatelab/venv}"
export GATELAB_FEATURES GATELAB_VENV
gatelab_feature_set="${GATELAB_FEATURES//[, ]/+}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatelab/target/${gatelab_feature_set:-default}}"

case ",$GATELAB_FEATURES," in
  *,tch,*)
    if [ ! -x "$GATELAB_VENV/bin/python" ]; then
      echo "gatelab: GATELAB_FEATURES=tch needs the torch virtualenv at $GATELAB_VENV: run scripts/setup-libtorch.sh (or unset GATELAB_FEATURES for flex and wgpu)" >&2
      return 1
    fi
    # torch-sys finds libtorch through the virtualenv's python (LIBTORCH_USE_PYTORCH=1). The PyPI
    # wheel carries no rpath; the gatelab binary records one at build time (experiments/build.rs),
    # and LD_LIBRARY_PATH covers the other crates' test binaries.
    export VIRTUAL_ENV="$GATELAB_VENV" LIBTORCH_USE_PYTORCH=1
    export PATH="$GATELAB_VENV/bin:$PATH"
    gatelab_torch_lib="$(echo "$GATELAB_VENV"/lib/python3*/site-packages/torch/lib)"
    export LD_LIBRARY_PATH="$gatelab_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
esac

case ",$GATELAB_FEATURES," in
  *,cuda,*)
    # Burn's CUDA backend loads the driver at run time and builds with no CUDA installed; its
    # bindings (cudarc) ask nvcc which CUDA API to bind, or, without nvcc, CUDARC_CUDA_VERSION: 12.8
    # here, which any driver from 570 on serves.
    if ! command -v nvcc >/dev/null 2>&1; then
      export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-12080}"
    fi
    ;;
esac

# The Python of the parity tests and of `gatelab bench`'s PyTorch peer: the virtualenv's when it
# exists (whatever the features), else python3; without torch those tests print SKIPPED.
if [ -x "$GATELAB_VENV/bin/python" ]; then
  export GATELAB_PYTHON="${GATELAB_PYTHON:-$GATELAB_VENV/bin/python}"
fi

# wgpu/Vulkan loaders complain without a writable runtime dir.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -w "${XDG_RUNTIME_DIR:-/nonexistent}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/gatelab-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

GATELAB_CARGO_FLAGS=(--release --workspace)
if [ -n "$GATELAB_FEATURES" ]; then
  GATELAB_CARGO_FLAGS+=(--features "$GATELAB_FEATURES")
fi
GATELAB_BUILD_NOTE="backends flex, wgpu${GATELAB_FEATURES:+ + features $GATELAB_FEATURES} (GATELAB_FEATURES=${GATELAB_FEATURES:-<unset>}); build in $CARGO_TARGET_DIR"

# Runs cargo (build or test) with the flags above. The first build of a feature set compiles Burn:
# it says so, and shows cargo's progress. Later builds are quiet unless stderr is a terminal.
gatelab_cargo() {
  local quiet=(-q) built="$CARGO_TARGET_DIR/.gatelab-built"
  if [ ! -f "$built" ]; then
    echo "gatelab: first build of $GATELAB_BUILD_NOTE: compiles Burn, about 20-25 minutes on 2 cores; later builds take seconds" >&2
    quiet=()
  elif [ -t 2 ]; then
    quiet=()
  fi
  cargo "$1" "${quiet[@]}" "${GATELAB_CARGO_FLAGS[@]}" "${@:2}" && { [ "$1" = clippy ] || [ -f "$built" ] || touch "$built"; }
}
