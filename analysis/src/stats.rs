//! The paper's measurements per layer and head, accumulated over batches of probes so memory is
//! bounded by one batch (definitions: `../shared/notes/metrics.md`).
//!
//! With `A[i, k]` the causal attention of query `i` on key `k` (0-based) of a sequence of `T`:
//! - **F-Attn** (first-token attention): the mean of `A[i, 0]` over sequences and queries `i ≥ m`,
//!   for `m` = 0, 1 and 4 (query 0 can only attend to key 0; excluding it is the default).
//! - **α(k)** (Gu et al. 2024): `(1/(T−k)) Σ_{i≥k} A[i, k]`, per sequence and head; **Sink_1^ε** is
//!   the share of (sequence, head) pairs with `α(0) > ε` (ε = 0.3); the chance level of α(0) and
//!   F-Attn under uniform causal attention is `H_T / T` (`H_T` the harmonic number).
//! - **Massive activations** (Sun et al. 2024): the largest `|h|` of each block's output, its
//!   (position, dimension), and its ratio to the median `|h|` of the same batch.
//! - **Gates**: mean score, a histogram over [0, 1], the shares below 0.1 and 0.01, the first
//!   token's mean against the others'; mean `|SDPA output|` before and after the gate.
//! - **Entropy** of each attention row (queries ≥ 1), and **value drain**: the mean value-vector
//!   norm of the first token against the others'.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor};
use gatelab_model::{Probes, Transformer};
use gatelab_model::attention::AttentionProbe;
use serde::{Deserialize, Serialize};

/// What to measure.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Threshold ε of Sink_1^ε.
    pub epsilon: f64,
    /// α(k) is reported for keys `0..alpha_positions`.
    pub alpha_positions: usize,
    /// Bins of the gate-score histogram over [0, 1] (scores outside are clamped to the ends).
    pub gate_bins: usize,
    /// Queries per tile when attention is recomputed from queries and keys (lean probes).
    pub query_tile: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self { epsilon: 0.3, alpha_positions: 8, gate_bins: 20, query_tile: 256 }
    }
}

/// Which queries F-Attn averages: all, from 1, from 4.
pub const FIRST_QUERIES: [usize; 3] = [0, 1, 4];

/// One head's numbers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HeadStats {
    /// F-Attn over queries `≥ 0, ≥ 1, ≥ 4`.
    pub first_token_attention: [f64; 3],
    /// Mean α(k) for `k < alpha_positions`.
    pub alpha: Vec<f64>,
    /// Share of sequences with α(0) > ε.
    pub sink_share: f64,
    /// Mean attention entropy (nats) of queries ≥ 1.
    pub entropy: f64,
}

/// Gate statistics of one layer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GateStats {
    /// Mean score.
    pub mean: f64,
    /// Share of scores below 0.1.
    pub below_0_1: f64,
    /// Share below 0.01.
    pub below_0_01: f64,
    /// Histogram counts over [0, 1] (`gate_bins` bins).
    pub histogram: Vec<u64>,
    /// Mean score at the first position (input-dependent gates).
    pub first_token_mean: Option<f64>,
    /// Mean score at the other positions.
    pub other_tokens_mean: Option<f64>,
    /// Scores counted.
    pub scores: u64,
}

/// One layer's numbers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// Per head.
    pub heads: Vec<HeadStats>,
    /// F-Attn over queries `≥ 0, ≥ 1, ≥ 4`, mean over heads.
    pub first_token_attention: [f64; 3],
    /// Sink_1^ε: share of (sequence, head) pairs with α(0) > ε.
    pub sink: f64,
    /// Largest |h| of the block's output.
    pub max_activation: f64,
    /// Where: (position, dimension).
    pub max_at: (usize, usize),
    /// Largest |h| over the median |h|, mean over batches.
    pub top1_median_ratio: f64,
    /// Gate statistics, when the layer has a gate.
    pub gate: Option<GateStats>,
    /// Mean |SDPA output| before the gate (and SDPA non-linearity).
    pub sdpa_abs_before: f64,
    /// Mean |SDPA output| after them.
    pub sdpa_abs_after: f64,
    /// Mean value norm of the first token.
    pub value_norm_first: f64,
    /// Mean value norm of the other tokens.
    pub value_norm_rest: f64,
}

/// Everything measured, with what it rests on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Stats {
    /// The settings.
    pub config: StatsConfig,
    /// Sequences measured.
    pub sequences: u64,
    /// Tokens (queries) they hold.
    pub tokens: u64,
    /// Their length.
    pub seq_len: usize,
    /// F-Attn of uniform causal attention over queries `≥ 0, ≥ 1, ≥ 4`.
    pub chance_first_token_attention: [f64; 3],
    /// Per layer.
    pub layers: Vec<LayerStats>,
}

