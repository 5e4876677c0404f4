//! [`RunConfig`]: everything that determines a run's numbers — the model, the data and the
//! optimisation ([`TrainConfig`]) — as `config.json` records it.

use crate::error::RunDirError;
use gatelab_data::{CorpusSpec, DataConfig, TokenizerSpec};
use gatelab_model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A run's resolved configuration.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model (its `vocab_size` follows the data).
    pub model: ModelConfig,
    /// The corpus and its splits.
    pub data: DataConfig,
    /// Optimisation (defaults for an imported checkpoint, which was not trained here).
    #[serde(default)]
    pub train: TrainConfig,
}

impl RunConfig {
    /// The vocabulary the data gives the model (loading a `tokenizer.json` if it names one).
    pub fn data_vocab_size(&self) -> Result<usize, RunDirError> {
        Ok(match (&self.data.corpus, &self.data.tokenizer) {
            (CorpusSpec::BigramBackcopy(b), _) => b.vocab_size(),
            (CorpusSpec::ZipfMarkov(z), _) => z.vocab_size(),
            (CorpusSpec::Mqar(m), _) => m.vocab_size(),
            (_, TokenizerSpec::Bytes) => gatelab_data::Tokenizer::bytes().vocab_size(),
            (_, TokenizerSpec::Bpe { vocab_size }) => *vocab_size,
            (_, TokenizerSpec::File { path }) => gatelab_data::Tokenizer::load(path)?.vocab_size(),
        })
    }

    /// Sets the model's vocabulary from the data and checks every part (that the corpus can be
    /// had too); errors name the field or the file.
    pub fn resolve(mut self) -> Result<Self, RunDirError> {
        self.data.check()?;
        self.model.vocab_size = self.data_vocab_size()?;
        // Clipped softmax's γ = −α/T at this run's length (an explicit γ stays).
        self.model.cure = self.model.cure.at_length(self.data.seq_len);
        self.model.validate().map_err(|e| RunDirError::invalid(format!("model.{}", e.field), e.message))?;
        self.train.validate()?;
        if self.data.seq_len < 2 {
            return Err(RunDirError::invalid("data.seq_len", "must be at least 2"));
        }
        Ok(self)
    }

    /// The dotted keys (`train.lr`, `model.gate.position`, …) whose values differ between `self`
    /// and `other`, each with both values: what tells two configurations apart. Two sections of
    /// different kinds (a corpus `bigram_backcopy` and one `text`: another tag, other fields) are
    /// one difference, at the section's key, not one per field.
    pub fn differences(&self, other: &RunConfig) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        let (a, b) = (
            serde_json::to_value(self).expect("configs serialise"),
            serde_json::to_value(other).expect("configs serialise"),
        );
        let mut out = Vec::new();
        diff_values("", &a, &b, &mut out);
        out
    }
}

/// The fields that name a section's kind (serde's tags in the config: a corpus's `kind`, RoPE
/// scaling's `method`).
pub const TAGS: [&str; 3] = ["kind", "method", "type"];

