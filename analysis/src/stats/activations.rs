//! Massive activations: the largest |h| of a block's output, where it sits, and its ratio to the
//! median |h| (Sun et al. 2024); and the residual-state peak: a token's hidden-state norm against
//! the median token norm of its sequence (Guo et al. 2024, arXiv 2410.13835).

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
    /// Sums over sequences of ‖h₀‖ / median ‖h_t‖ and max_t ‖h_t‖ / median ‖h_t‖.
    norm_first_sum: f64,
    norm_max_sum: f64,
    /// Sequences whose largest token norm is the first token's.
    norm_max_first: u64,
    sequences: u64,
}

impl ActivationAcc {
    /// Adds one batch's block output `residual` (`[batch, seq, d_model]`).
    pub(super) fn add(&mut self, residual: &Tensor<3>) {
        let [_, t, d] = residual.dims();
        let mut sorted = flat(residual.clone().abs());
        let (arg, top, median) = max_and_median(&mut sorted);
        if top as f64 > self.max_abs {
            self.max_abs = top as f64;
            self.max_at = ((arg / d) % t, arg % d);
        }
        let mid = sorted.len() / 2;
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
        self.add_token_norms(residual);
    }

    /// Guo et al.'s residual-state peak, per sequence: the token norms `‖h_t‖` (over `d_model`),
    /// the first's and the largest's over their median.
    fn add_token_norms(&mut self, residual: &Tensor<3>) {
        let [_, t, _] = residual.dims();
        let norms = flat(residual.clone().powi_scalar(2).sum_dim(2).sqrt());
        for seq in norms.chunks(t) {
            let (arg, top, median) = max_and_median(&mut seq.to_vec());
            self.norm_first_sum += seq[0] as f64 / median;
            self.norm_max_sum += top as f64 / median;
            self.norm_max_first += u64::from(arg == 0);
            self.sequences += 1;
        }
    }

    /// Writes the layer's activation statistics.
    pub(super) fn finish_into(&self, layer: &mut LayerStats) {
        layer.max_activation = self.max_abs;
        layer.max_at = self.max_at;
        layer.top1_median_ratio = ratio((self.ratio_sum, self.batches));
        layer.top3_median_ratio = self.top3_sum.map(|s| ratio((s, self.batches)));
        let per_sequence = |sum: f64| (self.sequences > 0).then(|| ratio((sum, self.sequences)));
        layer.first_token_norm_ratio = per_sequence(self.norm_first_sum);
        layer.max_token_norm_ratio = per_sequence(self.norm_max_sum);
        layer.max_token_norm_first = per_sequence(self.norm_max_first as f64);
    }
}

/// The largest of `values`, where it was, and their upper median (the `len/2`-th smallest, at
/// least 1e-12). Reorders `values`: afterwards the upper half `[len/2..]` holds the largest ones.
fn max_and_median(values: &mut [f32]) -> (usize, f32, f64) {
    let (arg, &top) = values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty");
    let median = (*values.select_nth_unstable_by(values.len() / 2, f32::total_cmp).1 as f64).max(1e-12);
    (arg, top, median)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn token_norm_peak_per_sequence() {
        // Two sequences of 4 tokens in d = 2. The first: ‖h₀‖ = 50, the others 5. The second:
        // 5, 5, 10, 2.5, whose median (the upper one) is 5, not its mean or least.
        let data = vec![30.0, 40.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 6.0, 8.0, 1.5, 2.0];
        let residual = Tensor::<3>::from_data(TensorData::new(data, [2, 4, 2]), &Device::flex());
        let mut acc = ActivationAcc::default();
        acc.add(&residual);
        let mut layer = LayerStats::default();
        acc.finish_into(&mut layer);
        let close = |got: Option<f64>, want: f64| assert!((got.unwrap() - want).abs() < 1e-6, "{got:?} != {want}");
        close(layer.first_token_norm_ratio, (10.0 + 1.0) / 2.0);
        close(layer.max_token_norm_ratio, (10.0 + 2.0) / 2.0);
        close(layer.max_token_norm_first, 0.5);
    }
}
