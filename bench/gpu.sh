#!/usr/bin/env bash
# One prepared check on a machine with an NVIDIA GPU, as one command (about 8 minutes):
#   1. libtorch on CUDA (issue 32): gatelab-tch-cuda in f32 and bf16 (`train.precision`) against
#      PyTorch eager and torch.compile, f32 and bf16 autocast, each with SDPA (`bench/peer.py`,
#      same model and optimiser), baseline and G1 elementwise trained step by step in one process
#      each, at GPT-2 small's shape (12 layers, d 768, T 1024) and a few steps of the paper's 1.7B
#      dense shape, and GPT-2 small in bf16 with each block recomputed (train.checkpointing=blocks);
#      then tokens/s, MFU against the GPU's dense bf16 peak, peak memory and the kernel
#      libtorch's dispatcher picks, in $OUT/work/tch-summary.{json,md};
#   2. which backends work there (wgpu through Vulkan), and gatelab-wgpu against PyTorch eager
#      at the 6-layer d 256 shape of docs/throughput.md;
#   3. Burn's own GPU path (issue 37): gatelab-cuda (Burn's CUDA backend) and gatelab-wgpu, both
#      with the CubeCL attention kernels (model/src/sdpa/cube.rs), against PyTorch eager at the
#      d 256 shape and at GPT-2 small's, then tokens/s, MFU and peak memory in
#      $OUT/work/cuda-summary.{json,md}; with two GPUs, the data-parallel step time on 1 and 2
#      devices (Burn's all_reduce) and the two-device gradient test;
#   4. the ladder's top rung (docs/findings.md, claim 1) on wgpu in what is left of the budget.
# Everything lands in $OUT/gpu.tgz (bench JSON, logs, the report without weights).
#
#   GPU_TCH_BIN  a gatelab binary built with the tch feature against PyPI torch 2.9.0 (default
#                .gpu/gatelab-tch, from .gpu/gatelab-tch.gz); it needs that torch at run time:
#   GPU_PYTHON   Python with torch 2.9 and CUDA, for libtorch and the peer (default python3)
#   GPU_BIN      a gatelab binary built with the wgpu feature (default: .gpu/gatelab, from .gpu/gatelab.gz)
#   GPU_CUDA_BIN a gatelab binary built with GATELAB_FEATURES=cuda (default .gpu/gatelab-cuda, from
#                .gpu/gatelab-cuda.gz); GPU_COLLECTIVE_TEST the collective test binary of that build
#                (cargo test -p gatelab --test collective --no-run prints its path; optional)
#   GPU_TOTAL_S  seconds for everything (default 480); the ladder gets what parts 1 and 2 leave
#   GPU_STEPS    steps per ladder run (default 1000)
#   GPU_PARTS    which parts to run (default "tch wgpu cuda ladder")
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

started=$SECONDS
total="${GPU_TOTAL_S:-480}"
parts="${GPU_PARTS:-tch wgpu cuda ladder}"
wants() { [[ " $parts " == *" $1 "* ]]; }
py="${GPU_PYTHON:-python3}"
unpack() { [ ! -x "$1" ] && [ -f "$1.gz" ] && gunzip -c "$1.gz" > "$1" && chmod +x "$1"; [ -x "$1" ]; }
log "machine: $(nvidia-smi -L 2>&1 | head -1); $(nproc) CPUs; VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"

gpt2=(model.vocab_size=50304 model.n_layers=12 model.d_model=768 model.n_heads=12 model.n_kv_heads=12
      model.head_dim=64 model.d_ff=2048 model.qk_norm=true model.tie_embeddings=true data.seq_len=1024 train.batch_size=16)

