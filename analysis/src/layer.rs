//! Per-layer snapshots of the quantities the paper tracks, from one probed forward: first-token
//! attention, gate mean and the largest activation of the residual stream. The sweep harness
//! records them during training ("when does the sink form?"). They are the same statistics as
//! the analysis's ([`crate::stats`]), for one batch.

use crate::stats::{Accumulator, StatsConfig};
use gatelab_model::Probes;
use serde::{Deserialize, Serialize};

/// One layer's numbers for one batch.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LayerSnapshot {
    /// Mean attention on key 0 over heads and queries 1.. (query 0 excluded).
    pub first_token_attention: f64,
    /// Mean gate score, when the layer has a gate.
    pub gate_mean: Option<f64>,
    /// Largest |h| of the block's output over the batch.
    pub max_activation: f64,
}

/// Snapshots of every layer.
pub fn snapshot(probes: &Probes) -> Vec<LayerSnapshot> {
    let mut acc = Accumulator::new(StatsConfig::default());
    acc.add(probes);
    acc.finish()
        .layers
        .into_iter()
        .map(|l| LayerSnapshot { first_token_attention: l.first_token_attention[1], gate_mean: l.gate.map(|g| g.mean), max_activation: l.max_activation })
        .collect()
}
