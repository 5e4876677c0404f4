//! One training run: AdamW with linear warmup and cosine decay, global gradient-norm clipping,
//! validation loss and perplexity, loss-spike counting, divergence detection, periodic sink
//! dynamics, and checkpoints from which it resumes exactly.
//!
//! Determinism: the batch of step `s` is a pure function of `(seed, s)` (examples drawn with
//! replacement by a hash), so a run resumed from a checkpoint sees the batches it would have
//! seen, and its optimiser state is restored with it.

use crate::rundir::{Checkpoint, RunDir};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor};
use gatelab_analysis::layer::{LayerSnapshot, snapshot};
use gatelab_data::{LmBatch, LmBatcher, LmData, LmDataset};
use gatelab_model::{ModelConfig, Transformer, masked_cross_entropy};
use serde::{Deserialize, Serialize};
use std::time::Instant;

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
    pub init_from: Option<std::path::PathBuf>,
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

    /// AdamW with this config's β, ε and decoupled weight decay.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig::new().with_beta_1(self.beta1 as f32).with_beta_2(self.beta2 as f32).with_epsilon(self.epsilon as f32).with_weight_decay(self.weight_decay as f32)
    }

    /// Checks the fields; errors name them.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [("steps", self.steps), ("batch_size", self.batch_size), ("log_every", self.log_every), ("eval_every", self.eval_every), ("eval_batches", self.eval_batches), ("dynamics_batch", self.dynamics_batch)];
        if let Some((f, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("train.{f}: must be at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err("train.lr: must be a positive number".into());
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err("train.min_lr_ratio: must be in [0, 1]".into());
        }
        if self.warmup_steps >= self.steps {
            return Err(format!("train.warmup_steps: {} leaves no step of {} after warmup", self.warmup_steps, self.steps));
        }
        Ok(())
    }
}

/// One training-metric record (a line of `metrics.jsonl`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct StepRecord {
    /// Steps done.
    pub step: usize,
    /// Training loss of this step's batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens per second since the previous record.
    pub tokens_per_s: f64,
    /// Loss spikes so far.
    pub spikes: usize,
}

/// One validation record (a line of `eval.jsonl`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EvalRecord {
    /// Steps done.
    pub step: usize,
    /// Mean validation loss over real (non-PAD) targets.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Tokens it rests on.
    pub tokens: usize,
}

/// One sink-dynamics record (a line of `dynamics.jsonl`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct DynamicsRecord {
    /// Steps done.
    pub step: usize,
    /// Per layer.
    pub layers: Vec<LayerSnapshot>,
}

/// How a run ended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Outcome {
    /// Trained every step.
    Done,
    /// The loss became non-finite or blew up at `step`.
    Diverged {
        /// The step at which it was detected.
        step: usize,
        /// The loss seen.
        loss: f64,
    },
}

/// What a run hands its progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// Last logged loss.
    pub loss: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
}

/// Deterministic example index `i` of step `step`, uniform over `len`.
fn example_index(seed: u64, step: usize, i: usize, len: usize) -> usize {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % len as u64) as usize
}

