//! The presets of scale: `tiny` (seconds; tests), `small` (the CPU default), `paper` (the
//! paper's 1.7B dense shape, for GPUs). A run's config type, [`RunConfig`], is the run folder's
//! (`gatelab_rundir`).

use crate::error::{ExperimentError, Result};
use gatelab_data::synthetic::BigramBackcopy;
use gatelab_data::{CorpusSpec, DataConfig, TokenizerSpec};
use gatelab_model::{GateSpec, ModelConfig};
pub use gatelab_rundir::{RunConfig, TrainConfig};

/// The presets of scale, with what each is for.
pub const PRESETS: [(&str, &str); 3] = [
    ("tiny", "seconds per run, for tests: one attention-only head of 32, 6000 steps of 8×32 tokens"),
    ("small", "the CPU default: one attention-only layer of 64, 4000 steps of 32×128 tokens"),
    ("paper", "the paper's 28-layer 1.7B dense shape (Table 2), for GPUs"),
];

/// The names of the presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The preset named `name`.
pub fn preset(name: &str) -> Result<RunConfig> {
    let data = DataConfig { corpus: CorpusSpec::BigramBackcopy(BigramBackcopy::default()), ..DataConfig::default() };
    match name {
        // Seconds per run, and still a positive control: one attention-only head on
        // Bigram-Backcopy grows a first-token sink (F-Attn 0.67 ± 0.04 over 3 seeds).
        "tiny" => Ok(RunConfig {
            model: ModelConfig {
                d_model: 32,
                n_layers: 1,
                n_heads: 1,
                n_kv_heads: 1,
                head_dim: 32,
                d_ff: 0,
                qk_norm: false,
                tie_embeddings: false,
                ..ModelConfig::default()
            },
            data: DataConfig { seq_len: 32, synthetic_examples: [1 << 20, 64, 64], ..data },
            train: TrainConfig {
                steps: 6000,
                batch_size: 8,
                warmup_steps: 100,
                log_every: 50,
                eval_every: 3000,
                eval_batches: 2,
                dynamics_every: 1000,
                dynamics_batch: 8,
                checkpoint_every: 1000,
                ..TrainConfig::default()
            },
        }),
        // The CPU default: the setting on which the baseline grows a first-token sink on the
        // default data (Bigram-Backcopy): one attention-only layer, untied embeddings (a tied
        // head cannot carry the bigram, so the head never goes dormant), 4000 steps.
        "small" => Ok(RunConfig {
            model: ModelConfig {
                d_model: 64,
                n_layers: 1,
                n_heads: 1,
                n_kv_heads: 1,
                head_dim: 64,
                d_ff: 0,
                qk_norm: false,
                tie_embeddings: false,
                ..ModelConfig::default()
            },
            data: DataConfig { seq_len: 128, ..data },
            train: TrainConfig::default(),
        }),
        // The paper's 28-layer 1.7B dense model (Table 2 rows 1-4; docs/paper.md §5), for GPUs:
        // a BPE vocabulary stands in for Qwen's 151,936.
        "paper" => Ok(RunConfig {
            model: ModelConfig {
                d_model: 2048,
                n_layers: 28,
                n_heads: 16,
                n_kv_heads: 8,
                head_dim: 128,
                d_ff: 6144,
                qk_norm: true,
                tie_embeddings: true,
                rope_theta: 1e4,
                gate: GateSpec::BASELINE,
                match_baseline_params: true,
                ..ModelConfig::default()
            },
            data: DataConfig { seq_len: 4096, tokenizer: TokenizerSpec::Bpe { vocab_size: 32_768 }, ..data },
            train: TrainConfig {
                steps: 100_000,
                batch_size: 1024,
                lr: 4e-3,
                warmup_steps: 1000,
                min_lr_ratio: 0.015,
                beta2: 0.95,
                log_every: 10,
                eval_every: 1000,
                dynamics_every: 1000,
                checkpoint_every: 1000,
                ..TrainConfig::default()
            },
        }),
        other => Err(ExperimentError::option(
            format!("--preset {other}"),
            format!("expected one of {}", preset_names().join(", ")),
        )),
    }
}
