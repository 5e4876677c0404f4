#!/usr/bin/env bash
# The tables of docs/throughput.md, each `gatelab bench` measuring gatelab (flex, and tch when
# built with it) beside PyTorch eager and torch.compile in one run:
#   bench/throughput.sh [small|d128|d256|d256-interleaved|precision|all]     default: all (about 45 minutes)
# Writes results/bench/<name>.json (every round, the medians and the markdown tables) and prints
# the tables. Build with tch for the libtorch rows: GATELAB_FEATURES=tch bench/throughput.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
gatelab_cargo build --bin gatelab
bin="$CARGO_TARGET_DIR/release/gatelab"
d128=(model.n_layers=4 model.d_model=128 model.n_heads=4 model.n_kv_heads=4 model.head_dim=32
  model.d_ff=384 model.qk_norm=true model.tie_embeddings=true)
d256=(model.n_layers=6 model.d_model=256 model.n_heads=4 model.n_kv_heads=4 model.head_dim=64
  model.d_ff=768 model.qk_norm=true model.tie_embeddings=true data.seq_len=256 train.batch_size=16)
run() {
  case "$1" in
    small) "$bin" bench --compile --rounds 3 --steps 30 --out results/bench/small.json ;;
    d128) "$bin" bench --compile --rounds 3 --steps 15 --out results/bench/d128.json "${d128[@]}" ;;
    d256) "$bin" bench --compile --rounds 3 --steps 8 --warmup 2 --out results/bench/d256.json "${d256[@]}" ;;
    d256-interleaved) "$bin" bench --interleave --rounds 2 --steps 20 --warmup 3 --passes 4 \
      --out results/bench/d256-interleaved.json "${d256[@]}" ;;
    precision) "$bin" bench --backends "${GATELAB_BENCH_BACKENDS:-flex,tch}" --precisions f32,bf16 --variants baseline \
      --rounds 3 --steps 15 --out results/bench/precision.json "${d128[@]}" ;;
    *) echo "bench/throughput.sh: no table '$1' (small, d128, d256, d256-interleaved, precision, all)" >&2; exit 2 ;;
  esac
}
if [ "${1:-all}" = all ]; then
  for t in small d128 d256 d256-interleaved precision; do run "$t"; done
else
  run "$1"
fi