# 1. libtorch on CUDA.
tch_bin="${GPU_TCH_BIN:-$PWD/.gpu/gatelab-tch}"
if wants tch; then
  torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
  torch_ver=$("$py" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>/dev/null)
  if ! unpack "$tch_bin"; then
    log "tch: no gatelab-tch binary at $tch_bin: part 1 skipped"
  elif [[ "$torch_ver" != 2.9.* ]]; then
    log "tch: $py has torch '${torch_ver:-none}', not 2.9 (the binary links PyPI torch 2.9.0's libtorch): part 1 skipped"
  else
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "tch: torch $torch_ver, libtorch at $torch_lib"
    "$tch_bin" backends 2>&1 | tee "$work/backends-tch.txt"
    log "tch: GPT-2 small shape, f32 and bf16, against PyTorch eager and compiled"
    GATELAB_PYTHON="$py" GATELAB_PEER_DEVICE=cuda timeout 240 "$tch_bin" bench --backends tch-cuda --precisions f32,bf16 \
      --compile --interleave --rounds 1 --steps 20 --warmup 5 --passes 5 --threads "$(nproc)" \
      --out "$work/bench-tch-gpt2.json" "${gpt2[@]}" 2>&1 | tee "$work/bench-tch-gpt2.log"
    # Activation checkpointing per block (train.checkpointing=blocks): peak GPU memory and step
    # time against the bf16 run above, same shape.
    log "tch: GPT-2 small shape, bf16, each block recomputed in the backward pass"
    GATELAB_PYTHON="$py" GATELAB_PEER_DEVICE=cuda timeout 90 "$tch_bin" bench --backends tch-cuda --precisions bf16 \
      --no-peer --rounds 1 --steps 10 --warmup 3 --passes 1 --threads "$(nproc)" \
      --out "$work/bench-tch-gpt2-blocks.json" "${gpt2[@]}" train.checkpointing=blocks 2>&1 | tee "$work/bench-tch-gpt2-blocks.log"
    # The paper's 1.7B dense model (28 layers, d 2048, 16 query and 8 KV heads of 128, SwiGLU
    # 6144, Qwen3's vocabulary) for a few steps, bf16, at the batch that fits.
    p17=(model.vocab_size=151936 model.n_layers=28 model.d_model=2048 model.n_heads=16 model.n_kv_heads=8
         model.head_dim=128 model.d_ff=6144 model.qk_norm=true model.tie_embeddings=true data.seq_len=2048 train.batch_size=4)
    log "tch: the paper's 1.7B dense shape, bf16, a few steps"
    GATELAB_PYTHON="$py" GATELAB_PEER_DEVICE=cuda timeout 150 "$tch_bin" bench --backends tch-cuda --precisions bf16 \
      --interleave --rounds 1 --steps 4 --warmup 2 --passes 2 --threads "$(nproc)" \
      --out "$work/bench-tch-1.7b.json" "${p17[@]}" 2>&1 | tee "$work/bench-tch-1.7b.log"
    "$py" bench/mfu.py "$work"/bench-tch-*.json --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" \
      --out "$work/tch-summary" 2>&1 | tee -a "$work/gpu.log"
  fi
fi

bin="${GPU_BIN:-$PWD/.gpu/gatelab}"
if ! wants wgpu && ! wants ladder; then
  :
elif ! unpack "$bin"; then
  log "no wgpu gatelab binary at $bin: parts 2 and 3 skipped"
  parts="${parts//wgpu/}"; parts="${parts//ladder/}"
else
  "$bin" backends 2>&1 | tee "$work/backends.txt"
fi

d256=(model.n_layers=6 model.d_model=256 model.n_heads=4 model.n_kv_heads=4 model.head_dim=64
      model.d_ff=768 model.qk_norm=true model.tie_embeddings=true data.seq_len=256 train.batch_size=16)
