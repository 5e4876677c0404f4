//! The records of a run's JSONL logs: `metrics.jsonl` ([`StepRecord`]), `eval.jsonl`
//! ([`EvalRecord`]) and `dynamics.jsonl` ([`DynamicsRecord`]).
//!
//! A loss can be NaN or infinite (a diverging run); JSON has no such numbers, so they are written
//! as `null` and read back as NaN.

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` (how serde_json writes a non-finite number) as NaN.
pub(crate) fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One training-metric record (a line of `metrics.jsonl`, every `train.log_every` steps).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Steps done.
    pub step: usize,
    /// Training loss of this step's batch (nats per token).
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping (NaN on the step a run diverged).
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// Tokens per second since the previous record.
    #[serde(deserialize_with = "nan_if_null")]
    pub tokens_per_s: f64,
    /// Loss spikes so far.
    pub spikes: usize,
}

/// One validation record (a line of `eval.jsonl`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EvalRecord {
    /// Steps done.
    pub step: usize,
    /// Mean validation loss over real (non-PAD) targets, nats per token.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// `exp(loss)`.
    #[serde(deserialize_with = "nan_if_null")]
    pub perplexity: f64,
    /// Tokens it rests on.
    pub tokens: usize,
}

/// One layer's numbers on the fixed dynamics batch (`docs/metrics.md`, training-time snapshots).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LayerSnapshot {
    /// Mean attention on key 0 over heads and queries 1.. (query 0 excluded).
    #[serde(deserialize_with = "nan_if_null")]
    pub first_token_attention: f64,
    /// Mean gate score, when the layer has a gate.
    pub gate_mean: Option<f64>,
    /// Share of gate scores below 0.01 (gates shut), when the layer has a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_saturation: Option<f64>,
    /// Mean |gate logit| of a sigmoid gate, `|ln(s / (1 − s))|`; rising logits saturate the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_logit: Option<f64>,
    /// Largest |h| of the block's output over the batch.
    #[serde(deserialize_with = "nan_if_null")]
    pub max_activation: f64,
}

/// One sink-dynamics record (a line of `dynamics.jsonl`, every `train.dynamics_every` steps).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DynamicsRecord {
    /// Steps done.
    pub step: usize,
    /// Per layer.
    pub layers: Vec<LayerSnapshot>,
}

impl DynamicsRecord {
    /// A per-layer quantity averaged over layers (NaN with no layer).
    pub fn mean_over_layers(&self, f: impl Fn(&LayerSnapshot) -> f64) -> f64 {
        let n = self.layers.len();
        if n == 0 { f64::NAN } else { self.layers.iter().map(f).sum::<f64>() / n as f64 }
    }
}
