//! A training run: AdamW with linear warmup and cosine decay, gradient clipping, a fixed seed,
//! divergence detection. The sweep harness (grids, resume, run folders) builds on this.

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_data::synthetic::BigramBackcopyCorpus;
use gatelab_model::{ModelConfig, Transformer, cross_entropy};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Optimisation settings of one run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Tokens per sequence (BOS included).
    pub seq_len: usize,
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
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f64,
    /// Seed of the initialisation and of the data order.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 4000,
            batch_size: 32,
            seq_len: 128,
            lr: 3e-3,
            warmup_steps: 100,
            min_lr_ratio: 0.1,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            seed: 0,
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
}

/// One logged step.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct StepRecord {
    /// 1-based step.
    pub step: usize,
    /// Training loss of the step's batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Tokens per second since the previous record.
    pub tokens_per_s: f64,
}

/// How a run ended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Trained every step.
    Done,
    /// The loss became NaN/inf at `step`.
    Diverged { step: usize },
}

/// A batch of `batch` sequences starting at sequence `first` of `corpus`: inputs and next-token
/// targets, each `[batch, seq_len]`.
pub fn lm_batch(corpus: &BigramBackcopyCorpus, first: u64, batch: usize, seq_len: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let mut inputs = Vec::with_capacity(batch * seq_len);
    let mut targets = Vec::with_capacity(batch * seq_len);
    for i in 0..batch as u64 {
        let seq = corpus.sequence(first + i, seq_len + 1);
        inputs.extend(seq[..seq_len].iter().map(|&t| t as i64));
        targets.extend(seq[1..].iter().map(|&t| t as i64));
    }
    (
        Tensor::from_data(TensorData::new(inputs, [batch, seq_len]), device),
        Tensor::from_data(TensorData::new(targets, [batch, seq_len]), device),
    )
}

/// Trains a fresh model of `model` on `corpus`, calling `log` every `log_every` steps. Returns the
/// model (on the plain device, for evaluation) and how the run ended.
pub fn train(
    model: &ModelConfig,
    cfg: &TrainConfig,
    corpus: &BigramBackcopyCorpus,
    device: &Device,
    log_every: usize,
    mut log: impl FnMut(&StepRecord),
) -> Result<(Transformer, Outcome), String> {
    let train_device = device.clone().autodiff();
    train_device.seed(cfg.seed);
    let mut net = model.init(&train_device).map_err(|e| format!("model.{e}"))?;
    let mut optim = AdamWConfig::new()
        .with_beta_1(cfg.beta1 as f32)
        .with_beta_2(cfg.beta2 as f32)
        .with_epsilon(1e-8)
        .with_weight_decay(cfg.weight_decay as f32)
        .with_grad_clipping((cfg.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(cfg.grad_clip as f32)))
        .init();
    // Training sequences come after a reserved block used for evaluation.
    let data_offset = 1_000_000 + cfg.seed * 100_000_000;
    let mut since = Instant::now();
    let mut outcome = Outcome::Done;
    for step in 0..cfg.steps {
        let first = data_offset + (step * cfg.batch_size) as u64;
        let (inputs, targets) = lm_batch(corpus, first, cfg.batch_size, cfg.seq_len, &train_device);
        let loss = cross_entropy(net.forward(inputs), targets);
        let lr = cfg.lr_at(step);
        let logged = (step + 1) % log_every == 0 || step + 1 == cfg.steps;
        let loss_value = if logged || step < 3 { Some(loss.clone().into_scalar::<f32>() as f64) } else { None };
        if let Some(value) = loss_value {
            if !value.is_finite() {
                outcome = Outcome::Diverged { step: step + 1 };
                break;
            }
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
        if let (true, Some(loss)) = (logged, loss_value) {
            let tokens = (cfg.batch_size * cfg.seq_len * log_every.min(step + 1)) as f64;
            let record = StepRecord { step: step + 1, loss, lr, tokens_per_s: tokens / since.elapsed().as_secs_f64() };
            log(&record);
            since = Instant::now();
        }
    }
    Ok((net.valid(), outcome))
}