backend="${GPU_BACKEND:-wgpu}"
wants wgpu && log "bench: $backend against PyTorch eager on ${GPU_PEER_DEVICE:-cuda}, interleaved, 6 layers d 256"
wants wgpu && GATELAB_PYTHON="$py" GATELAB_PEER_DEVICE="${GPU_PEER_DEVICE:-cuda}" timeout 150 \
  "$bin" bench --backends "$backend" --interleave --rounds 2 --steps "${GPU_BENCH_STEPS:-40}" --warmup 5 --passes 10 --threads "$(nproc)" \
  --out "$work/bench-d256.json" "${d256[@]}" 2>&1 | tee "$work/bench.log"

# 3. Burn's own GPU path: Burn's CUDA backend and wgpu with the CubeCL attention kernels.
cuda_bin="${GPU_CUDA_BIN:-$PWD/.gpu/gatelab-cuda}"
if wants cuda && ! unpack "$cuda_bin"; then
  log "cuda: no gatelab-cuda binary at $cuda_bin (GATELAB_FEATURES=cuda scripts/gatelab --help builds one): part 3 skipped"
elif wants cuda; then
  "$cuda_bin" backends 2>&1 | tee "$work/backends-cuda.txt"
  log "cuda: cuda and wgpu (CubeCL kernels) against PyTorch eager, 6 layers d 256, then GPT-2 small"
  GATELAB_PYTHON="$py" GATELAB_PEER_DEVICE=cuda timeout 150 "$cuda_bin" bench --backends cuda,wgpu --interleave \
    --rounds 1 --steps 20 --warmup 5 --passes 5 --threads "$(nproc)" \
    --out "$work/bench-cuda-d256.json" "${d256[@]}" 2>&1 | tee "$work/bench-cuda-d256.log"
  GATELAB_PYTHON="$py" GATELAB_PEER_DEVICE=cuda timeout 150 "$cuda_bin" bench --backends cuda --interleave \
    --rounds 1 --steps 10 --warmup 3 --passes 3 --threads "$(nproc)" \
    --out "$work/bench-cuda-gpt2.json" "${gpt2[@]}" 2>&1 | tee "$work/bench-cuda-gpt2.log"
  "$py" bench/mfu.py "$work"/bench-cuda-*.json --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" \
    --out "$work/cuda-summary" 2>&1 | tee -a "$work/gpu.log"
  if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
    for devs in 0 0,1; do
      log "cuda: data parallel on devices $devs (Burn's all_reduce with two)"
      s0=$SECONDS
      timeout 120 "$cuda_bin" sweep core --preset small --backend cuda --devices "$devs" --variants baseline \
        --out "$work/dp-$devs" --no-report "${d256[@]}" train.steps=100 2>&1 | tail -n 5 | tee -a "$work/dp.log"
      log "cuda: devices $devs: $((SECONDS - s0)) s for 100 steps"
    done
    [ -x "${GPU_COLLECTIVE_TEST:-}" ] && "$GPU_COLLECTIVE_TEST" --nocapture 2>&1 | tee "$work/collective-test.log"
  else
    log "cuda: one GPU: no data-parallel scaling"
  fi
fi

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
deadline=$((started + total - 40))
wants ladder && for seed in 0 1 2; do
  left=$((deadline - SECONDS))
  [ "$left" -gt 20 ] || { log "ladder: budget spent before seed $seed"; break; }
  log "ladder: seed $seed ($left s left)"
  timeout "$left" "$bin" sweep "$work/ladder-l.json" --backend "$backend" --out "$work/ladder-l" --no-report \
    "train.seed=$seed" 2>&1 | tail -n 20 | tee -a "$work/ladder.log"
done
wants ladder && log "report" && timeout 90 "$bin" report "$work/ladder-l" --backend "$backend" 2>&1 | tail -n 40 | tee "$work/report.log"
find "$work" -name model.safetensors -delete
find "$work" -name 'checkpoint-*' -type d -prune -exec rm -rf {} +
tar czf "$out/gpu.tgz" -C "$work" . && log "wrote $out/gpu.tgz ($(du -h "$out/gpu.tgz" | cut -f1))"
