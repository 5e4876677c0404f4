//! Interventions on the first token's largest activation (Sun et al. 2024, "Massive Activations
//! in Large Language Models", §3.2): overwrite it with zero, or with its mean over sequences, and
//! measure the loss and F-Attn again. A massive activation that acts as a fixed bias leaves the
//! model unchanged when set to its mean and breaks it when set to zero; an ordinary one does
//! neither. Definitions: `docs/metrics.md`.

use crate::stats::{Accumulator, StatsConfig};
use burn::tensor::Tensor;
use gatelab_data::LmBatch;
use gatelab_model::{ResidualEdit, Transformer, masked_cross_entropy};
use serde::{Deserialize, Serialize};

/// The position whose activation is edited: the first token (BOS), where massive activations sit.
pub const POSITION: usize = 0;

/// One quantity measured as trained, with the peak zeroed, and with the peak set to its mean.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Edited {
    /// No edit.
    #[serde(with = "gatelab_rundir::finite")]
    pub as_trained: f64,
    /// The peak set to 0.
    #[serde(with = "gatelab_rundir::finite")]
    pub zeroed: f64,
    /// The peak set to its mean over the analysed sequences.
    #[serde(with = "gatelab_rundir::finite")]
    pub meaned: f64,
}

/// What the interventions found (`analysis.json`, field `interventions`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Interventions {
    /// The block after which the stream is edited: the first whose largest mean |h| at the first
    /// token reaches half the largest of any block (where the peak appears).
    pub layer: usize,
    /// The edited position (always [`POSITION`]).
    pub position: usize,
    /// The channel with the largest mean |h| at the first token in that block.
    pub channel: usize,
    /// Its mean |h| over the sequences.
    #[serde(with = "gatelab_rundir::finite")]
    pub peak_abs: f64,
    /// The median over channels of the first token's mean |h| in that block (the peak's scale).
    #[serde(with = "gatelab_rundir::finite")]
    pub median_abs: f64,
    /// Its mean (signed) over the sequences: the value written by the mean edit.
    #[serde(with = "gatelab_rundir::finite")]
    pub mean_value: f64,
    /// Loss (nats per real target) over the analysed sequences.
    pub loss: Edited,
    /// F-Attn (queries ≥ 1), mean over heads and layers.
    pub first_token_attention: Edited,
}

/// Loss and F-Attn of `model` over `batches`, with `edit` applied when given.
fn measure(model: &Transformer, batches: &[LmBatch], edit: Option<&ResidualEdit>, stats: &StatsConfig) -> (f64, f64) {
    let mut acc = Accumulator::new(stats.clone());
    let (mut loss_sum, mut targets) = (0.0, 0.0);
    for batch in batches {
        let keep_maps = batch.inputs.dims()[1] <= stats.query_tile;
        let (logits, probes) = match edit {
            Some(e) => model.forward_probed_edited(batch.inputs.clone(), e, keep_maps),
            None if keep_maps => model.forward_probed(batch.inputs.clone()),
            None => model.forward_probed_lean(batch.inputs.clone()),
        };
        acc.add(&probes);
        let (sum, n) = batch_loss(logits, batch);
        loss_sum += sum;
        targets += n;
    }
    (mean_loss(loss_sum, targets), acc.finish().first_token_attention())
}

/// Σ cross-entropy over the real targets of `batch` (`logits` its model output), and their count.
pub(crate) fn batch_loss(logits: Tensor<3>, batch: &LmBatch) -> (f64, f64) {
    let n = scalar(batch.mask.clone().sum());
    (scalar(masked_cross_entropy(logits, batch.targets.clone(), batch.mask.clone())) * n, n)
}