fn diff_values(
    prefix: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<(String, serde_json::Value, serde_json::Value)>,
) {
    use serde_json::Value;
    let same_shape = |x: &serde_json::Map<String, Value>, y: &serde_json::Map<String, Value>| {
        x.keys().eq(y.keys()) && TAGS.iter().all(|t| x.get(*t) == y.get(*t))
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if !prefix.is_empty() && !same_shape(x, y) => {
            out.push((prefix.to_string(), a.clone(), b.clone()))
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                diff_values(&key, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        _ if a != b => out.push((prefix.to_string(), a.clone(), b.clone())),
        _ => {}
    }
}

/// Optimisation and logging settings of one run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW ε.
    pub epsilon: f64,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f64,
    /// Seed of the initialisation and of the batches.
    pub seed: u64,
    /// Steps between training-metric records.
    pub log_every: usize,
    /// Steps between validation passes (and at the end).
    pub eval_every: usize,
    /// Validation batches per pass (at most the validation split).
    pub eval_batches: usize,
    /// Steps between sink-dynamics records on a fixed analysis batch (0: only at the end).
    pub dynamics_every: usize,
    /// Sequences in that batch.
    pub dynamics_batch: usize,
    /// Steps between checkpoints (0: none).
    pub checkpoint_every: usize,
    /// A step whose loss exceeds this multiple of the running mean counts as a spike.
    pub spike_factor: f64,
    /// Divergence: a non-finite loss, or one above this multiple of ln(vocab) (chance level).
    pub diverge_factor: f64,
    /// Continued training: start from this finished run folder's `model.safetensors` instead of a
    /// fresh initialisation (the optimiser starts fresh). The model config must have the same
    /// shapes; RoPE base and sequence length may differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Activation checkpointing: `none`; `blocks` (each block's input is kept and the rest of the
    /// block recomputed in the backward pass, `gatelab_model::recompute`); or `balanced` (Burn's
    /// per-operation strategy: the backward pass recomputes the results of memory-bound operations
    /// from their inputs; matmuls and the fused kernels keep theirs). Left out of the JSON at
    /// `none`, so the hashes of runs before it hold.
    #[serde(skip_serializing_if = "Checkpointing::is_none")]
    pub checkpointing: Checkpointing,
    /// The parameters that train; the others are frozen (no gradient, no optimiser state, the
    /// weights they start with). Left out of the JSON at `all`, so the hashes of runs before it
    /// hold.
    #[serde(skip_serializing_if = "Trainable::is_all")]
    pub trainable: Trainable,
    /// The precision of a training step's forward and backward pass: `f32`, or `bf16` (mixed
    /// precision: f32 master weights, optimiser state and checkpoints; the forward pass on a bf16
    /// copy of the weights, with RMSNorm statistics, softmax, routing and the loss in f32; no
    /// loss scaling; `gatelab_model::precision`). Evaluation and every analysis run in f32. Left
    /// out of the JSON at `f32`, so the hashes of runs before it hold.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

/// The precision of training ([`TrainConfig::precision`]).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Mixed precision: the forward and backward pass in bf16 on f32 master weights.
    Bf16,
}

impl Precision {
    /// Whether it is the default, f32.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Which parameters train ([`TrainConfig::trainable`]): `"all"`, `"gate"` (the attention gate's
/// weights), `"gate+norms"` (those and every RMSNorm weight), or a list of parameter-path
/// patterns (Burn's module paths, e.g. `layers.0.attn.q_proj.weight`, with `*` matching any run
/// of characters).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum Trainable {
    /// A named set.
    Set(TrainableSet),
    /// Parameter-path patterns.
    Patterns(Vec<String>),
}

/// The named sets of [`Trainable`].
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainableSet {
    /// Every parameter.
    #[serde(rename = "all")]
    All,
    /// The attention gates' weights (`layers.*.attn.gate.*`, and `layers.*.attn.extra_gates.*`
    /// of a model with several).
    #[serde(rename = "gate")]
    Gate,
    /// The gate's weights and every RMSNorm weight.
    #[serde(rename = "gate+norms")]
    GateAndNorms,
}

impl<'de> Deserialize<'de> for Trainable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Patterns(Vec<String>),
        }
        let expected = "expected \"all\", \"gate\", \"gate+norms\" or a list of parameter-path patterns";
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
            Raw::Name(name) => match name.as_str() {
                "all" => Ok(Trainable::Set(TrainableSet::All)),
                "gate" => Ok(Trainable::Set(TrainableSet::Gate)),
                "gate+norms" => Ok(Trainable::Set(TrainableSet::GateAndNorms)),
                other => Err(serde::de::Error::custom(format!("{other:?}: {expected}"))),
            },
            Raw::Patterns(p) => Ok(Trainable::Patterns(p)),
        }
    }
}

impl Default for Trainable {
    fn default() -> Self {
        Trainable::Set(TrainableSet::All)
    }
}

