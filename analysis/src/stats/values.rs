//! The SDPA output's magnitude before and after the gate (the paper's Figure 4) and value drain:
//! the first token's value norm against the others' (Guo et al. 2024).

use super::LayerStats;
use super::ratio;
use gatelab_model::attention::AttentionProbe;

/// Running sums of one layer's SDPA output and value norms.
#[derive(Debug, Clone, Default)]
pub(super) struct ValueAcc {
    sdpa: [f64; 2],
    sdpa_n: u64,
    first: (f64, u64),
    rest: (f64, u64),
}

impl ValueAcc {
    /// Adds one batch.
    pub(super) fn add(&mut self, p: &AttentionProbe) {
        self.sdpa[0] += p.sdpa_out.clone().abs().sum().into_scalar::<f32>() as f64;
        self.sdpa[1] += p.sdpa_gated.clone().abs().sum().into_scalar::<f32>() as f64;
        self.sdpa_n += p.sdpa_out.shape().num_elements() as u64;
        let [vb, vk, vt, _] = p.values.dims();
        let norms = p.values.clone().square().sum_dim(3).sqrt().reshape([vb, vk, vt]);
        let first = norms.clone().slice([0..vb, 0..vk, 0..1]).sum().into_scalar::<f32>() as f64;
        let total = norms.sum().into_scalar::<f32>() as f64;
        self.first.0 += first;
        self.first.1 += (vb * vk) as u64;
        self.rest.0 += total - first;
        self.rest.1 += (vb * vk * (vt - 1)) as u64;
    }

    /// Writes the layer's SDPA and value statistics.
    pub(super) fn finish_into(&self, layer: &mut LayerStats) {
        layer.sdpa_abs_before = ratio((self.sdpa[0], self.sdpa_n));
        layer.sdpa_abs_after = ratio((self.sdpa[1], self.sdpa_n));
        layer.value_norm_first = ratio(self.first);
        layer.value_norm_rest = ratio(self.rest);
    }
}
