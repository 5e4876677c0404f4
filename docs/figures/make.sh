#!/usr/bin/env bash
# Reruns every study behind docs/findings.md and the README's figure, and copies the figures the
# docs show into docs/figures/. Each sweep resumes where it stopped (rerun this after an
# interruption); results land under results/findings/.
#
#   docs/figures/make.sh [core|core-10|stability|stability-deep|ladder|gates|gates-m|activations|activations-search|activations-peak|cures|length|recall|recall-lr|recall-frontier|retrofit|retrofit-tiny|retrofit-recall|retrofit-shakes ...]
#   (default: all)
#   BACKEND=tch GATELAB_FEATURES=tch docs/figures/make.sh                 # faster on a CPU (docs/backends.md)
#
# Wall times on the 2-core machine of docs/findings.md, with BACKEND=tch: core 18 min, stability
# 28 min, stability-deep 25 min, ladder 60 min, gates 32 min, gates-m 54 min, activations 10-25 min, cures 66 min, length 3 min; recall (flex is enough)
# about 40 min, recall-lr 15 min, recall-frontier 30 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
backend="${BACKEND:-flex}"
out=results/findings
figures=docs/figures
gatelab() { ${GATELAB_BIN:-scripts/gatelab} "$@"; }
copy() { cp "$out/$1/$2.png" "$figures/$1-$2.png"; cp "$out/$1/$2.svg" "$figures/$1-$2.svg"; }

