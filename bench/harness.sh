#!/usr/bin/env bash
# The training harness's own loop (data, loss read-back, clipping, AdamW, logging, the dynamics
# probe every 250 steps) against `gatelab bench`'s bare step, same shape, alternating:
#   bench/harness.sh [BACKENDS] [ROUNDS] [STEPS]     default: "flex tch" 2 300 (STEPS > 100, the warmup)
# The harness figure is the median of the tokens/s its metrics.jsonl logs every 25 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build -q "${GATELAB_CARGO_FLAGS[@]}" --bin gatelab
bin="$CARGO_TARGET_DIR/release/gatelab"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo '{"name": "one", "variants": [{"name": "baseline", "paper": "Table 1 row 1"}]}' > "$tmp/grid.json"
"$bin" grid show core baseline --json > "$tmp/baseline.json"
for round in $(seq "${2:-2}"); do
  for backend in ${1:-flex tch}; do
    if ! "$bin" sweep "$tmp/grid.json" --backend "$backend" --out "$tmp/$backend-$round" --no-report "train.steps=${3:-300}" > "$tmp/log" 2>&1; then
      echo "bench/harness.sh: $(tail -n 1 "$tmp/log")" >&2; exit 1
    fi
    harness=$(python3 -c 'import glob, json, statistics, sys
xs = [json.loads(l)["tokens_per_s"] for l in open(glob.glob(sys.argv[1] + "/baseline-*/metrics.jsonl")[0])][1:]
print(round(statistics.median(xs)))' "$tmp/$backend-$round")
    bench=$("$bin" bench --one "$backend" --config "$tmp/baseline.json" --steps 30 --warmup 3 | python3 -c 'import json, sys
print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])["train_tokens_per_s"]))')
    echo "round $round $backend: harness $harness tokens/s, bench step $bench tokens/s ($(python3 -c "print(f'{$harness / $bench:.2f}')")×)"
  done
done
