//! Hand-built probes with known answers: F-Attn, α(k), Sink, entropy, massive activations, gate
//! statistics and value drain must come out exactly.

use burn::tensor::{Device, Tensor, TensorData};
use gatelab_analysis::stats::{Accumulator, StatsConfig};
use gatelab_model::attention::AttentionProbe;
use gatelab_model::{LayerProbe, Probes};

const T: usize = 16;

fn t4(data: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, shape), &Device::flex())
}

/// Head 0 puts 0.6 on key 0 from every query ≥ 1 and spreads 0.4 over keys 1..=i; head 1 is
/// uniform over the causal past.
fn maps(batch: usize) -> Tensor<4> {
    let mut data = Vec::new();
    for _ in 0..batch {
        for head in 0..2 {
            for i in 0..T {
                for k in 0..T {
                    let p = match (head, i, k) {
                        (_, _, k) if k > i => 0.0,
                        (0, 0, _) => 1.0,
                        (0, _, 0) => 0.6,
                        (0, i, _) => 0.4 / i as f32,
                        (_, i, _) => 1.0 / (i + 1) as f32,
                    };
                    data.push(p);
                }
            }
        }
    }
    t4(data, [batch, 2, T, T])
}

fn probes(batch: usize) -> Probes {
    let (d, hd) = (8, 4);
    // Residual: 1 everywhere, 50 at position 3, dimension 5 (and -40 elsewhere, smaller in |h|).
    let mut residual = vec![1.0f32; batch * T * d];
    residual[3 * d + 5] = 50.0;
    residual[7 * d + 2] = -40.0;
    // Gate scores [batch, T, 2 heads, 1]: 0.5 at position 0, 0.05 elsewhere.
    let scores: Vec<f32> = (0..batch * T * 2).map(|i| if (i / 2) % T == 0 { 0.5 } else { 0.05 }).collect();
    // Values [batch, 1 KV head, T, hd]: first token (0.1, 0, 0, 0), others (2, 0, 0, 0).
    let values: Vec<f32> = (0..batch * T * hd)
        .map(|i| {
            if i % hd != 0 {
                0.0
            } else if (i / hd) % T == 0 {
                0.1
            } else {
                2.0
            }
        })
        .collect();
    let sdpa = t4(vec![-2.0; batch * T * 2 * hd], [batch, T, 2, hd]);
    let attention = AttentionProbe {
        attn: Some(maps(batch)),
        // Unused when the maps are given.
        queries: t4(vec![0.0; batch * 2 * T * hd], [batch, 2, T, hd]),
        keys: t4(vec![0.0; batch * T * hd], [batch, 1, T, hd]),
        values: t4(values, [batch, 1, T, hd]),
        gate_scores: Some(t4(scores, [batch, T, 2, 1])),
        sdpa_out: sdpa.clone(),
        sdpa_gated: sdpa.mul_scalar(0.25),
        cure: gatelab_model::SinkCure::Softmax,
        slot_logits: None,
        slot: None,
    };
    let residual = Tensor::<3>::from_data(TensorData::new(residual, [batch, T, d]), &Device::flex());
    Probes { layers: vec![LayerProbe { attention, residual, routing: None }] }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-5, "{a} != {b}");
}

