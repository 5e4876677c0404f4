//! Per-layer snapshots of the quantities the paper tracks, from one probed forward: first-token
//! attention, gate mean and the largest activation of the residual stream. The sweep harness
//! records them during training ("when does the sink form?").

use crate::sink::first_token_attention;
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
    probes
        .layers
        .iter()
        .map(|layer| {
            let heads = first_token_attention(layer.attention.attn.as_ref().expect("forward_probed keeps the maps"), 1);
            let gate_mean = layer.attention.gate_scores.as_ref().map(|s| s.clone().mean().into_scalar::<f32>() as f64);
            let max_activation = layer.residual.clone().abs().max().into_scalar::<f32>() as f64;
            LayerSnapshot { first_token_attention: heads.iter().sum::<f64>() / heads.len() as f64, gate_mean, max_activation }
        })
        .collect()
}
