//! Massive activations: the largest |h| of a block's output, where it sits, and its ratio to the
//! median |h| (Sun et al. 2024).

use super::{LayerStats, flat, ratio};
use burn::tensor::Tensor;

/// Running maxima of one layer's residual stream.
#[derive(Debug, Clone, Default)]
pub(super) struct ActivationAcc {
    max_abs: f64,
    max_at: (usize, usize),
    ratio_sum: f64,
    top3_sum: [f64; 3],
    batches: u64,
}

impl ActivationAcc {
    /// Adds one batch's block output `residual` (`[batch, seq, d_model]`).
    pub(super) fn add(&mut self, residual: &Tensor<3>) {
        let [_, t, d] = residual.dims();
        let values = flat(residual.clone().abs());
        let (arg, &top) = values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty");
        if top as f64 > self.max_abs {
            self.max_abs = top as f64;
            self.max_at = ((arg / d) % t, arg % d);
        }
        let mut sorted = values;
        let mid = sorted.len() / 2;
        let median = (*sorted.select_nth_unstable_by(mid, f32::total_cmp).1 as f64).max(1e-12);
        self.ratio_sum += top as f64 / median;
        // The three largest, in order, in one pass over the upper half (which holds them after
        // the selection above).
        let mut top3 = [0f32; 3];
        for &v in &sorted[mid..] {
            if v > top3[2] {
                top3[2] = v;
                top3.sort_unstable_by(|a, b| b.total_cmp(a));
            }
        }
        for (k, v) in top3.iter().enumerate() {
            self.top3_sum[k] += *v as f64 / median;
        }
        self.batches += 1;
    }

    /// Writes the layer's activation statistics.
    pub(super) fn finish_into(&self, layer: &mut LayerStats) {
        layer.max_activation = self.max_abs;
        layer.max_at = self.max_at;
        layer.top1_median_ratio = ratio((self.ratio_sum, self.batches));
        layer.top3_median_ratio = self.top3_sum.map(|s| ratio((s, self.batches)));
    }
}
