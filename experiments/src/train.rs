//! One training run: AdamW with linear warmup and cosine decay, global gradient-norm clipping,
//! validation loss and perplexity, loss-spike counting, divergence detection, periodic sink
//! dynamics, and checkpoints from which it resumes exactly.
//!
//! Determinism: the batch of step `s` is a pure function of `(seed, s)` (examples drawn with
//! replacement by a hash), so a run resumed from a checkpoint sees the batches it would have
//! seen, and its optimiser state is restored with it.

use crate::collective::{Collective, Engine};
use crate::error::{ExperimentError, Result};
use crate::optim::FusedAdamW;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{DType, Device, Int, Tensor};
use gatelab_analysis::dynamics::snapshot;
use gatelab_data::{LmBatch, LmBatcher, LmData, LmDataset};
use gatelab_model::recompute::add_grads;
use gatelab_model::{ModelConfig, Transformer, masked_cross_entropy};
use gatelab_rundir::config::{Checkpointing, Precision};
use gatelab_rundir::{Checkpoint, DynamicsRecord, EvalRecord, RunDir, Status, StepRecord, TrainConfig};
use std::time::Instant;

/// AdamW with `cfg`'s β, ε and decoupled weight decay, fused where the backend has it ([`crate::optim`]).
pub fn adamw(cfg: &TrainConfig) -> ModuleOptimizer {
    FusedAdamW::new(cfg.beta1, cfg.beta2, cfg.epsilon, cfg.weight_decay).init()
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
    let mut z =
        seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % len as u64) as usize
}

