//! Training-dynamics snapshots: per-layer first-token attention, gate mean and the largest
//! activation of the residual stream, from one probed forward. The harness records them during
//! training ("when does the sink form?"); they are the analysis's statistics ([`crate::stats`])
//! for one batch, as the run folder's [`LayerSnapshot`] records.

use crate::stats::{Accumulator, StatsConfig};
use gatelab_model::Probes;
use gatelab_rundir::LayerSnapshot;

/// Snapshots of every layer.
pub fn snapshot(probes: &Probes) -> Vec<LayerSnapshot> {
    let mut acc = Accumulator::new(StatsConfig::default());
    acc.add(probes);
    acc.finish()
        .layers
        .into_iter()
        .map(|l| LayerSnapshot {
            first_token_attention: l.first_token_attention[1],
            gate_mean: l.gate.as_ref().map(|g| g.mean),
            gate_saturation: l.gate.as_ref().map(|g| g.below_0_01),
            gate_logit: l.gate.as_ref().and_then(|g| g.mean_abs_logit),
            max_activation: l.max_activation,
        })
        .collect()
}
