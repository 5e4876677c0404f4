#!/usr/bin/env bash
# Activation checkpointing per block (train.checkpointing=blocks) against none: peak resident
# memory and training tokens/s of a 10-step run, per backend and depth, one run after the other
# in this script (docs/throughput.md, "Activation checkpointing"). A language-model block
# (d 128, 4 heads, SwiGLU 384, batch 16, T 1024) on the default data; the analysis at the end of a
# run is cut to one sequence, so the peak is the training step's.
#
#   bench/checkpointing.sh                           # flex, 4 and 8 layers, none and blocks
#   GATELAB_FEATURES=tch BACKENDS="flex tch" bench/checkpointing.sh
#   LAYERS=8 MODES="none balanced blocks" bench/checkpointing.sh     # Burn's balanced strategy too
set -euo pipefail
cd "$(dirname "$0")/.."
backends="${BACKENDS:-flex}"
layers="${LAYERS:-4 8}"
modes="${MODES:-none blocks}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -x /usr/bin/time ] || { echo "bench/checkpointing.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
scripts/gatelab --help >/dev/null # builds first, so the runs below time no build
source scripts/env.sh
bin="$CARGO_TARGET_DIR/release/gatelab"
export GATELAB_REPO="$PWD"
echo "| layers | backend | checkpointing | peak RSS (MiB) | tokens/s (median of steps 3-10) |"
echo "|---:|---|---|---:|---:|"
for L in $layers; do
  for be in $backends; do
    for mode in $modes; do
      out="$work/$be-$mode-$L"
      /usr/bin/time -v "$bin" sweep core --preset small --variants baseline --no-report --backend "$be" --out "$out" \
        data.seq_len=1024 model.n_layers="$L" model.d_model=128 model.n_heads=4 model.n_kv_heads=4 model.head_dim=32 \
        model.d_ff=384 train.batch_size=16 train.steps=10 train.warmup_steps=2 train.log_every=1 \
        train.dynamics_every=0 train.dynamics_batch=1 train.eval_batches=1 train.checkpointing="$mode" \
        >"$out.log" 2>&1 || { tail -n 3 "$out.log" >&2; exit 1; }
      peak_kb=$(awk '/Maximum resident/ {print $6}' "$out.log")
      tps=$(python3 - "$out" <<'PY'
import glob, json, statistics, sys
rows = [json.loads(l) for l in open(glob.glob(sys.argv[1] + "/*/metrics.jsonl")[0])]
print(round(statistics.median(r["tokens_per_s"] for r in rows[2:])))
PY
)
      echo "| $L | $be | $mode | $((peak_kb / 1024)) | $tps |"
    done
  done
done
