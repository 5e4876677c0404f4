//! The metrics a summary estimates per configuration: their names, units, sources, precision
//! and the range they cannot leave.

use serde::{Deserialize, Serialize};

/// The metrics of the report, in column order.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Final validation loss (nats per token).
    ValLoss,
    /// Best (lowest) validation loss over training.
    BestValLoss,
    /// Loss spikes during training.
    Spikes,
    /// F-Attn (queries ≥ 1), mean over heads and layers.
    FirstTokenAttention,
    /// Sink_1^ε, mean over layers.
    Sink,
    /// Largest |h| of a block's output, mean over layers.
    MaxActivation,
    /// Largest |h| over the median |h|, mean over layers.
    Top1Median,
    /// The same ratio in the layer where it is largest: a massive activation in one layer is one
    /// (Sun et al. measure per layer).
    Top1MedianPeakLayer,
    /// Guo et al.'s residual-state peak: the first token's norm over the median token norm, mean
    /// over layers.
    FirstTokenNorm,
    /// The largest token norm over the median token norm, mean over layers.
    MaxTokenNorm,
    /// The share of sequences whose largest token norm is the first token's, mean over layers.
    MaxTokenNormFirst,
    /// Mean gate score.
    GateMean,
    /// The first token's peak channel (mean |h|) over the median channel, in the block where the
    /// peak appears (the interventions' target).
    PeakRatio,
    /// Loss over the analysis split, as trained (the interventions' reference).
    AnalysisLoss,
    /// That loss with the first token's peak set to 0.
    LossPeakZeroed,
    /// That loss with the peak set to its mean over sequences.
    LossPeakMeaned,
    /// F-Attn with the peak set to 0.
    FirstTokenAttentionPeakZeroed,
    /// F-Attn with the peak set to its mean.
    FirstTokenAttentionPeakMeaned,
    /// F-Attn as a share of each row's mass (equal to F-Attn under softmax).
    FirstTokenShare,
    /// The slot cures' weight on their slot, mean over heads, layers and queries ≥ 1.
    Slot,
    /// Mean row mass `Σ_k A[i, k]` (1 under softmax).
    RowMass,
    /// The streaming probe's perplexity with the first token evicted from the window over that
    /// with it kept (`gatelab eval --window`).
    StreamingRatio,
}

impl Metric {
    /// Every metric, in column order.
    pub const ALL: [Metric; 22] = [
        Metric::ValLoss,
        Metric::BestValLoss,
        Metric::Spikes,
        Metric::FirstTokenAttention,
        Metric::Sink,
        Metric::MaxActivation,
        Metric::Top1Median,
        Metric::Top1MedianPeakLayer,
        Metric::FirstTokenNorm,
        Metric::MaxTokenNorm,
        Metric::MaxTokenNormFirst,
        Metric::GateMean,
        Metric::PeakRatio,
        Metric::AnalysisLoss,
        Metric::LossPeakZeroed,
        Metric::LossPeakMeaned,
        Metric::FirstTokenAttentionPeakZeroed,
        Metric::FirstTokenAttentionPeakMeaned,
        Metric::FirstTokenShare,
        Metric::Slot,
        Metric::RowMass,
        Metric::StreamingRatio,
    ];