fn batch_of(ds: &LmDataset, indices: impl Iterator<Item = usize>, batcher: &LmBatcher, device: &Device) -> Result<LmBatch, String> {
    let items = indices.map(|i| ds.get(i).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
    Ok(batcher.batch(items, device))
}

/// One step's forward passes: the whole batch on one device, or, data parallel, one shard per
/// device on a fork of the model. Each shard's mean loss is weighted by its share of the batch's
/// real (non-PAD) targets, so the weighted sum is the batch's mean loss and the summed gradients
/// are its gradient.
pub struct Shards {
    /// `(the replica, its weighted loss)` per device.
    parts: Vec<(Transformer, Tensor<1>)>,
    /// The batch's mean loss.
    pub loss: f64,
}

impl Shards {
    /// Splits `indices` into contiguous shards, one per device, and runs their forward passes.
    pub fn forward(model: &Transformer, ds: &LmDataset, indices: &[usize], batcher: &LmBatcher, devices: &[Device]) -> Result<Self, String> {
        if devices.len() == 1 {
            let batch = batch_of(ds, indices.iter().copied(), batcher, &devices[0])?;
            let loss = masked_cross_entropy(model.forward(batch.inputs), batch.targets, batch.mask);
            let value = loss.clone().into_scalar::<f32>() as f64;
            return Ok(Self { parts: vec![(model.clone(), loss)], loss: value });
        }
        let per = indices.len().div_ceil(devices.len());
        let mut parts = Vec::new();
        let mut counted = Vec::new();
        for (k, (chunk, device)) in indices.chunks(per).zip(devices).enumerate() {
            // The first shard runs on the model itself, before any fork: parameters initialise
            // lazily, on first use, so this keeps their random draws in the order of the forward
            // pass, as on one device; the forks then copy initialised values.
            let replica = if k == 0 { model.clone() } else { model.clone().fork(device) };
            let batch = batch_of(ds, chunk.iter().copied(), batcher, device)?;
            let count = batch.mask.clone().sum().into_scalar::<f32>() as f64;
            let loss = masked_cross_entropy(replica.forward(batch.inputs), batch.targets, batch.mask);
            counted.push(count);
            parts.push((replica, loss));
        }
        let total: f64 = counted.iter().sum::<f64>().max(1.0);
        let mut value = 0.0;
        let parts = parts
            .into_iter()
            .zip(counted)
            .map(|((replica, loss), count)| {
                let weighted = loss.mul_scalar(count / total);
                value += weighted.clone().into_scalar::<f32>() as f64;
                (replica, weighted)
            })
            .collect();
        Ok(Self { parts, loss: value })
    }

    /// The batch's gradients on `main` (each replica's moved there and summed).
    pub fn backward(self, main: &Device) -> GradientsParams {
        let mut parts = self.parts.into_iter();
        let (first, loss) = parts.next().expect("at least one shard");
        let mut total = GradientsParams::from_grads(loss.backward(), &first);
        for (replica, loss) in parts {
            let mut grads = GradientsParams::from_grads(loss.backward(), &replica).to_device(main, &replica);
            replica.visit(&mut AddGrads { into: &mut total, from: &mut grads });
        }
        total
    }
}

/// Adds `from`'s gradients into `into`, parameter by parameter.
struct AddGrads<'a> {
    into: &'a mut GradientsParams,
    from: &'a mut GradientsParams,
}

impl ModuleVisitor for AddGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.from.remove::<D>(param.id) {
            let total = match self.into.remove::<D>(param.id) {
                Some(t) => t + g,
                None => g,
            };
            self.into.register(param.id, total);
        }
    }
}

/// Squares of every parameter's gradient, summed.
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(s) => s + sq,
                None => sq,
            });
        }
    }
}

/// Scales every gradient by `factor`.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The global gradient norm, and the gradients clipped to `clip` (PyTorch's `clip_grad_norm_`).
pub fn clip_global(model: &Transformer, mut grads: GradientsParams, clip: f64) -> (f64, GradientsParams) {
    let mut squares = GradSquares { grads: &grads, sum: None };
    model.visit(&mut squares);
    let norm = squares.sum.map(|s| s.into_scalar::<f32>() as f64).unwrap_or(0.0).sqrt();
    if clip > 0.0 && norm > clip {
        model.visit(&mut ScaleGrads { grads: &mut grads, factor: clip / (norm + 1e-6) });
    }
    (norm, grads)
}

/// Mean loss over the first `batches` batches of `ds`.
fn evaluate(model: &Transformer, ds: &LmDataset, batches: usize, batch_size: usize, batcher: &LmBatcher, device: &Device) -> Result<(f64, usize), String> {
    let n = batches.min(ds.len().div_ceil(batch_size));
    let (mut total, mut tokens) = (0.0, 0.0);
    for b in 0..n {
        let range = b * batch_size..((b + 1) * batch_size).min(ds.len());
        let batch = batch_of(ds, range, batcher, device)?;
        let count = batch.mask.clone().sum().into_scalar::<f32>() as f64;
        let loss = masked_cross_entropy(model.forward(batch.inputs), batch.targets, batch.mask).into_scalar::<f32>() as f64;
        total += loss * count;
        tokens += count;
    }
    Ok((total / tokens.max(1.0), tokens as usize))
}