/// The mean of a loss sum over `targets` targets (NaN for none).
pub(crate) fn mean_loss(sum: f64, targets: f64) -> f64 {
    if targets > 0.0 { sum / targets } else { f64::NAN }
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// Per block, the first token's mean |h| and mean h per channel over `batches`.
fn first_token_channels(model: &Transformer, batches: &[LmBatch]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut sums: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut sequences = 0usize;
    for batch in batches {
        let (_, probes) = model.forward_probed_lean(batch.inputs.clone());
        for (i, layer) in probes.layers.iter().enumerate() {
            let [b, _, d] = layer.residual.dims();
            let first: Vec<f32> =
                layer.residual.clone().slice([0..b, POSITION..POSITION + 1, 0..d]).into_data().iter::<f32>().collect();
            if sums.len() <= i {
                sums.push((vec![0.0; d], vec![0.0; d]));
            }
            for (k, v) in first.iter().enumerate() {
                sums[i].0[k % d] += f64::from(v.abs());
                sums[i].1[k % d] += f64::from(*v);
            }
        }
        sequences += batch.inputs.dims()[0];
    }
    let n = sequences.max(1) as f64;
    sums.into_iter()
        .map(|(abs, signed)| (abs.iter().map(|s| s / n).collect(), signed.iter().map(|s| s / n).collect()))
        .collect()
}

/// Finds the first token's peak and measures the model with the peak zeroed and with it set to
/// its mean, beside `as_trained`: the (loss, F-Attn) of the same `batches` without an edit, which
/// the caller's own pass over them has measured. `None` for a model without blocks or an empty
/// `batches`.
pub fn intervene(
    model: &Transformer,
    batches: &[LmBatch],
    stats: &StatsConfig,
    as_trained: (f64, f64),
) -> Option<Interventions> {
    let channels = first_token_channels(model, batches);
    let peak_of = |abs: &[f64]| abs.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1));
    let highest = channels.iter().filter_map(|(abs, _)| peak_of(abs)).map(|p| p.1).fold(f64::NAN, f64::max);
    let layer = channels.iter().position(|(abs, _)| peak_of(abs).is_some_and(|p| p.1 >= 0.5 * highest))?;
    let (abs, signed) = &channels[layer];
    let (channel, peak_abs) = peak_of(abs)?;
    let mut sorted = abs.clone();
    sorted.sort_by(f64::total_cmp);
    let median_abs = sorted[sorted.len() / 2];
    let mean_value = signed[channel];
    let edit = |value: f64| ResidualEdit { layer, position: POSITION, channel, value: value as f32 };
    let plain = as_trained;
    let zeroed = measure(model, batches, Some(&edit(0.0)), stats);
    let meaned = measure(model, batches, Some(&edit(mean_value)), stats);
    Some(Interventions {
        layer,
        position: POSITION,
        channel,
        peak_abs,
        median_abs,
        mean_value,
        loss: Edited { as_trained: plain.0, zeroed: zeroed.0, meaned: meaned.0 },
        first_token_attention: Edited { as_trained: plain.1, zeroed: zeroed.1, meaned: meaned.1 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataloader::batcher::Batcher;
    use burn::tensor::Device;
    use gatelab_data::{LmBatcher, LmExample};
    use gatelab_model::{GateSpec, ModelConfig};

    fn model(device: &Device) -> Transformer {
        ModelConfig {
            vocab_size: 16,
            d_model: 16,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 2,
            head_dim: 8,
            d_ff: 32,
            init_std: 0.3,
            gate: GateSpec::BASELINE,
            ..ModelConfig::default()
        }
        .init(device)
        .unwrap()
    }

    fn batch(rows: &[Vec<u32>], device: &Device) -> LmBatch {
        LmBatcher { pad: 0 }.batch(rows.iter().map(|r| LmExample::new(r.clone())).collect(), device)
    }

    #[test]
    fn the_mean_edit_of_identical_sequences_changes_nothing_and_zeroing_changes_the_loss() {
        let device = Device::flex();
        let model = model(&device);
        let row: Vec<u32> = vec![1, 5, 3, 9, 2, 7, 4, 11, 6];
        // Every sequence the same: the first token's activation is its own mean.
        let batches = vec![batch(&[row.clone(), row.clone()], &device), batch(&[row], &device)];
        let plain = measure(&model, &batches, None, &StatsConfig::default());
        let found = intervene(&model, &batches, &StatsConfig::default(), plain).unwrap();
        assert_eq!(found.position, POSITION);
        assert!(found.layer < 2 && found.channel < 16);
        assert!(found.peak_abs >= found.median_abs && found.peak_abs > 0.0);
        assert!((found.mean_value.abs() - found.peak_abs).abs() < 1e-5, "{found:?}");
        assert!((found.loss.meaned - found.loss.as_trained).abs() < 1e-5, "{found:?}");
        assert!((found.first_token_attention.meaned - found.first_token_attention.as_trained).abs() < 1e-6);
        assert!((found.loss.zeroed - found.loss.as_trained).abs() > 1e-7, "{found:?}");
        assert!(found.loss.as_trained.is_finite() && found.first_token_attention.as_trained > 0.0);
    }

    #[test]
    fn the_peak_is_the_channel_with_the_largest_first_token_magnitude() {
        let device = Device::flex();
        let model = model(&device);
        let batches = vec![batch(&[vec![1, 2, 3, 4, 5], vec![1, 6, 7, 8, 9]], &device)];
        let plain = measure(&model, &batches, None, &StatsConfig::default());
        let found = intervene(&model, &batches, &StatsConfig::default(), plain).unwrap();
        let channels = first_token_channels(&model, &batches);
        let (abs, _) = &channels[found.layer];
        assert!(abs.iter().all(|v| *v <= found.peak_abs + 1e-12));
        let highest = channels.iter().flat_map(|(a, _)| a.iter().copied()).fold(0.0, f64::max);
        assert!(found.peak_abs >= 0.5 * highest);
        for earlier in &channels[..found.layer] {
            assert!(earlier.0.iter().all(|v| *v < 0.5 * highest));
        }
    }
}