impl Trainable {
    /// Whether every parameter trains.
    pub fn is_all(&self) -> bool {
        *self == Trainable::Set(TrainableSet::All)
    }

    /// The patterns of parameter paths that train (`*` matches any run of characters).
    pub fn patterns(&self) -> Vec<String> {
        match self {
            Trainable::Set(TrainableSet::All) => vec!["*".into()],
            Trainable::Set(TrainableSet::Gate) => {
                vec!["layers.*.attn.gate.*".into(), "layers.*.attn.extra_gates.*".into()]
            }
            Trainable::Set(TrainableSet::GateAndNorms) => {
                vec!["layers.*.attn.gate.*".into(), "layers.*.attn.extra_gates.*".into(), "*norm.gamma".into()]
            }
            Trainable::Patterns(p) => p.clone(),
        }
    }

    /// Whether `path` matches `pattern` (`*` any run of characters, everything else itself).
    pub fn matches(pattern: &str, path: &str) -> bool {
        let parts: Vec<&str> = pattern.split('*').collect();
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        if parts.len() == 1 {
            return pattern == path;
        }
        if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
            return false;
        }
        let mut rest = &path[first.len()..path.len() - last.len()];
        for middle in &parts[1..parts.len() - 1] {
            match rest.find(middle) {
                Some(at) => rest = &rest[at + middle.len()..],
                None => return false,
            }
        }
        true
    }
}

impl std::fmt::Display for Trainable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trainable::Set(TrainableSet::All) => write!(f, "all"),
            Trainable::Set(TrainableSet::Gate) => write!(f, "gate"),
            Trainable::Set(TrainableSet::GateAndNorms) => write!(f, "gate+norms"),
            Trainable::Patterns(p) => write!(f, "{}", p.join(" ")),
        }
    }
}

/// Activation checkpointing ([`TrainConfig::checkpointing`]).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Checkpointing {
    /// Every activation the backward pass needs is kept.
    #[default]
    None,
    /// Burn's `BalancedCheckpointing`: memory-bound results are recomputed in the backward pass.
    Balanced,
    /// Per block: only each block's input is kept, and the block's forward pass runs again in the
    /// backward pass (`gatelab_model::recompute`).
    Blocks,
}

impl Checkpointing {
    /// Whether it is off.
    pub fn is_none(&self) -> bool {
        *self == Checkpointing::None
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 4000,
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 100,
            min_lr_ratio: 0.1,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            epsilon: 1e-8,
            grad_clip: 1.0,
            seed: 0,
            log_every: 25,
            eval_every: 500,
            eval_batches: 8,
            dynamics_every: 250,
            dynamics_batch: 16,
            checkpoint_every: 500,
            spike_factor: 1.5,
            diverge_factor: 3.0,
            init_from: None,
            checkpointing: Checkpointing::None,
            trainable: Trainable::default(),
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    /// Learning rate at `step` (0-based): linear warmup, then cosine to `min_lr_ratio · lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps - self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }

    /// Checks the fields; errors name them.
    pub fn validate(&self) -> Result<(), RunDirError> {
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("eval_every", self.eval_every),
            ("eval_batches", self.eval_batches),
            ("dynamics_batch", self.dynamics_batch),
        ];
        if let Some((f, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(RunDirError::invalid(format!("train.{f}"), "must be at least 1"));
        }
        if let Trainable::Patterns(p) = &self.trainable
            && (p.is_empty() || p.iter().any(|p| p.is_empty()))
        {
            return Err(RunDirError::invalid(
                "train.trainable",
                "an empty list or pattern trains nothing: give \"all\", \"gate\", \"gate+norms\" or parameter paths",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(RunDirError::invalid("train.lr", "must be a positive number"));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(RunDirError::invalid("train.min_lr_ratio", "must be in [0, 1]"));
        }
        if self.warmup_steps >= self.steps {
            return Err(RunDirError::invalid(
                "train.warmup_steps",
                format!("{} leaves no step of {} after warmup", self.warmup_steps, self.steps),
            ));
        }
        Ok(())
    }
}
