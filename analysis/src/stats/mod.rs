//! The paper's measurements per layer and head, accumulated over batches of probes so memory is
//! bounded by one batch (definitions: `docs/metrics.md`).
//!
//! With `A[i, k]` the causal attention of query `i` on key `k` (0-based) of a sequence of `T`:
//! - **F-Attn** (first-token attention): the mean of `A[i, 0]` over sequences and queries `i ≥ m`,
//!   for `m` = 0, 1 and 4 (query 0 can only attend to key 0; excluding it is the default).
//! - **α(k)** (Gu et al. 2024): `(1/(T−k)) Σ_{i≥k} A[i, k]`, per sequence and head; **Sink_1^ε** is
//!   the share of (sequence, head) pairs with `α(0) > ε` (ε = 0.3); the chance level of α(0) and
//!   F-Attn under uniform causal attention is `H_T / T` (`H_T` the harmonic number).
//! - **Massive activations** (Sun et al. 2024): the largest `|h|` of each block's output, its
//!   (position, dimension), and its ratio to the median `|h|` of the same batch.
//! - **Residual-state peak** (Guo et al. 2024): per sequence, the first token's norm `‖h₀‖` and the
//!   largest token norm over the median token norm; how often the largest is the first token's.
//! - **Gates**: mean score, a histogram over [0, 1], the shares below 0.1 and 0.01, the first
//!   token's mean against the others'; mean `|SDPA output|` before and after the gate.
//! - **Entropy** of each attention row (queries ≥ 1), and **value drain**: the mean value-vector
//!   norm of the first token against the others'.

mod activations;
mod attention;
mod gates;
mod routing;
mod values;

use burn::tensor::{Int, Tensor};
use gatelab_model::{Probes, Transformer};
use serde::{Deserialize, Serialize};

/// What to measure.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Threshold ε of Sink_1^ε.
    #[serde(with = "gatelab_rundir::finite")]
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
    #[serde(with = "gatelab_rundir::finite")]
    pub first_token_attention: [f64; 3],
    /// Mean α(k) for `k < alpha_positions`.
    #[serde(with = "gatelab_rundir::finite")]
    pub alpha: Vec<f64>,
    /// Share of sequences with α(0) > ε.
    #[serde(with = "gatelab_rundir::finite")]
    pub sink_share: f64,
    /// Mean attention entropy (nats) of queries ≥ 1.
    #[serde(with = "gatelab_rundir::finite")]
    pub entropy: f64,
    /// F-Attn as the share of each row's mass, `A[i, 0] / Σ_k A[i, k]`, over queries `≥ 0, ≥ 1,
    /// ≥ 4`: equal to F-Attn under softmax; the cures' rows need not sum to 1 (absent in analyses
    /// made before the cures).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub first_token_share: Option<[f64; 3]>,
    /// Mean row mass `Σ_k A[i, k]` of queries ≥ 1 (1 under softmax).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub row_mass: Option<f64>,
    /// Mean weight on the slot of the slot cures (softmax+1, sink logit, key/value bias), queries
    /// ≥ 1: where the sink went.
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub slot: Option<f64>,
}

/// A mixture-of-experts layer's routing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct RoutingStats {
    /// Each expert's share of the routing slots (sums to 1; `1/experts` each when balanced).
    #[serde(with = "gatelab_rundir::finite")]
    pub load: Vec<f64>,
    /// Each expert's mean router probability.
    #[serde(with = "gatelab_rundir::finite")]
    pub mean_probability: Vec<f64>,
    /// Mean entropy of a token's router distribution (nats).
    #[serde(with = "gatelab_rundir::finite")]
    pub entropy: f64,
    /// Its largest possible value, `ln(experts)`.
    #[serde(with = "gatelab_rundir::finite")]
    pub max_entropy: f64,
    /// Mean load-balancing loss (unweighted; 1 when balanced).
    #[serde(with = "gatelab_rundir::finite")]
    pub balance_loss: f64,
    /// Mean router z-loss (unweighted).
    #[serde(with = "gatelab_rundir::finite")]
    pub z_loss: f64,
    /// Share of tokens dropped (0: no expert capacity limit).
    #[serde(with = "gatelab_rundir::finite")]
    pub dropped: f64,
}