study() {
  case "$1" in
    core)
      gatelab sweep core --seeds 3 --backend "$backend" --out "$out/core"
      copy core first_token_attention_per_layer
      copy core first_token_attention_over_training
      cp "$figures/core-first_token_attention_per_layer.png" "$figures/core-first-token-attention.png" ;;
    core-10)
      # The sink's positive control with 10 seeds (issue 36: at 3 seeds its interval is too wide
      # to be sure of), baseline and G1 elementwise; then claim 5 where the baseline has a sink.
      gatelab sweep core --seeds 10 --variants baseline,g1-elementwise --backend "$backend" --out "$out/core-10seeds"
      gatelab eval-length "$out/core-10seeds" --factors 1,2,4,8 --methods none,yarn --backend "$backend" >/dev/null
      gatelab report "$out/core-10seeds" --backend "$backend" >/dev/null
      python3 docs/figures/sink_cost.py "$out/core-10seeds"
      copy core-10seeds length_perplexity_none ;;
    stability)
      gatelab sweep stability --seeds 3 --backend "$backend" --out "$out/stability" train.lr=3e-3,6e-3,1.2e-2,2.4e-2,4.8e-2,9.6e-2,1.92e-1
      copy stability frontier_best_val_loss
      copy stability frontier_spikes ;;
    stability-deep)
      # Claim 2 where the baseline breaks (issue 36): 12 layers of d 64, clipping off, then on.
      gatelab sweep stability-deep --seeds 3 --backend "$backend" --out "$out/stability-deep" --no-report train.lr=3e-1,6e-1,1
      gatelab sweep stability-deep --seeds 3 --backend "$backend" --out "$out/stability-deep" --no-report train.lr=1 train.grad_clip=1
      gatelab sweep stability-deep --seeds 3 --backend "$backend" --out "$out/stability-deep" --no-report train.lr=2
      gatelab report "$out/stability-deep" --backend "$backend" >/dev/null
      python3 docs/figures/divergence_table.py "$out/stability-deep" ;;
    ladder)
      gatelab sweep ladder --seeds 3 --backend "$backend" --out "$out/ladder"
      copy ladder val_loss_vs_baseline
      copy ladder first_token_attention_per_layer ;;
    gates)
      gatelab sweep gates --seeds 3 --backend "$backend" --out "$out/gates"
      copy gates first_token_attention_per_layer ;;
    gates-m)
      # The same forms on the ladder's M rung (tinyshakespeare bytes, 4 layers d 128, SwiGLU 384,
      # 800 steps), where loss tells gates apart; at d 128, d/4 is k = 32, so g1-k32 is left out.
      gatelab sweep gates --seeds 3 --backend "$backend" --out "$out/gates-m" --data tinyshakespeare \
        --variants baseline,g1,g1-k4,g1-k12,g1-quarter,g1-2s-zero,g1-2s-zero-k12,g1-tanh,g1-g2 \
        data.seq_len=128 model.qk_norm=true model.tie_embeddings=false train.batch_size=16 train.log_every=25 \
        train.eval_every=250 train.eval_batches=16 train.dynamics_every=250 train.checkpoint_every=250 \
        model.n_layers=4 model.d_model=128 model.n_heads=4 model.n_kv_heads=4 model.head_dim=32 model.d_ff=384 \
        train.steps=800 train.lr=2e-3
      copy gates-m val_loss_vs_baseline ;;
    activations)
      gatelab sweep activations --seeds 3 --backend "$backend" --out "$out/activations"
      copy activations top_activations_per_layer ;;
    activations-search)
      # Claim 4's search for a baseline with a massive activation (docs/activations.md), one seed
      # per step, baseline only; the table of each step from its analysis.json.
      search() { local name="$1"; shift; gatelab sweep activations --variants baseline --seeds 1 --backend "$backend" --out "results/search/activations-$name" "$@" >/dev/null; }
      search nobos data.bos=false train.weight_decay=0.1,0
      search long train.weight_decay=0 train.steps=8000
      search 2l-nobos data.bos=false model.n_layers=2 train.weight_decay=0 train.steps=4000
      search long-lr1e-2 train.weight_decay=0 train.steps=8000 train.lr=1e-2
      search long-sandwich train.weight_decay=0 train.steps=8000 model.sandwich_norm=true
      python3 docs/figures/peak_table.py results/search/activations-* ;;
    activations-peak)
      # Claim 4 where the baseline grows a peak (search step 2): baseline and G1 elementwise.
      gatelab sweep activations --seeds 3 --backend "$backend" --out "$out/activations-peak" train.weight_decay=0 train.steps=8000
      python3 docs/figures/peak_table.py "$out/activations-peak"
      copy activations-peak top_activations_per_layer ;;
    cures)
      gatelab sweep cures --seeds 3 --backend "$backend" --out "$out/cures"
      gatelab eval "$out/cures" --window 32 --backend "$backend" >/dev/null
      gatelab eval-length "$out/cures" --factors 1,4 --methods yarn --sequences 32 --sink-sequences 8 --needle-samples 2 --backend "$backend" >/dev/null
      gatelab report "$out/cures" --backend "$backend" >/dev/null
      copy cures first_token_attention_per_layer
      copy cures slot_weight
      copy cures streaming_ratio ;;
    length)
      gatelab eval-length "$out/core" --factors 1,2,4 --methods none,yarn --backend "$backend"
      gatelab report "$out/core" --backend "$backend" >/dev/null
      copy core length_perplexity_yarn ;;
    recall)
      # Trained at T = 32; recall at 1T..8T under each RoPE scaling; then continued at 2T with a
      # larger base (extend) and evaluated at the same absolute lengths (64..256 = its 1T..4T).
      gatelab sweep recall --seeds 3 --backend "$backend" --out "$out/recall"
      gatelab eval-length "$out/recall" --factors 1,2,4,8 --sequences 128 --needle-samples 16 --backend "$backend" >/dev/null
      gatelab report "$out/recall" --backend "$backend" >/dev/null
      gatelab extend "$out/recall" --seq-len 64 --rope-theta 100000 --steps 500 --backend "$backend" --out "$out/recall-ext64"
      gatelab eval-length "$out/recall-ext64" --factors 1,2,4 --sequences 128 --needle-samples 16 --backend "$backend" >/dev/null
      gatelab report "$out/recall-ext64" --backend "$backend" >/dev/null
      for m in none linear ntk yarn; do copy recall "length_recall_$m"; done
      copy recall length_retrieval
      copy recall-ext64 length_recall_none
      copy recall-ext64 length_recall_yarn ;;
    recall-lr)
      # The same at a learning rate of 1e-3 (2000 steps), where the gated models learn the task at T
      # too: recall beyond T then compares extrapolation, not learning.
      gatelab sweep recall --seeds 3 --backend "$backend" --out "$out/recall-lr1e-3" --no-report train.lr=1e-3 train.steps=2000
      gatelab eval-length "$out/recall-lr1e-3" --factors 1,2,4,8 --sequences 128 --needle-samples 16 --backend "$backend" >/dev/null
      gatelab report "$out/recall-lr1e-3" --backend "$backend" >/dev/null
      for m in none yarn; do copy recall-lr1e-3 "length_recall_$m"; done ;;
    recall-frontier)
      # Learning recall against the learning rate: 1e-3, 2e-3, 3e-3 at 2000 steps (shares the 1e-3
      # runs' configuration with recall-lr, not their folder).
      gatelab sweep recall --seeds 3 --backend "$backend" --out "$out/recall-lr" --no-report train.lr=1e-3,2e-3,3e-3 train.steps=2000
      gatelab report "$out/recall-lr" --backend "$backend" >/dev/null
      cp "$out/recall-lr/frontier_best_val_loss.png" "$figures/recall-frontier_best_val_loss.png"
      cp "$out/recall-lr/frontier_best_val_loss.svg" "$figures/recall-frontier_best_val_loss.svg" ;;
    retrofit-tiny|retrofit)
      # A gate added to finished ungated runs (docs/retrofit.md): parents at the tiny (5 seeds) or
      # the small preset (3 seeds), then 2000 steps of each arm beside the all-parameter control.
      if [ "$1" = retrofit ]; then preset=small seeds=3; else preset=tiny seeds=5; fi
      gatelab sweep core --preset "$preset" --variants baseline,g1-elementwise --seeds "$seeds" --backend "$backend" --out "$out/$1-parents" --no-report
      for arm in "--train gate" "--train gate+norms" "--train all" "--init random --gate activation=sigmoid --train gate"; do
        # shellcheck disable=SC2086
        gatelab retrofit "$out/$1-parents" --variants baseline --steps 2000 --backend "$backend" --out "$out/$1" $arm >/dev/null
      done
      gatelab report "$out/$1-parents" --backend "$backend" >/dev/null
      gatelab report "$out/$1" --backend "$backend" >/dev/null
      copy "$1" loss_curves
      copy "$1" gate_mean_over_training ;;
    retrofit-recall|retrofit-shakes)
      # The length arms of docs/retrofit.md from trained ungated parents (3 seeds): (a) continued
      # training at 2T with a 10x RoPE base, every parameter, no gate (the control); (b) the same
      # with a retrofitted G1 2σ gate trained alone; (c) the gate and the norms; (d) the gate
      # trained alone at T, paired with (a). Then eval-length at the same lengths in tokens.
      if [ "$1" = retrofit-recall ]; then
        # The recall setting at lr 1e-3, where baseline and G1 both learn it (docs/recall.md).
        parents="$out/recall-lr1e-3"; t=32 theta=100000 lengths=64,128,256 factors=1,2,4,8
        gatelab sweep recall --variants baseline,g1-elementwise --seeds 3 --backend "$backend" --out "$parents" --no-report train.lr=1e-3 train.steps=2000
        evalopts=(--sequences 128 --needle-samples 16)
      else
        # Two attention-only layers of two heads on tinyshakespeare (docs/length.md).
        parents="$out/shakes-2l"; t=128 theta=100000 lengths=256,512,1024 factors=1,2,4,8
        gatelab sweep core --variants baseline,g1-elementwise --data tinyshakespeare --seeds 3 --backend "$backend" --out "$parents" --no-report model.n_layers=2 model.n_heads=2 model.n_kv_heads=2 model.head_dim=32 train.steps=3000
        evalopts=(--sequences 32 --sink-sequences 8 --needle-samples 4)
      fi
      r="$out/$1"
      for arm in "--train gate" "--train gate+norms"; do
        # shellcheck disable=SC2086
        gatelab retrofit "$parents" --variants baseline --seq-len $((2 * t)) --rope-theta "$theta" --steps 500 --backend "$backend" --out "$r" $arm >/dev/null
      done
      gatelab retrofit "$parents" --variants baseline --steps 500 --train gate --name g1-identity-gate-at-T --control-seq-len $((2 * t)) --control-rope-theta "$theta" --backend "$backend" --out "$r" >/dev/null
      gatelab eval-length "$parents" --factors "$factors" --methods none,yarn "${evalopts[@]}" --backend "$backend" >/dev/null
      gatelab eval-length "$r" --lengths "$lengths" --methods none,yarn "${evalopts[@]}" --backend "$backend" >/dev/null
      gatelab report "$parents" --backend "$backend" >/dev/null
      gatelab report "$r" --backend "$backend" >/dev/null
      if [ "$1" = retrofit-recall ]; then copy "$1" length_recall_none; copy "$1" length_recall_yarn; else copy "$1" length_perplexity_none; copy "$1" length_perplexity_yarn; fi ;;
    *) echo "make.sh: unknown study $1 (core, core-10, stability, stability-deep, ladder, gates, gates-m, activations, activations-search, activations-peak, cures, length, recall, recall-lr, recall-frontier, retrofit, retrofit-tiny, retrofit-recall, retrofit-shakes)" >&2; exit 1 ;;
  esac
}

for s in "${@:-core core-10 stability stability-deep ladder gates gates-m activations activations-search activations-peak cures length recall recall-lr recall-frontier}"; do
  for one in $s; do study "$one"; done
done
