#!/usr/bin/env bash
# One prepared check on a machine with an NVIDIA GPU, as one command:
#   1. which backends work there (wgpu through Vulkan);
#   2. gatelab-wgpu against PyTorch eager on the same GPU, baseline and G1 elementwise trained step
#      by step in one process each (`gatelab bench --interleave`), at the 6-layer d 256 shape of
#      docs/throughput.md;
#   3. the ladder's top rung (docs/findings.md, claim 1): baseline, G1 elementwise and G1 headwise at
#      6 layers, d 256, SwiGLU 768 on tinyshakespeare, trained longer than a CPU allows, seed by seed
#      within a time budget, then `gatelab report`.
# Everything lands in $OUT/gpu.tgz (bench JSON, logs, the report without weights).
#
#   GPU_BIN      a gatelab binary built with the wgpu feature (default: .gpu/gatelab, from .gpu/gatelab.gz)
#   GPU_BUDGET_S seconds for the ladder (default 270); GPU_STEPS steps per run (default 1000)
#   GPU_PYTHON   Python with torch and CUDA for the peer (default python3)
#   GPU_BACKEND, GPU_PEER_DEVICE, GPU_BENCH_STEPS   wgpu, cuda, 40 (others only to try the script)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/gpu}"
work="$out/work"
mkdir -p "$work"
log() { echo "[gpu.sh $(date +%T)] $*" | tee -a "$work/gpu.log"; }

# Vulkan loaders (a bare image has the NVIDIA driver's ICD but may lack libvulkan).
if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && { export VK_DRIVER_FILES="$icd"; break; }
done
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/gatelab-xdg}"; mkdir -p "$XDG_RUNTIME_DIR"

bin="${GPU_BIN:-$PWD/.gpu/gatelab}"
if [ ! -x "$bin" ] && [ -f .gpu/gatelab.gz ]; then gunzip -c .gpu/gatelab.gz > "$bin" && chmod +x "$bin"; fi
[ -x "$bin" ] || { log "no gatelab binary at $bin"; exit 1; }

log "machine: $(nvidia-smi -L 2>&1 | head -1); $(nproc) CPUs; VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
"$bin" backends 2>&1 | tee "$work/backends.txt"

d256=(model.n_layers=6 model.d_model=256 model.n_heads=4 model.n_kv_heads=4 model.head_dim=64
      model.d_ff=768 model.qk_norm=true model.tie_embeddings=true data.seq_len=256 train.batch_size=16)
backend="${GPU_BACKEND:-wgpu}"
log "bench: $backend against PyTorch eager on ${GPU_PEER_DEVICE:-cuda}, interleaved, 6 layers d 256"
GATELAB_PYTHON="${GPU_PYTHON:-python3}" GATELAB_PEER_DEVICE="${GPU_PEER_DEVICE:-cuda}" timeout 150 \
  "$bin" bench --backends "$backend" --interleave --rounds 2 --steps "${GPU_BENCH_STEPS:-40}" --warmup 5 --passes 10 --threads "$(nproc)" \
  --out "$work/bench-d256.json" "${d256[@]}" 2>&1 | tee "$work/bench.log"

# The top rung, seed-major, so every seed that finishes has all three variants.
python3 - "$work/ladder-l.json" "${GPU_STEPS:-1000}" <<'PY'
import json, sys
grid = json.load(open("experiments/grids/ladder.json"))
grid["name"] = "ladder-gpu"
grid["description"] = "The ladder's top rung on a GPU, longer than on a CPU."
grid["variants"] = [v for v in grid["variants"] if v["name"].startswith("l-")]
for v in grid["variants"]:
    v["set"]["train.steps"] = int(sys.argv[2])
    v["set"]["train.warmup_steps"] = int(sys.argv[2]) // 10
json.dump(grid, open(sys.argv[1], "w"), indent=1)
PY
deadline=$((SECONDS + ${GPU_BUDGET_S:-270}))
for seed in 0 1 2; do
  left=$((deadline - SECONDS))
  [ "$left" -gt 20 ] || { log "ladder: budget spent before seed $seed"; break; }
  log "ladder: seed $seed ($left s left)"
  timeout "$left" "$bin" sweep "$work/ladder-l.json" --backend "$backend" --out "$work/ladder-l" --no-report \
    "train.seed=$seed" 2>&1 | tail -n 20 | tee -a "$work/ladder.log"
done
log "report"
timeout 90 "$bin" report "$work/ladder-l" --backend "$backend" 2>&1 | tail -n 40 | tee "$work/report.log"
find "$work" -name model.safetensors -delete
find "$work" -name 'checkpoint-*' -type d -prune -exec rm -rf {} +
tar czf "$out/gpu.tgz" -C "$work" . && log "wrote $out/gpu.tgz ($(du -h "$out/gpu.tgz" | cut -f1))"