/// Gate statistics of one layer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GateStats {
    /// Mean score.
    #[serde(with = "gatelab_rundir::finite")]
    pub mean: f64,
    /// Share of scores below 0.1.
    #[serde(with = "gatelab_rundir::finite")]
    pub below_0_1: f64,
    /// Share below 0.01.
    #[serde(with = "gatelab_rundir::finite")]
    pub below_0_01: f64,
    /// Histogram counts over [0, 1] (`gate_bins` bins).
    pub histogram: Vec<u64>,
    /// Mean |logit| `|ln(s / (1 − s))|` of the scores, for gates whose scores are probabilities
    /// (sigmoid; scores clamped to [1e-7, 1 − 1e-7]).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub mean_abs_logit: Option<f64>,
    /// Mean score at the first position (input-dependent gates).
    #[serde(with = "gatelab_rundir::finite", default)]
    pub first_token_mean: Option<f64>,
    /// Mean score at the other positions.
    #[serde(with = "gatelab_rundir::finite", default)]
    pub other_tokens_mean: Option<f64>,
    /// Scores counted.
    pub scores: u64,
}

/// One layer's numbers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct LayerStats {
    /// Per head.
    pub heads: Vec<HeadStats>,
    /// F-Attn over queries `≥ 0, ≥ 1, ≥ 4`, mean over heads.
    #[serde(with = "gatelab_rundir::finite")]
    pub first_token_attention: [f64; 3],
    /// Sink_1^ε: share of (sequence, head) pairs with α(0) > ε.
    #[serde(with = "gatelab_rundir::finite")]
    pub sink: f64,
    /// F-Attn as a share of the row's mass (see [`HeadStats::first_token_share`]), mean over heads.
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub first_token_share: Option<[f64; 3]>,
    /// Mean row mass, mean over heads.
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub row_mass: Option<f64>,
    /// Mean slot weight, mean over heads (slot cures).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub slot: Option<f64>,
    /// Largest |h| of the block's output.
    #[serde(with = "gatelab_rundir::finite")]
    pub max_activation: f64,
    /// Where: (position, dimension).
    pub max_at: (usize, usize),
    /// Largest |h| over the median |h|, mean over batches.
    #[serde(with = "gatelab_rundir::finite")]
    pub top1_median_ratio: f64,
    /// The three largest |h| over the median |h|, mean over batches (Sun et al. 2024's top-1..3).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub top3_median_ratio: [f64; 3],
    /// Guo et al. 2024's residual-state peak: the first token's hidden-state norm `‖h₀‖` over the
    /// median token norm of its sequence, mean over sequences (absent in older analyses).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub first_token_norm_ratio: Option<f64>,
    /// The largest token norm of each sequence over its median, mean over sequences.
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub max_token_norm_ratio: Option<f64>,
    /// The share of sequences whose largest token norm is the first token's.
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub max_token_norm_first: Option<f64>,
    /// Gate statistics, when the layer has a gate.
    pub gate: Option<GateStats>,
    /// Routing statistics, when the layer's FFN is a mixture of experts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingStats>,
    /// Mean |SDPA output| before the gate (and SDPA non-linearity).
    #[serde(with = "gatelab_rundir::finite")]
    pub sdpa_abs_before: f64,
    /// Mean |SDPA output| after them.
    #[serde(with = "gatelab_rundir::finite")]
    pub sdpa_abs_after: f64,
    /// Mean value norm of the first token.
    #[serde(with = "gatelab_rundir::finite")]
    pub value_norm_first: f64,
    /// Mean value norm of the other tokens.
    #[serde(with = "gatelab_rundir::finite")]
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
    #[serde(with = "gatelab_rundir::finite")]
    pub chance_first_token_attention: [f64; 3],
    /// Per layer.
    pub layers: Vec<LayerStats>,
}

impl Stats {
    /// F-Attn (queries ≥ 1) averaged over layers: the paper's headline number.
    pub fn first_token_attention(&self) -> f64 {
        mean(self.layers.iter().map(|l| l.first_token_attention[1]))
    }

    /// F-Attn (queries ≥ 1) as a share of the row's mass, averaged over layers (F-Attn itself for
    /// analyses made before the cures).
    pub fn first_token_share(&self) -> f64 {
        mean(self.layers.iter().map(|l| l.first_token_share.map_or(l.first_token_attention[1], |s| s[1])))
    }