    /// Its column name, the same in every table and chart.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ValLoss => "val loss",
            Metric::BestValLoss => "best val loss",
            Metric::Spikes => "spikes",
            Metric::FirstTokenAttention => "F-Attn",
            Metric::Sink => "Sink",
            Metric::MaxActivation => "max act",
            Metric::Top1Median => "top1/median",
            Metric::Top1MedianPeakLayer => "top1/median, peak layer",
            Metric::FirstTokenNorm => "‖h₀‖/median",
            Metric::MaxTokenNorm => "max ‖h‖/median",
            Metric::MaxTokenNormFirst => "max ‖h‖ at first",
            Metric::GateMean => "gate mean",
            Metric::PeakRatio => "peak/median",
            Metric::AnalysisLoss => "loss",
            Metric::LossPeakZeroed => "loss, peak → 0",
            Metric::LossPeakMeaned => "loss, peak → mean",
            Metric::FirstTokenAttentionPeakZeroed => "F-Attn, peak → 0",
            Metric::FirstTokenAttentionPeakMeaned => "F-Attn, peak → mean",
            Metric::FirstTokenShare => "F-Attn share",
            Metric::Slot => "slot",
            Metric::RowMass => "row mass",
            Metric::StreamingRatio => "streaming ratio",
        }
    }

    /// Its key in CSV files.
    pub fn key(self) -> &'static str {
        match self {
            Metric::ValLoss => "val_loss",
            Metric::BestValLoss => "best_val_loss",
            Metric::Spikes => "spikes",
            Metric::FirstTokenAttention => "first_token_attention",
            Metric::Sink => "sink",
            Metric::MaxActivation => "max_activation",
            Metric::Top1Median => "top1_median",
            Metric::Top1MedianPeakLayer => "top1_median_peak_layer",
            Metric::FirstTokenNorm => "first_token_norm_ratio",
            Metric::MaxTokenNorm => "max_token_norm_ratio",
            Metric::MaxTokenNormFirst => "max_token_norm_first",
            Metric::GateMean => "gate_mean",
            Metric::PeakRatio => "peak_ratio",
            Metric::AnalysisLoss => "analysis_loss",
            Metric::LossPeakZeroed => "loss_peak_zeroed",
            Metric::LossPeakMeaned => "loss_peak_meaned",
            Metric::FirstTokenAttentionPeakZeroed => "first_token_attention_peak_zeroed",
            Metric::FirstTokenAttentionPeakMeaned => "first_token_attention_peak_meaned",
            Metric::FirstTokenShare => "first_token_share",
            Metric::Slot => "slot",
            Metric::RowMass => "row_mass",
            Metric::StreamingRatio => "streaming_ratio",
        }
    }

    /// Decimals to print.
    pub fn digits(self) -> usize {
        match self {
            Metric::ValLoss
            | Metric::BestValLoss
            | Metric::AnalysisLoss
            | Metric::LossPeakZeroed
            | Metric::LossPeakMeaned => 4,
            Metric::Spikes => 1,
            Metric::MaxActivation
            | Metric::Top1Median
            | Metric::Top1MedianPeakLayer
            | Metric::PeakRatio
            | Metric::FirstTokenNorm
            | Metric::MaxTokenNorm => 2,
            _ => 3,
        }
    }

    /// The range the metric cannot leave, if any.
    pub fn bounds(self) -> Option<(f64, f64)> {
        match self {
            Metric::FirstTokenAttention
            | Metric::Sink
            | Metric::GateMean // σ's range; a group clips to its own activation's
            | Metric::FirstTokenAttentionPeakZeroed
            | Metric::FirstTokenAttentionPeakMeaned
            | Metric::FirstTokenShare
            | Metric::MaxTokenNormFirst
            | Metric::Slot => Some((0.0, 1.0)),
            Metric::ValLoss
            | Metric::BestValLoss
            | Metric::Spikes
            | Metric::MaxActivation
            | Metric::Top1Median
            | Metric::Top1MedianPeakLayer
            | Metric::FirstTokenNorm
            | Metric::MaxTokenNorm
            | Metric::PeakRatio
            | Metric::AnalysisLoss
            | Metric::LossPeakZeroed
            | Metric::LossPeakMeaned
            | Metric::RowMass
            | Metric::StreamingRatio => Some((0.0, f64::INFINITY)),
        }
    }

    /// Where the number comes from (`docs/metrics.md` defines each).
    pub fn source(self) -> &'static str {
        match self {
            Metric::ValLoss => "the last validation pass (eval.jsonl)",
            Metric::BestValLoss => "the lowest validation pass (eval.jsonl)",
            Metric::Spikes => "training log (metrics.jsonl)",
            Metric::StreamingRatio => "gatelab eval --window (perplexity.json)",
            _ => "the held-out analysis split (analysis.json)",
        }
    }
}
