//! First-token attention, α(k), the sink indicator and attention entropy, per head, from one
//! pass over the attention a tile of queries at a time.

use super::{FIRST_QUERIES, HeadStats, StatsConfig, flat, host, ratio};
use burn::tensor::{Bool, Tensor};
use gatelab_model::attention::AttentionProbe;

/// Running sums of one layer's attention statistics.
#[derive(Debug, Clone, Default)]
pub(super) struct AttentionAcc {
    heads: usize,
    /// Σ A[i, 0] per head, for queries ≥ each of [`FIRST_QUERIES`].
    f_attn: [Vec<f64>; 3],
    f_attn_n: [u64; 3],
    /// Σ over sequences of α(k) per head and key.
    alpha: Vec<Vec<f64>>,
    /// Sequences whose α(0) exceeds ε, per head.
    sinks: Vec<u64>,
    entropy: Vec<f64>,
    entropy_n: u64,
    /// Σ A[i, 0] / Σ_k A[i, k] per head, for queries ≥ each of [`FIRST_QUERIES`] (counts as
    /// `f_attn_n`).
    share: [Vec<f64>; 3],
    /// Σ over queries ≥ 1 of the row's mass Σ_k A[i, k], and of the slot's weight, per head.
    row_mass: Vec<f64>,
    slot: Vec<f64>,
    has_slot: bool,
}

/// One tile of attention: its first query, the weights `[batch, heads, queries, keys]` and, for
/// the slot cures, the slot's weight `[batch, heads, queries]`.
type Tile = (usize, Tensor<4>, Option<Tensor<3>>);

/// The attention of `p` as tiles ([`Tile`]): the kept maps as one tile, or, for lean probes,
/// recomputed in f32 from the queries and keys `tile` queries at a time under the probe's cure
/// (`gatelab_model::cure::weights`; each tile built only when the iteration reaches it).
fn attention_tiles(p: &AttentionProbe, tile: usize) -> Box<dyn Iterator<Item = Tile> + '_> {
    if let Some(maps) = &p.attn {
        return Box::new(std::iter::once((0, maps.clone(), p.slot.clone())));
    }
    let [b, h, t, hd] = p.queries.dims();
    let [_, kv, _, _] = p.keys.dims();
    let keys = gatelab_model::attention::repeat_kv(p.keys.clone(), h / kv);
    let scale = (hd as f64).powf(-0.5);
    Box::new((0..t).step_by(tile.max(1)).map(move |i0| {
        let i1 = (i0 + tile.max(1)).min(t);
        let q = p.queries.clone().slice([0..b, 0..h, i0..i1, 0..hd]);
        let k = keys.clone().slice([0..b, 0..h, 0..i1, 0..hd]);
        let scores = q.matmul(k.transpose()).mul_scalar(scale);
        // Query i0 + r sees keys 0..=i0 + r.
        let future = Tensor::<2, Bool>::tril_mask([i1 - i0, i1], i0 as i64, &scores.device());
        let slot_logits = p.slot_logits.clone().map(|l| l.slice([0..b, 0..h, i0..i1]));
        let (weights, slot) = gatelab_model::cure::weights(p.cure, scores, future, slot_logits, i0, t);
        (i0, weights, slot)
    }))
}

impl AttentionAcc {
    /// Adds one batch's attention.
    pub(super) fn add(&mut self, p: &AttentionProbe, cfg: &StatsConfig) {
        let [b, h, t, _] = p.queries.dims();
        if self.heads == 0 {
            self.heads = h;
            self.f_attn = std::array::from_fn(|_| vec![0.0; h]);
            self.alpha = vec![vec![0.0; cfg.alpha_positions.min(t)]; h];
            self.sinks = vec![0; h];
            self.entropy = vec![0.0; h];
            self.share = std::array::from_fn(|_| vec![0.0; h]);
            self.row_mass = vec![0.0; h];
            self.slot = vec![0.0; h];
        }
        let k_max = self.alpha[0].len();
        let mut alpha_sums = vec![0.0f64; b * h * k_max];
        for (i0, probs, slot) in attention_tiles(p, cfg.query_tile) {
            self.add_first_token(&probs, i0);
            self.add_mass(&probs, slot, i0);
            Self::add_columns(&probs, k_max, &mut alpha_sums);
            self.add_entropy(probs, i0);
        }
        // α(k) per sequence and head, and the sink indicator.
        for (bh, sums) in alpha_sums.chunks(k_max).enumerate() {
            let hi = bh % h;
            for (ki, sum) in sums.iter().enumerate() {
                let alpha = sum / (t - ki) as f64;
                self.alpha[hi][ki] += alpha;
                if ki == 0 && alpha > cfg.epsilon {
                    self.sinks[hi] += 1;
                }
            }
        }
    }