impl Stats {
    /// F-Attn (queries ≥ 1) averaged over layers: the paper's headline number.
    pub fn first_token_attention(&self) -> f64 {
        mean(self.layers.iter().map(|l| l.first_token_attention[1]))
    }

    /// Sink_1^ε averaged over layers.
    pub fn sink(&self) -> f64 {
        mean(self.layers.iter().map(|l| l.sink))
    }

    /// Largest activation averaged over layers (the paper's M-Act).
    pub fn max_activation(&self) -> f64 {
        mean(self.layers.iter().map(|l| l.max_activation))
    }

    /// Mean gate score over the layers that have one.
    pub fn gate_mean(&self) -> Option<f64> {
        let means: Vec<f64> = self.layers.iter().filter_map(|l| l.gate.as_ref().map(|g| g.mean)).collect();
        (!means.is_empty()).then(|| mean(means.into_iter()))
    }
}

/// The mean of `values` (NaN when there are none).
pub fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}


/// F-Attn of uniform causal attention over queries `min_query..seq` (`mean_i 1/(i+1)`): the
/// chance level beside F-Attn.
pub fn chance_first_token(seq: usize, min_query: usize) -> f64 {
    mean((min_query..seq).map(|i| 1.0 / (i as f64 + 1.0)))
}

/// The attention of `p` as `(first query, probabilities [batch, heads, queries, keys])` tiles:
/// the kept maps as one tile, or, for lean probes, recomputed in f32 from the queries and keys
/// `tile` queries at a time (each tile built only when the iteration reaches it).
fn attention_tiles(p: &AttentionProbe, tile: usize) -> Box<dyn Iterator<Item = (usize, Tensor<4>)> + '_> {
    if let Some(maps) = &p.attn {
        return Box::new(std::iter::once((0, maps.clone())));
    }
    let [b, h, t, hd] = p.queries.dims();
    let [_, kv, _, _] = p.keys.dims();
    // Query heads of one KV group are contiguous (the model's convention).
    let keys = p.keys.clone().unsqueeze_dim::<5>(2).expand([b, kv, h / kv, t, hd]).reshape([b, h, t, hd]);
    let scale = (hd as f64).powf(-0.5);
    Box::new((0..t).step_by(tile.max(1)).map(move |i0| {
        let i1 = (i0 + tile.max(1)).min(t);
        let q = p.queries.clone().slice([0..b, 0..h, i0..i1, 0..hd]);
        let k = keys.clone().slice([0..b, 0..h, 0..i1, 0..hd]);
        let scores = q.matmul(k.transpose()).mul_scalar(scale);
        // Query i0 + r sees keys 0..=i0 + r.
        let future = Tensor::<2, Bool>::tril_mask([i1 - i0, i1], i0 as i64, &scores.device());
        (i0, softmax(scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY), 3))
    }))
}

fn host(t: Tensor<1>) -> Vec<f64> {
    t.into_data().iter::<f32>().map(f64::from).collect()
}

fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    let n = t.shape().num_elements();
    t.reshape([n]).into_data().iter::<f32>().collect()
}

#[derive(Debug, Clone, Default)]
struct GateAcc {
    sum: f64,
    n: u64,
    below: [u64; 2],
    histogram: Vec<u64>,
    first: (f64, u64),
    other: (f64, u64),
}

#[derive(Debug, Clone, Default)]
struct LayerAcc {
    heads: usize,
    f_attn: [Vec<f64>; 3],
    f_attn_n: [u64; 3],
    alpha: Vec<Vec<f64>>,
    sinks: Vec<u64>,
    entropy: Vec<f64>,
    entropy_n: u64,
    max_abs: f64,
    max_at: (usize, usize),
    ratio_sum: f64,
    batches: u64,
    gate: Option<GateAcc>,
    sdpa: [f64; 2],
    sdpa_n: u64,
    value_first: (f64, u64),
    value_rest: (f64, u64),
}

/// Accumulates [`Stats`] over batches.
#[derive(Debug, Clone)]
pub struct Accumulator {
    config: StatsConfig,
    layers: Vec<LayerAcc>,
    sequences: u64,
    seq_len: usize,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new(config: StatsConfig) -> Self {
        Self { config, layers: Vec::new(), sequences: 0, seq_len: 0 }
    }