#[test]
fn hand_built_probes_give_their_known_statistics() {
    let mut acc = Accumulator::new(StatsConfig::default());
    acc.add(&probes(2));
    acc.add(&probes(1)); // streamed: three sequences in two batches
    let stats = acc.finish();
    assert_eq!((stats.sequences, stats.tokens, stats.seq_len), (3, 48, 16));
    let layer = &stats.layers[0];
    let (h0, h1) = (&layer.heads[0], &layer.heads[1]);
    let harmonic = |n: usize| (1..=n).map(|i| 1.0 / i as f64).sum::<f64>();
    // F-Attn over all queries, queries ≥ 1 and ≥ 4.
    close(h0.first_token_attention[0], (1.0 + 0.6 * 15.0) / 16.0);
    close(h0.first_token_attention[1], 0.6);
    close(h0.first_token_attention[2], 0.6);
    close(h1.first_token_attention[0], harmonic(16) / 16.0);
    close(h1.first_token_attention[1], (harmonic(16) - 1.0) / 15.0);
    close(layer.first_token_attention[1], (0.6 + (harmonic(16) - 1.0) / 15.0) / 2.0);
    close(stats.chance_first_token_attention[1], (harmonic(16) - 1.0) / 15.0);
    // α(0) = 0.625 > 0.3 for head 0, H_16/16 = 0.211 for head 1: Sink_1 = 1/2.
    close(h0.alpha[0], 0.625);
    close(h1.alpha[0], harmonic(16) / 16.0);
    close(h0.alpha[1], 0.4 * harmonic(15) / 15.0);
    close(h1.alpha[1], (harmonic(16) - 1.0) / 15.0);
    close(h0.sink_share, 1.0);
    close(h1.sink_share, 0.0);
    close(layer.sink, 0.5);
    // Uniform rows: entropy ln(i + 1), averaged over queries 1..16.
    close(h1.entropy, (1..T).map(|i| ((i + 1) as f64).ln()).sum::<f64>() / 15.0);
    // Massive activation: 50 at (3, 5), median |h| 1.
    close(layer.max_activation, 50.0);
    assert_eq!(layer.max_at, (3, 5));
    close(layer.top1_median_ratio, 50.0);
    // The three largest |h| over the median: 50, 40, then a 1.
    for (got, want) in layer.top3_median_ratio.iter().zip([50.0, 40.0, 1.0]) {
        close(*got, want);
    }
    // Token norms per sequence: in the first of each batch √2507 at position 3, √1607 at 7, √8
    // elsewhere (the median); the second sequence of the first batch is √8 throughout. The first
    // token is ordinary in all three; the largest is position 3's in two.
    close(layer.first_token_norm_ratio.unwrap(), 1.0);
    close(layer.max_token_norm_ratio.unwrap(), (2.0 * (2507.0f64 / 8.0).sqrt() + 1.0) / 3.0);
    close(layer.max_token_norm_first.unwrap(), 0.0);
    // Gates: 1/16 of the scores are 0.5, the rest 0.05.
    let gate = layer.gate.as_ref().unwrap();
    close(gate.mean, (0.5 + 15.0 * 0.05) / 16.0);
    close(gate.below_0_1, 15.0 / 16.0);
    close(gate.below_0_01, 0.0);
    close(gate.first_token_mean.unwrap(), 0.5);
    close(gate.other_tokens_mean.unwrap(), 0.05);
    // Sigmoid logits: |ln(0.5/0.5)| = 0 at position 0, |ln(0.05/0.95)| elsewhere.
    close(gate.mean_abs_logit.unwrap(), 15.0 / 16.0 * (0.95f64 / 0.05).ln());
    assert_eq!(gate.histogram.iter().sum::<u64>(), 3 * 16 * 2);
    assert_eq!(gate.histogram[1], 3 * 15 * 2); // 0.05 falls in [0.05, 0.1)
    // SDPA magnitude and value drain.
    close(layer.sdpa_abs_before, 2.0);
    close(layer.sdpa_abs_after, 0.5);
    close(layer.value_norm_first, 0.1);
    close(layer.value_norm_rest, 2.0);
    close(stats.first_token_attention(), layer.first_token_attention[1]);
    close(stats.gate_mean().unwrap(), gate.mean);
}

#[test]
fn tiled_recomputation_equals_the_full_maps_under_every_cure() {
    for cure in gatelab_model::SinkCure::ALL {
        tiled_equals_full(cure);
    }
}

fn tiled_equals_full(cure: gatelab_model::SinkCure) {
    use gatelab_model::{GateSpec, ModelConfig};
    let device = Device::flex();
    device.seed(5);
    let config = ModelConfig {
        cure,
        vocab_size: 20,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
        d_ff: 40,
        init_std: 0.4,
        gate: GateSpec::G1_ELEMENTWISE,
        ..ModelConfig::default()
    };
    let model = config.init(&device).unwrap();
    let tokens: Vec<i64> = (0..3 * 40).map(|i| (i * 7 + i / 5) % 20).collect();
    let tokens = Tensor::<2, burn::tensor::Int>::from_data(TensorData::new(tokens, [3, 40]), &device);
    let mut full = Accumulator::new(StatsConfig::default());
    full.add(&model.forward_probed(tokens.clone()).1);
    let (_, lean) = model.forward_probed_lean(tokens);
    assert!(lean.layers.iter().all(|l| l.attention.attn.is_none()), "lean probes keep no maps");
    let mut tiled = Accumulator::new(StatsConfig { query_tile: 16, ..StatsConfig::default() });
    tiled.add(&lean);
    let (a, b) = (full.finish(), tiled.finish());
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        for (ha, hb) in la.heads.iter().zip(&lb.heads) {
            for j in 0..3 {
                close(ha.first_token_attention[j], hb.first_token_attention[j]);
            }
            for (x, y) in ha.alpha.iter().zip(&hb.alpha) {
                close(*x, *y);
            }
            close(ha.entropy, hb.entropy);
            assert_eq!(ha.sink_share, hb.sink_share, "{}", cure.name());
            close(ha.first_token_share.unwrap()[1], hb.first_token_share.unwrap()[1]);
            close(ha.row_mass.unwrap(), hb.row_mass.unwrap());
            assert_eq!(ha.slot.is_some(), cure.has_slot(), "{}", cure.name());
            if let (Some(x), Some(y)) = (ha.slot, hb.slot) {
                close(x, y);
                // The slot and the keys share one softmax.
                close(x + ha.row_mass.unwrap(), 1.0);
            }
            if cure.is_softmax() {
                close(ha.row_mass.unwrap(), 1.0);
                close(ha.first_token_share.unwrap()[1], ha.first_token_attention[1]);
            }
        }
        assert_eq!(la.max_activation, lb.max_activation);
        assert_eq!(la.gate, lb.gate);
    }
    assert!(a.layers[1].heads[0].first_token_attention[1] > 0.0);
}