    /// F-Attn per head for each first query, as the absolute weight on key 0 and as its share of
    /// the row's mass, from a tile whose first query is `i0`.
    fn add_first_token(&mut self, probs: &Tensor<4>, i0: usize) {
        let [b, h, n, keys] = probs.dims();
        let col0 = probs.clone().slice([0..b, 0..h, 0..n, 0..1]).reshape([b, h, n]);
        // A row with no mass (softpick can give one) has no share: counted as 0.
        let mass = probs.clone().slice([0..b, 0..h, 0..n, 0..keys]).sum_dim(3).reshape([b, h, n]);
        let share = col0.clone() / mass.clone().clamp_min(1e-30);
        for (j, &m) in FIRST_QUERIES.iter().enumerate() {
            let from = m.saturating_sub(i0).min(n);
            if from < n {
                let sums = host(col0.clone().slice([0..b, 0..h, from..n]).sum_dims(&[0, 2]).reshape([h]));
                for (acc_h, s) in self.f_attn[j].iter_mut().zip(sums) {
                    *acc_h += s;
                }
                let shares = host(share.clone().slice([0..b, 0..h, from..n]).sum_dims(&[0, 2]).reshape([h]));
                for (acc_h, s) in self.share[j].iter_mut().zip(shares) {
                    *acc_h += s;
                }
                self.f_attn_n[j] += (b * (n - from)) as u64;
            }
        }
    }

    /// The row mass Σ_k A[i, k] and the slot's weight, summed over queries ≥ 1, per head.
    fn add_mass(&mut self, probs: &Tensor<4>, slot: Option<Tensor<3>>, i0: usize) {
        let [b, h, n, keys] = probs.dims();
        let from = if i0 == 0 { 1 } else { 0 };
        if from >= n {
            return;
        }
        let mass = probs.clone().slice([0..b, 0..h, from..n, 0..keys]).sum_dim(3).sum_dims(&[0, 2]).reshape([h]);
        for (acc, v) in self.row_mass.iter_mut().zip(host(mass)) {
            *acc += v;
        }
        if let Some(slot) = slot {
            self.has_slot = true;
            for (acc, v) in
                self.slot.iter_mut().zip(host(slot.slice([0..b, 0..h, from..n]).sum_dims(&[0, 2]).reshape([h])))
            {
                *acc += v;
            }
        }
    }

    /// Column sums of the first `k_max` keys per (sequence, head). Causal maps are 0 above the
    /// diagonal, so these are the sums over queries i ≥ k that α(k) needs.
    fn add_columns(probs: &Tensor<4>, k_max: usize, alpha_sums: &mut [f64]) {
        let [b, h, n, keys] = probs.dims();
        let kc = k_max.min(keys);
        let cols = flat(probs.clone().slice([0..b, 0..h, 0..n, 0..kc]).sum_dim(2).reshape([b, h, kc]));
        for bh in 0..b * h {
            for ki in 0..kc {
                alpha_sums[bh * k_max + ki] += cols[bh * kc + ki] as f64;
            }
        }
    }

    /// Entropy of the rows of queries ≥ 1, per head.
    fn add_entropy(&mut self, probs: Tensor<4>, i0: usize) {
        let [b, h, n, keys] = probs.dims();
        let from = if i0 == 0 { 1 } else { 0 };
        if from < n {
            let rows = probs.slice([0..b, 0..h, from..n, 0..keys]);
            let ent = (rows.clone() * rows.add_scalar(1e-30).log()).sum_dim(3).neg().sum_dims(&[0, 2]).reshape([h]);
            for (e, v) in self.entropy.iter_mut().zip(host(ent)) {
                *e += v;
            }
            self.entropy_n += (b * (n - from)) as u64;
        }
    }

    /// Per-head statistics over `sequences` sequences.
    pub(super) fn finish(&self, sequences: u64) -> Vec<HeadStats> {
        let seqs = sequences.max(1) as f64;
        (0..self.heads)
            .map(|h| HeadStats {
                first_token_attention: std::array::from_fn(|j| ratio((self.f_attn[j][h], self.f_attn_n[j]))),
                alpha: self.alpha[h].iter().map(|a| a / seqs).collect(),
                sink_share: self.sinks[h] as f64 / seqs,
                entropy: ratio((self.entropy[h], self.entropy_n)),
                first_token_share: Some(std::array::from_fn(|j| ratio((self.share[j][h], self.f_attn_n[j])))),
                row_mass: Some(ratio((self.row_mass[h], self.entropy_n))),
                slot: self.has_slot.then(|| ratio((self.slot[h], self.entropy_n))),
            })
            .collect()
    }
}