fn batch_of(
    ds: &LmDataset,
    indices: impl Iterator<Item = usize>,
    batcher: &LmBatcher,
    device: &Device,
) -> Result<LmBatch> {
    let items = indices
        .map(|i| ds.get(i).map_err(|e| gatelab_data::DataError::new(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(batcher.batch(items, device))
}

/// One step's forward passes: the whole batch on one device, or, data parallel, one shard per
/// device on a fork of the model.
///
/// The gradients are summed by Burn's `all_reduce` where it has a transport (CUDA) and by this
/// loop elsewhere ([`crate::collective`], with the measured reasons). Each shard's mean loss is
/// weighted by its share of the batch's real (non-PAD) targets, so the weighted sum is the batch's
/// mean loss and the summed gradients are its gradient. A mixture-of-experts model's auxiliary
/// loss (load balance, z-loss) joins the objective that is differentiated; the loss reported is
/// the cross-entropy alone.
///
/// With `train.checkpointing = blocks` each shard's gradients are computed in its forward pass,
/// block by block (`gatelab_model::recompute`), and no graph is kept between the two calls.
pub struct Shards {
    /// Per device: the replica and what its backward pass starts from.
    parts: Vec<(Transformer, Pending)>,
    /// The batch's mean loss.
    pub loss: f64,
}

/// A shard's objective still to differentiate, or its gradients already computed.
enum Pending {
    Objective(Box<Tensor<1>>),
    Grads(GradientsParams),
}

impl Shards {
    /// Splits `indices` into contiguous shards, one per device, and runs their forward passes, on
    /// the parameters cast to `dtype` (bf16: mixed precision, `gatelab_model::precision`; the
    /// gradients are the f32 masters'), recomputing each block in the backward pass if `by_blocks`.
    pub fn forward(
        model: &Transformer,
        ds: &LmDataset,
        indices: &[usize],
        batcher: &LmBatcher,
        devices: &[Device],
        dtype: DType,
        by_blocks: bool,
    ) -> Result<Self> {
        let per = indices.len().div_ceil(devices.len());
        let mut batches = Vec::with_capacity(devices.len());
        for (chunk, device) in indices.chunks(per).zip(devices) {
            batches.push(batch_of(ds, chunk.iter().copied(), batcher, device)?);
        }
        // Each shard's weight: its share of the batch's counted targets (1 on one device).
        let weights: Vec<f64> = if batches.len() == 1 {
            vec![1.0]
        } else {
            let counts: Vec<f64> = batches.iter().map(|b| b.mask.clone().sum().into_scalar::<f32>() as f64).collect();
            let total = counts.iter().sum::<f64>().max(1.0);
            counts.iter().map(|c| c / total).collect()
        };
        let mut parts = Vec::with_capacity(batches.len());
        let mut value = 0.0;
        for (k, ((batch, device), weight)) in batches.into_iter().zip(devices).zip(weights).enumerate() {
            // The first shard runs on the model itself, before any fork: parameters initialise
            // lazily, on first use, so this keeps their random draws in the order of the forward
            // pass, as on one device; the forks then copy initialised values.
            let replica = if k == 0 { model.clone() } else { model.clone().fork(device) };
            let weigh = |loss: Tensor<1>| if weight == 1.0 { loss } else { loss.mul_scalar(weight) };
            let LmBatch { inputs, targets, mask } = batch;
            let (loss, pending) = if by_blocks {
                let (loss, grads) = replica.backward_by_blocks(inputs, dtype, weight, |logits| {
                    weigh(masked_cross_entropy(logits, targets, mask))
                });
                (loss, Pending::Grads(grads))
            } else {
                let (logits, aux) = replica.cast_parameters(dtype).forward_with_aux(inputs);
                let loss = weigh(masked_cross_entropy(logits, targets, mask));
                let objective = aux.map_or(loss.clone(), |a| loss.clone() + weigh(a));
                (loss, Pending::Objective(Box::new(objective)))
            };
            value += loss.into_scalar::<f32>() as f64;
            parts.push((replica, pending));
        }
        Ok(Self { parts, loss: value })
    }

    /// The batch's gradients on `main`: each replica's summed by `collective` (Burn's
    /// `all_reduce`) where there is one, else moved to `main` and added.
    pub fn backward(self, main: &Device, collective: Option<&Collective>) -> GradientsParams {
        let parts: Vec<(Transformer, GradientsParams)> = self
            .parts
            .into_iter()
            .map(|(replica, pending)| {
                let grads = match pending {
                    Pending::Objective(objective) => GradientsParams::from_grads(objective.backward(), &replica),
                    Pending::Grads(grads) => grads,
                };
                (replica, grads)
            })
            .collect();
        if let Some(collective) = collective.filter(|_| parts.len() > 1) {
            return collective.sum(parts);
        }
        let mut total = GradientsParams::new();
        for (k, (replica, mut grads)) in parts.into_iter().enumerate() {
            if k == 0 {
                total = grads;
            } else {
                grads = grads.to_device(main, &replica);
                add_grads(&mut total, &mut grads, &replica);
            }
        }
        total
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
fn evaluate(
    model: &Transformer,
    ds: &LmDataset,
    batches: usize,
    batch_size: usize,
    batcher: &LmBatcher,
    device: &Device,
) -> Result<(f64, usize)> {
    let n = batches.min(ds.len().div_ceil(batch_size));
    let (mut total, mut tokens) = (0.0, 0.0);
    for b in 0..n {
        let range = b * batch_size..((b + 1) * batch_size).min(ds.len());
        let batch = batch_of(ds, range, batcher, device)?;
        let count = batch.mask.clone().sum().into_scalar::<f32>() as f64;
        let loss =
            masked_cross_entropy(model.forward(batch.inputs), batch.targets, batch.mask).into_scalar::<f32>() as f64;
        total += loss * count;
        tokens += count;
    }
    Ok((total / tokens.max(1.0), tokens as usize))
}

/// Trains `model` on `data` in `dir`, from `resume` (a checkpoint of `dir`, checked by
/// [`RunDir::resume_point`]) or from step 0.
///
/// With several `devices`, training is data parallel: each step's batch is split over them (see
/// [`Shards`]); the model and optimiser live on the first, and the numbers are those of one device
/// up to floating-point summation order. Checkpoints do not depend on the device count.
pub fn run(
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    data: &LmData,
    devices: &[Device],
    dir: &RunDir,
    resume: Option<&Checkpoint>,
    mut progress: impl FnMut(&Progress),
) -> Result<Status> {
    let device = devices.first().ok_or_else(|| ExperimentError::Training("train: no device".into()))?;
    let autodiff = |d: &Device| match cfg.checkpointing {
        Checkpointing::None | Checkpointing::Blocks => d.clone().autodiff(),
        Checkpointing::Balanced => d.clone().autodiff().gradient_checkpointing(),
    };
    let by_blocks = cfg.checkpointing == Checkpointing::Blocks;
    let replicas: Vec<Device> = devices.iter().map(autodiff).collect();
    let collective = (Engine::for_devices(devices) == Engine::Burn).then(|| Collective::start(devices));
    let ad = replicas[0].clone();
    ad.seed(cfg.seed);
    let mut model = model_cfg.init(&ad)?;
    let mut optim = adamw(cfg);
    let mut spikes = 0;
    let mut start = 0;
    let mut mean_loss: Option<f64> = None;
    if let (None, Some(parent)) = (resume, &cfg.init_from) {
        let parent_dir = RunDir::new(parent);
        if let Some(problem) = parent_dir.weights().problem() {
            return Err(ExperimentError::option("train.init_from", format!("{}: {problem}", parent.display())));
        }
        // A gate the parent was trained without (`gatelab retrofit`) keeps its new initialisation.
        let parent_gated = parent_dir.read_file().map(|f| f.config.model.gate.is_gated()).unwrap_or(true);
        let added = |name: &str| {
            !parent_gated
                && model_cfg.gate.is_gated()
                && (name.contains(".attn.gate.") || name.contains(".attn.extra_gates."))
        };
        model = gatelab_model::weights::load_safetensors_adding(
            model,
            &parent.join(gatelab_rundir::folder::WEIGHTS),
            added,
        )
        .map_err(|e| ExperimentError::option("train.init_from", e.to_string()))?;
    }
    if let Some(ckpt) = resume {
        let bad = |path: std::path::PathBuf, e: &dyn std::fmt::Display| {
            ExperimentError::file(
                path,
                format!(
                    "checkpoint: {e} (delete this checkpoint folder to resume from the one before, or from step 0)"
                ),
            )
        };
        let record = ModuleRecord::load(dir.checkpoint_model(ckpt)).map_err(|e| bad(dir.checkpoint_model(ckpt), &e))?;
        model = model.try_load_record(record).map_err(|e| bad(dir.checkpoint_model(ckpt), &e))?;
        optim = optim.load(dir.checkpoint_optim(ckpt)).map_err(|e| bad(dir.checkpoint_optim(ckpt), &e))?;
        (start, spikes, mean_loss) = (ckpt.step, ckpt.spikes, ckpt.mean_loss);
    }
    // Frozen parameters (`train.trainable`) require no gradient from here on.
    if !cfg.trainable.is_all() {
        let selection = crate::trainable::select(&model, &cfg.trainable)?;
        model = crate::trainable::freeze(model, &selection);
    }
    let dtype = match cfg.precision {
        Precision::F32 => DType::F32,
        Precision::Bf16 => {
            gatelab_model::precision::bf16_support(device)
                .map_err(|e| ExperimentError::option("train.precision", format!("bf16: {e}")))?;
            DType::BF16
        }
    };
    // Parameters initialise lazily, on first use: one f32 forward pass initialises them in the
    // order a plain f32 run does (a bf16 cast, or the recomputing pass's move off the graph, would
    // take them in module order), so every precision and checkpointing starts from the same weights.
    if (dtype != DType::F32 || by_blocks) && resume.is_none() && cfg.init_from.is_none() {
        let _ = model.forward(Tensor::<2, Int>::zeros([1, 1], &ad));
    }
    // Lines logged after the checkpoint (or by an attempt without one) are redone.
    dir.truncate_logs(start)?;
    let batcher = LmBatcher { pad: data.vocab.pad };
    let diverge_above = cfg.diverge_factor * (model_cfg.vocab_size as f64).ln();
    let dynamics_batch = batch_of(&data.analysis, 0..cfg.dynamics_batch.min(data.analysis.len()), &batcher, device)?;
    let record_dynamics = |model: &Transformer, step: usize| -> Result<()> {
        let (_, probes) = model.valid().forward_probed(dynamics_batch.inputs.clone());
        Ok(dir.log_dynamics(&DynamicsRecord { step, layers: snapshot(&probes) })?)
    };
    let first = data.train.get(0).map_err(|e| gatelab_data::DataError::new(e.to_string()))?;
    let tokens_per_step = (cfg.batch_size * first.tokens.len().saturating_sub(1)) as f64;
    let mut since = Instant::now();
    let mut since_step = start;
    for step in start..cfg.steps {
        let indices: Vec<usize> =
            (0..cfg.batch_size).map(|i| example_index(cfg.seed, step, i, data.train.len())).collect();
        let shards = Shards::forward(&model, &data.train, &indices, &batcher, &replicas, dtype, by_blocks)?;
        let loss_value = shards.loss;
        if !loss_value.is_finite() || loss_value > diverge_above {
            dir.log_step(&StepRecord {
                step: step + 1,
                loss: loss_value,
                lr: cfg.lr_at(step),
                grad_norm: f64::NAN,
                tokens_per_s: 0.0,
                spikes,
            })?;
            return Ok(Status::Diverged { step: step + 1, loss: loss_value });
        }
        if let Some(mean) = mean_loss
            && step >= cfg.warmup_steps
            && loss_value > cfg.spike_factor * mean
        {
            spikes += 1;
        }
        mean_loss = Some(mean_loss.map_or(loss_value, |m| 0.98 * m + 0.02 * loss_value));
        let lr = cfg.lr_at(step);
        let (grad_norm, grads) = clip_global(&model, shards.backward(&ad, collective.as_ref()), cfg.grad_clip);
        model = optim.step(lr, model, grads);
        let done = step + 1;
        if done % cfg.log_every == 0 || done == cfg.steps {
            let tokens_per_s = tokens_per_step * (done - since_step) as f64 / since.elapsed().as_secs_f64();
            (since, since_step) = (Instant::now(), done);
            dir.log_step(&StepRecord { step: done, loss: loss_value, lr, grad_norm, tokens_per_s, spikes })?;
            progress(&Progress { step: done, steps: cfg.steps, loss: loss_value, tokens_per_s });
        }
        if done % cfg.eval_every == 0 && done != cfg.steps {
            let (loss, tokens) =
                evaluate(&model.valid(), &data.valid, cfg.eval_batches, cfg.batch_size, &batcher, device)?;
            dir.log_eval(&EvalRecord { step: done, loss, perplexity: loss.exp(), tokens })?;
        }
        if cfg.dynamics_every > 0 && done % cfg.dynamics_every == 0 && done != cfg.steps {
            record_dynamics(&model, done)?;
        }
        let stop = crate::interrupt::requested() && done != cfg.steps;
        if stop || (cfg.checkpoint_every > 0 && done.is_multiple_of(cfg.checkpoint_every) && done != cfg.steps) {
            let ckpt = Checkpoint { step: done, spikes, mean_loss, files: Default::default() };
            dir.save_checkpoint(&ckpt, |model_path, optim_path| -> Result<()> {
                model.clone().save_file(model_path).map_err(|e| ExperimentError::file(model_path, e))?;
                optim.save(optim_path).map_err(|e| ExperimentError::file(optim_path, e))
            })?;
        }
        if stop {
            return Ok(Status::Interrupted { step: done });
        }
    }
    let final_model = model.valid();
    let (loss, tokens) = evaluate(&final_model, &data.valid, cfg.eval_batches, cfg.batch_size, &batcher, device)?;
    dir.log_eval(&EvalRecord { step: cfg.steps, loss, perplexity: loss.exp(), tokens })?;
    record_dynamics(&final_model, cfg.steps)?;
    dir.save_weights(&final_model)?;
    Ok(Status::Done)
}