    /// Runs `model` on `tokens` (`[batch, seq]`) with probes and adds them; returns the logits.
    /// Sequences longer than a query tile are probed lean: no layer's `[seq, seq]` maps are kept,
    /// attention is recomputed a tile at a time.
    pub fn observe(&mut self, model: &Transformer, tokens: Tensor<2, Int>) -> Tensor<3> {
        let seq = tokens.dims()[1];
        let (logits, probes) = if seq > self.config.query_tile { model.forward_probed_lean(tokens) } else { model.forward_probed(tokens) };
        self.add(&probes);
        logits
    }

    /// Adds one batch of probes.
    pub fn add(&mut self, probes: &Probes) {
        let cfg = self.config.clone();
        if self.layers.is_empty() {
            self.layers = vec![LayerAcc::default(); probes.layers.len()];
        }
        for (acc, layer) in self.layers.iter_mut().zip(&probes.layers) {
            let p = &layer.attention;
            let [b, h, t, _] = p.queries.dims();
            self.seq_len = t;
            if acc.heads == 0 {
                acc.heads = h;
                acc.f_attn = std::array::from_fn(|_| vec![0.0; h]);
                acc.alpha = vec![vec![0.0; cfg.alpha_positions.min(t)]; h];
                acc.sinks = vec![0; h];
                acc.entropy = vec![0.0; h];
            }
            // One pass over the attention, a tile of queries at a time (a full map is one tile).
            let k_max = acc.alpha[0].len();
            let mut alpha_sums = vec![0.0f64; b * h * k_max];
            for (i0, probs) in attention_tiles(p, cfg.query_tile) {
                let [_, _, n, keys] = probs.dims();
                // F-Attn per head for each first query.
                let col0 = probs.clone().slice([0..b, 0..h, 0..n, 0..1]).reshape([b, h, n]);
                for (j, &m) in FIRST_QUERIES.iter().enumerate() {
                    let from = m.saturating_sub(i0).min(n);
                    if from < n {
                        let sums = host(col0.clone().slice([0..b, 0..h, from..n]).sum_dims(&[0, 2]).reshape([h]));
                        for (acc_h, s) in acc.f_attn[j].iter_mut().zip(sums) {
                            *acc_h += s;
                        }
                        acc.f_attn_n[j] += (b * (n - from)) as u64;
                    }
                }
                // Column sums of the first keys (causal maps are 0 above the diagonal, so these
                // are the sums over queries i ≥ k that α(k) needs).
                let kc = k_max.min(keys);
                let cols = flat(probs.clone().slice([0..b, 0..h, 0..n, 0..kc]).sum_dim(2).reshape([b, h, kc]));
                for bh in 0..b * h {
                    for ki in 0..kc {
                        alpha_sums[bh * k_max + ki] += cols[bh * kc + ki] as f64;
                    }
                }
                // Entropy of rows 1.. per head.
                let from = if i0 == 0 { 1 } else { 0 };
                if from < n {
                    let rows = probs.slice([0..b, 0..h, from..n, 0..keys]);
                    let ent = (rows.clone() * rows.add_scalar(1e-30).log()).sum_dim(3).neg().sum_dims(&[0, 2]).reshape([h]);
                    for (e, v) in acc.entropy.iter_mut().zip(host(ent)) {
                        *e += v;
                    }
                    acc.entropy_n += (b * (n - from)) as u64;
                }
            }
            // α(k) per sequence and head, and the sink indicator.
            for (bh, sums) in alpha_sums.chunks(k_max).enumerate() {
                let hi = bh % h;
                for (ki, sum) in sums.iter().enumerate() {
                    let alpha = sum / (t - ki) as f64;
                    acc.alpha[hi][ki] += alpha;
                    if ki == 0 && alpha > cfg.epsilon {
                        acc.sinks[hi] += 1;
                    }
                }
            }
            // Massive activations.
            let [_, _, d] = layer.residual.dims();
            let values = flat(layer.residual.clone().abs());
            let (arg, &top) = values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty");
            if top as f64 > acc.max_abs {
                acc.max_abs = top as f64;
                acc.max_at = ((arg / d) % t, arg % d);
            }
            let mut sorted = values;
            let mid = sorted.len() / 2;
            let median = *sorted.select_nth_unstable_by(mid, f32::total_cmp).1 as f64;
            acc.ratio_sum += top as f64 / median.max(1e-12);
            acc.batches += 1;
            // Gates.
            if let Some(scores) = &p.gate_scores {
                let g = acc.gate.get_or_insert_with(|| GateAcc { histogram: vec![0; cfg.gate_bins], ..GateAcc::default() });
                let [_, st, _, _] = scores.dims();
                let all = flat(scores.clone());
                for &s in &all {
                    let s = s as f64;
                    g.sum += s;
                    g.below[0] += (s < 0.1) as u64;
                    g.below[1] += (s < 0.01) as u64;
                    let bin = ((s.clamp(0.0, 1.0) * cfg.gate_bins as f64) as usize).min(cfg.gate_bins - 1);
                    g.histogram[bin] += 1;
                }
                g.n += all.len() as u64;
                if st > 1 {
                    let per_pos = all.len() / st / scores.dims()[0];
                    for (i, &s) in all.iter().enumerate() {
                        let pos = (i / per_pos) % st;
                        let slot = if pos == 0 { &mut g.first } else { &mut g.other };
                        slot.0 += s as f64;
                        slot.1 += 1;
                    }
                }
            }
            // SDPA output magnitude and value drain.
            let n = p.sdpa_out.shape().num_elements() as u64;
            acc.sdpa[0] += p.sdpa_out.clone().abs().sum().into_scalar::<f32>() as f64;
            acc.sdpa[1] += p.sdpa_gated.clone().abs().sum().into_scalar::<f32>() as f64;
            acc.sdpa_n += n;
            let [vb, vk, vt, _] = p.values.dims();
            let norms = p.values.clone().square().sum_dim(3).sqrt().reshape([vb, vk, vt]);
            let first = norms.clone().slice([0..vb, 0..vk, 0..1]).sum().into_scalar::<f32>() as f64;
            let total = norms.sum().into_scalar::<f32>() as f64;
            acc.value_first.0 += first;
            acc.value_first.1 += (vb * vk) as u64;
            acc.value_rest.0 += total - first;
            acc.value_rest.1 += (vb * vk * (vt - 1)) as u64;
        }
        self.sequences += probes.layers.first().map_or(0, |l| l.attention.queries.dims()[0] as u64);
    }

