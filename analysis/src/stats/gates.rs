//! Gate statistics: mean score, histogram over [0, 1], shares below 0.1 and 0.01, and the first
//! position's mean against the others'.

use super::{GateStats, flat, ratio};
use burn::tensor::Tensor;

/// Running sums of one layer's gate scores.
#[derive(Debug, Clone, Default)]
pub(super) struct GateAcc {
    sum: f64,
    n: u64,
    below: [u64; 2],
    histogram: Vec<u64>,
    first: (f64, u64),
    other: (f64, u64),
    logit_sum: f64,
    /// Every score so far lay in [0, 1] (a sigmoid's), so logits mean something.
    not_probabilities: bool,
}

impl GateAcc {
    /// An empty accumulator with `bins` histogram bins.
    pub(super) fn new(bins: usize) -> Self {
        Self { histogram: vec![0; bins.max(1)], ..Self::default() }
    }

    /// Adds one batch's scores (`[batch, positions, heads, scores per head]`; one position for an
    /// input-independent gate).
    pub(super) fn add(&mut self, scores: &Tensor<4>) {
        let [batch, positions, _, _] = scores.dims();
        let bins = self.histogram.len();
        let all = flat(scores.clone());
        for &s in &all {
            let s = s as f64;
            self.sum += s;
            self.below[0] += (s < 0.1) as u64;
            self.below[1] += (s < 0.01) as u64;
            let bin = ((s.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
            self.histogram[bin] += 1;
            self.not_probabilities |= !(0.0..=1.0).contains(&s);
            let p = s.clamp(1e-7, 1.0 - 1e-7);
            self.logit_sum += (p / (1.0 - p)).ln().abs();
        }
        self.n += all.len() as u64;
        if positions > 1 {
            let per_pos = all.len() / positions / batch;
            for (i, &s) in all.iter().enumerate() {
                let slot = if (i / per_pos) % positions == 0 { &mut self.first } else { &mut self.other };
                slot.0 += s as f64;
                slot.1 += 1;
            }
        }
    }

    /// The layer's gate statistics.
    pub(super) fn finish(&self) -> GateStats {
        GateStats {
            mean: ratio((self.sum, self.n)),
            below_0_1: ratio((self.below[0] as f64, self.n)),
            below_0_01: ratio((self.below[1] as f64, self.n)),
            histogram: self.histogram.clone(),
            mean_abs_logit: (!self.not_probabilities && self.n > 0).then(|| ratio((self.logit_sum, self.n))),
            first_token_mean: (self.first.1 > 0).then(|| ratio(self.first)),
            other_tokens_mean: (self.other.1 > 0).then(|| ratio(self.other)),
            scores: self.n,
        }
    }
}