    /// The slot cures' mean slot weight over layers, if the model has a slot.
    pub fn slot(&self) -> Option<f64> {
        mean_option(self.layers.iter().map(|l| l.slot))
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

/// The mean of `values` when every one is present.
pub fn mean_option(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let all: Option<Vec<f64>> = values.collect();
    all.filter(|v| !v.is_empty()).map(|v| mean(v.into_iter()))
}

/// F-Attn of uniform causal attention over queries `min_query..seq` (`mean_i 1/(i+1)`): the
/// chance level beside F-Attn.
pub fn chance_first_token(seq: usize, min_query: usize) -> f64 {
    mean((min_query..seq).map(|i| 1.0 / (i as f64 + 1.0)))
}

/// A tensor's values on the host, as f64.
fn host(t: Tensor<1>) -> Vec<f64> {
    t.into_data().iter::<f32>().map(f64::from).collect()
}

/// A tensor's values on the host, flattened.
fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    let n = t.shape().num_elements();
    t.reshape([n]).into_data().iter::<f32>().collect()
}

/// `sum / n`, NaN when `n` is 0.
fn ratio((sum, n): (f64, u64)) -> f64 {
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// One layer's running sums, one accumulator per family of statistics.
#[derive(Debug, Clone, Default)]
struct LayerAcc {
    attention: attention::AttentionAcc,
    activations: activations::ActivationAcc,
    gates: Option<gates::GateAcc>,
    routing: Option<routing::RoutingAcc>,
    values: values::ValueAcc,
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
        let (logits, probes) =
            if seq > self.config.query_tile { model.forward_probed_lean(tokens) } else { model.forward_probed(tokens) };
        self.add(&probes);
        logits
    }

    /// Adds one batch of probes.
    pub fn add(&mut self, probes: &Probes) {
        if self.layers.is_empty() {
            self.layers = vec![LayerAcc::default(); probes.layers.len()];
        }
        for (acc, layer) in self.layers.iter_mut().zip(&probes.layers) {
            let p = &layer.attention;
            self.seq_len = p.queries.dims()[2];
            acc.attention.add(p, &self.config);
            acc.activations.add(&layer.residual);
            if let Some(scores) = &p.gate_scores {
                acc.gates.get_or_insert_with(|| gates::GateAcc::new(self.config.gate_bins)).add(scores);
            }
            acc.values.add(p);
            if let Some(r) = &layer.routing {
                acc.routing.get_or_insert_with(routing::RoutingAcc::default).add(r);
            }
        }
        self.sequences += probes.layers.first().map_or(0, |l| l.attention.queries.dims()[0] as u64);
    }

    /// The statistics so far.
    pub fn finish(&self) -> Stats {
        let layers = self
            .layers
            .iter()
            .map(|acc| {
                let heads = acc.attention.finish(self.sequences);
                let mut layer = LayerStats {
                    first_token_attention: std::array::from_fn(|j| {
                        mean(heads.iter().map(|h| h.first_token_attention[j]))
                    }),
                    sink: mean(heads.iter().map(|h| h.sink_share)),
                    first_token_share: heads.iter().all(|h| h.first_token_share.is_some()).then(|| {
                        std::array::from_fn(|j| mean(heads.iter().filter_map(|h| h.first_token_share.map(|s| s[j]))))
                    }),
                    row_mass: mean_option(heads.iter().map(|h| h.row_mass)),
                    slot: mean_option(heads.iter().map(|h| h.slot)),
                    heads,
                    gate: acc.gates.as_ref().map(gates::GateAcc::finish),
                    routing: acc.routing.as_ref().map(routing::RoutingAcc::finish),
                    ..LayerStats::default()
                };
                acc.activations.finish_into(&mut layer);
                acc.values.finish_into(&mut layer);
                layer
            })
            .collect();
        Stats {
            config: self.config.clone(),
            sequences: self.sequences,
            tokens: self.sequences * self.seq_len as u64,
            seq_len: self.seq_len,
            chance_first_token_attention: FIRST_QUERIES
                .map(|m| if m < self.seq_len { chance_first_token(self.seq_len, m) } else { f64::NAN }),
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