    /// The statistics so far.
    pub fn finish(&self) -> Stats {
        let ratio = |(s, n): (f64, u64)| if n == 0 { f64::NAN } else { s / n as f64 };
        let seqs = self.sequences.max(1) as f64;
        let layers = self
            .layers
            .iter()
            .map(|acc| {
                let heads: Vec<HeadStats> = (0..acc.heads)
                    .map(|h| HeadStats {
                        first_token_attention: std::array::from_fn(|j| ratio((acc.f_attn[j][h], acc.f_attn_n[j]))),
                        alpha: acc.alpha[h].iter().map(|a| a / seqs).collect(),
                        sink_share: acc.sinks[h] as f64 / seqs,
                        entropy: ratio((acc.entropy[h], acc.entropy_n)),
                    })
                    .collect();
                LayerStats {
                    first_token_attention: std::array::from_fn(|j| mean(heads.iter().map(|h| h.first_token_attention[j]))),
                    sink: mean(heads.iter().map(|h| h.sink_share)),
                    heads,
                    max_activation: acc.max_abs,
                    max_at: acc.max_at,
                    top1_median_ratio: ratio((acc.ratio_sum, acc.batches)),
                    gate: acc.gate.as_ref().map(|g| GateStats {
                        mean: ratio((g.sum, g.n)),
                        below_0_1: ratio((g.below[0] as f64, g.n)),
                        below_0_01: ratio((g.below[1] as f64, g.n)),
                        histogram: g.histogram.clone(),
                        first_token_mean: (g.first.1 > 0).then(|| ratio(g.first)),
                        other_tokens_mean: (g.other.1 > 0).then(|| ratio(g.other)),
                        scores: g.n,
                    }),
                    sdpa_abs_before: ratio((acc.sdpa[0], acc.sdpa_n)),
                    sdpa_abs_after: ratio((acc.sdpa[1], acc.sdpa_n)),
                    value_norm_first: ratio(acc.value_first),
                    value_norm_rest: ratio(acc.value_rest),
                }
            })
            .collect();
        Stats {
            config: self.config.clone(),
            sequences: self.sequences,
            tokens: self.sequences * self.seq_len as u64,
            seq_len: self.seq_len,
            chance_first_token_attention: FIRST_QUERIES.map(|m| if m < self.seq_len { chance_first_token(self.seq_len, m) } else { f64::NAN }),
            layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_level_of_uniform_causal_attention() {
        // Queries 1 and 2 of 3 put 1/2 and 1/3 on key 0.
        assert!((chance_first_token(3, 1) - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((chance_first_token(3, 0) - (1.0 + 0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
    }
}
