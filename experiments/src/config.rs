//! [`RunConfig`]: everything that determines a run's numbers, and the presets of scale.

use crate::train::TrainConfig;
use gatelab_data::synthetic::BigramBackcopy;
use gatelab_data::{CorpusSpec, DataConfig, TokenizerSpec};
use gatelab_model::{GateSpec, ModelConfig};
use serde::{Deserialize, Serialize};

/// A run's resolved configuration.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model (its `vocab_size` follows the data).
    pub model: ModelConfig,
    /// The corpus and its splits.
    pub data: DataConfig,
    /// Optimisation.
    pub train: TrainConfig,
}

/// The presets of scale: `tiny` (seconds; tests), `small` (the CPU default), `paper` (the paper's
/// 1.7B dense shape, for GPUs).
pub const PRESETS: [&str; 3] = ["tiny", "small", "paper"];

impl RunConfig {
    /// The preset named `name`.
    pub fn preset(name: &str) -> Result<Self, String> {
        let data = DataConfig { corpus: CorpusSpec::BigramBackcopy(BigramBackcopy::default()), ..DataConfig::default() };
        match name {
            // Seconds per run, and still a positive control: one attention-only head on
            // Bigram-Backcopy grows a first-token sink (F-Attn 0.67 ± 0.04 over 3 seeds).
            "tiny" => Ok(RunConfig {
                model: ModelConfig { d_model: 32, n_layers: 1, n_heads: 1, n_kv_heads: 1, head_dim: 32, d_ff: 0, qk_norm: false, tie_embeddings: false, ..ModelConfig::default() },
                data: DataConfig { seq_len: 32, synthetic_examples: [1 << 20, 64, 64], ..data },
                train: TrainConfig { steps: 6000, batch_size: 8, warmup_steps: 100, log_every: 50, eval_every: 3000, eval_batches: 2, dynamics_every: 1000, dynamics_batch: 8, checkpoint_every: 1000, ..TrainConfig::default() },
            }),
            // The CPU default: the setting on which the baseline grows a first-token sink on the
            // default data (Bigram-Backcopy): one attention-only layer, untied embeddings (a tied
            // head cannot carry the bigram, so the head never goes dormant), 4000 steps.
            "small" => Ok(RunConfig {
                model: ModelConfig { d_model: 64, n_layers: 1, n_heads: 1, n_kv_heads: 1, head_dim: 64, d_ff: 0, qk_norm: false, tie_embeddings: false, ..ModelConfig::default() },
                data: DataConfig { seq_len: 128, ..data },
                train: TrainConfig::default(),
            }),
            // The paper's 28-layer 1.7B dense model (Table 2 rows 1-4; paper.md §4), for GPUs:
            // a BPE vocabulary stands in for Qwen's 151,936.
            "paper" => Ok(RunConfig {
                model: ModelConfig { d_model: 2048, n_layers: 28, n_heads: 16, n_kv_heads: 8, head_dim: 128, d_ff: 6144, qk_norm: true, tie_embeddings: true, rope_theta: 1e4, gate: GateSpec::BASELINE, match_baseline_params: true, ..ModelConfig::default() },
                data: DataConfig { seq_len: 4096, tokenizer: TokenizerSpec::Bpe { vocab_size: 32_768 }, ..data },
                train: TrainConfig { steps: 100_000, batch_size: 1024, lr: 4e-3, warmup_steps: 1000, min_lr_ratio: 0.015, beta2: 0.95, log_every: 10, eval_every: 1000, dynamics_every: 1000, checkpoint_every: 1000, ..TrainConfig::default() },
            }),
            other => Err(format!("--preset {other}: expected one of {}", PRESETS.join(", "))),
        }
    }

    /// The vocabulary the data gives the model (loading a `tokenizer.json` if it names one).
    pub fn data_vocab_size(&self) -> Result<usize, String> {
        Ok(match (&self.data.corpus, &self.data.tokenizer) {
            (CorpusSpec::BigramBackcopy(b), _) => b.vocab_size(),
            (CorpusSpec::ZipfMarkov(z), _) => z.vocab_size(),
            (_, TokenizerSpec::Bytes) => gatelab_data::Tokenizer::bytes().vocab_size(),
            (_, TokenizerSpec::Bpe { vocab_size }) => *vocab_size,
            (_, TokenizerSpec::File { path }) => gatelab_data::Tokenizer::load(path).map_err(|e| e.to_string())?.vocab_size(),
        })
    }

    /// Sets the model's vocabulary from the data and checks every part; errors name the field.
    pub fn resolve(mut self) -> Result<Self, String> {
        self.model.vocab_size = self.data_vocab_size()?;
        self.model.validate().map_err(|e| format!("model.{e}"))?;
        self.train.validate()?;
        if self.data.seq_len < 2 {
            return Err("data.seq_len: must be at least 2".into());
        }
        Ok(self)
    }
}