/// Trains `model` on `data` in `dir`, resuming from its checkpoint if it has one.
///
/// With several `devices`, training is data parallel: each step's batch is split over them (see
/// [`Shards`]); the model and optimiser live on the first, and the numbers are those of one device
/// up to floating-point summation order. Checkpoints do not depend on the device count.
pub fn run(model_cfg: &ModelConfig, cfg: &TrainConfig, data: &LmData, devices: &[Device], dir: &RunDir, mut progress: impl FnMut(&Progress)) -> Result<Outcome, String> {
    let device = devices.first().ok_or("train: no device")?;
    let replicas: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let ad = replicas[0].clone();
    ad.seed(cfg.seed);
    let mut model = model_cfg.init(&ad).map_err(|e| format!("model.{e}"))?;
    let mut optim = cfg.adamw().init();
    let mut spikes = 0;
    let mut start = 0;
    let mut mean_loss: Option<f64> = None;
    let checkpoint = dir.checkpoint()?;
    if let (None, Some(parent)) = (&checkpoint, &cfg.init_from) {
        model = gatelab_model::weights::load_safetensors(model, &parent.join("model.safetensors")).map_err(|e| format!("train.init_from: {e}"))?;
    }
    if let Some(ckpt) = checkpoint {
        let record = ModuleRecord::load(ckpt.model_path(dir)).map_err(|e| format!("checkpoint: {e}"))?;
        model = model.try_load_record(record).map_err(|e| format!("checkpoint: {e}"))?;
        optim = optim.load(ckpt.optim_path(dir)).map_err(|e| format!("checkpoint: {e}"))?;
        (start, spikes, mean_loss) = (ckpt.step, ckpt.spikes, ckpt.mean_loss);
    }
    // Lines logged after the checkpoint (or by an attempt without one) are redone.
    dir.truncate_logs(start)?;
    let batcher = LmBatcher { pad: data.vocab.pad };
    let diverge_above = cfg.diverge_factor * (model_cfg.vocab_size as f64).ln();
    let dynamics_batch = batch_of(&data.analysis, 0..cfg.dynamics_batch.min(data.analysis.len()), &batcher, device)?;
    let record_dynamics = |model: &Transformer, step: usize| -> Result<(), String> {
        let (_, probes) = model.valid().forward_probed(dynamics_batch.inputs.clone());
        dir.append("dynamics.jsonl", &DynamicsRecord { step, layers: snapshot(&probes) })
    };
    let tokens_per_step = (cfg.batch_size * data.train.get(0).map_err(|e| e.to_string())?.tokens.len().saturating_sub(1)) as f64;
    let mut since = Instant::now();
    let mut since_step = start;
    for step in start..cfg.steps {
        let indices: Vec<usize> = (0..cfg.batch_size).map(|i| example_index(cfg.seed, step, i, data.train.len())).collect();
        let shards = Shards::forward(&model, &data.train, &indices, &batcher, &replicas)?;
        let loss_value = shards.loss;
        if !loss_value.is_finite() || loss_value > diverge_above {
            dir.append("metrics.jsonl", &StepRecord { step: step + 1, loss: loss_value, lr: cfg.lr_at(step), grad_norm: f64::NAN, tokens_per_s: 0.0, spikes })?;
            return Ok(Outcome::Diverged { step: step + 1, loss: loss_value });
        }
        if let Some(mean) = mean_loss {
            if step >= cfg.warmup_steps && loss_value > cfg.spike_factor * mean {
                spikes += 1;
            }
        }
        mean_loss = Some(mean_loss.map_or(loss_value, |m| 0.98 * m + 0.02 * loss_value));
        let lr = cfg.lr_at(step);
        let (grad_norm, grads) = clip_global(&model, shards.backward(&ad), cfg.grad_clip);
        model = optim.step(lr, model, grads);
        let done = step + 1;
        if done % cfg.log_every == 0 || done == cfg.steps {
            let tokens_per_s = tokens_per_step * (done - since_step) as f64 / since.elapsed().as_secs_f64();
            (since, since_step) = (Instant::now(), done);
            dir.append("metrics.jsonl", &StepRecord { step: done, loss: loss_value, lr, grad_norm, tokens_per_s, spikes })?;
            progress(&Progress { step: done, steps: cfg.steps, loss: loss_value, tokens_per_s });
        }
        if done % cfg.eval_every == 0 && done != cfg.steps {
            let (loss, tokens) = evaluate(&model.valid(), &data.valid, cfg.eval_batches, cfg.batch_size, &batcher, device)?;
            dir.append("eval.jsonl", &EvalRecord { step: done, loss, perplexity: loss.exp(), tokens })?;
        }
        if cfg.dynamics_every > 0 && done % cfg.dynamics_every == 0 && done != cfg.steps {
            record_dynamics(&model, done)?;
        }
        if cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0 && done != cfg.steps {
            let ckpt = Checkpoint { step: done, spikes, mean_loss };
            dir.save_checkpoint(&ckpt, |model_path, optim_path| {
                model.clone().save_file(model_path).map_err(|e| e.to_string())?;
                optim.save(optim_path).map_err(|e| e.to_string())
            })?;
        }
    }
    let final_model = model.valid();
    let (loss, tokens) = evaluate(&final_model, &data.valid, cfg.eval_batches, cfg.batch_size, &batcher, device)?;
    dir.append("eval.jsonl", &EvalRecord { step: cfg.steps, loss, perplexity: loss.exp(), tokens })?;
    record_dynamics(&final_model, cfg.steps)?;
    dir.save_weights(&final_model)?;
    Ok(Outcome::Done)
}
