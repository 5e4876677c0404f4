//! Throughput: training steps, forward-only passes and the analysis (probed forward + statistics),
//! in tokens/s, with the process's peak memory, for a preset and the variants of a grid on each
//! backend — and the same model in PyTorch (`bench/peer.py`), measured in the same run so the
//! report is a ratio, not two numbers from two noisy afternoons.
//!
//! Each measurement runs in its own process (`gatelab bench --one`), so its peak resident memory
//! is its own and no backend's thread pool or allocator warms another's; cases are interleaved
//! over rounds and each reports its best round (the least disturbed by the machine's noise).
//! With `--interleave`, one process per implementation trains every variant, step by step in
//! turn, so each gate step is timed right beside a baseline step ([`measure`]).
//! A training step is the harness's step: forward, masked cross-entropy, backward, global
//! gradient clipping, AdamW, and the loss read back to the host; under `train.precision=bf16`
//! the forward and backward pass run on the bf16 copy of the weights, and under
//! `train.checkpointing=blocks` each block is recomputed in the backward pass, as in training.

use crate::backend::{self, Backend};
use crate::config::RunConfig;
use crate::error::Result;
use crate::train::{adamw, clip_global};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use gatelab_analysis::stats::{Accumulator, StatsConfig};
use gatelab_model::{Transformer, masked_cross_entropy};
use gatelab_rundir::config::{Checkpointing, Precision};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One measurement.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Measurement {
    /// `gatelab-flex`, `gatelab-tch`, `pytorch-eager`, …
    pub implementation: String,
    /// The grid variant.
    pub variant: String,
    /// Training tokens per second.
    pub train_tokens_per_s: f64,
    /// Forward-only tokens per second.
    pub forward_tokens_per_s: f64,
    /// Analysis (probed forward + statistics) tokens per second (gatelab only).
    pub analysis_tokens_per_s: Option<f64>,
    /// Peak resident memory of the process, MiB (Linux; gatelab only).
    pub peak_rss_mib: Option<f64>,
    /// Peak GPU memory, MiB, where the implementation can tell (PyTorch on CUDA: its allocator's
    /// `max_memory_allocated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_device_mib: Option<f64>,
    /// Timed steps.
    pub steps: usize,
    /// Each timed training step's wall time, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_seconds: Vec<f64>,
}

fn random_batch(
    vocab: usize,
    batch: usize,
    seq: usize,
    salt: u64,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>) {
    let mut z = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    let ids: Vec<i32> = (0..batch * (seq + 1))
        .map(|_| {
            z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((z >> 33) % vocab as u64) as i32
        })
        .collect();
    let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq + 1]), device);
    (all.clone().slice([0..batch, 0..seq]), all.slice([0..batch, 1..seq + 1]), Tensor::ones([batch, seq], device))
}

/// Peak resident set of this process in MiB (`VmHWM`), where the OS says.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Training FLOPs per token, as PaLM's appendix B and nanoGPT's `estimate_mfu` count them:
/// `6N` for the matmuls of every parameter (forward and backward; the tied embedding counts once,
/// as the LM head) plus `12·L·(h·hd)·T` for attention's two `T`-long products, the causal half
/// not discounted. Against a GPU's dense bf16 peak this gives the model FLOPs utilisation (MFU).
/// For a dense model; a mixture of experts would count its active parameters.
pub fn flops_per_token(config: &RunConfig) -> f64 {
    let m = &config.model;
    let attention = 12 * m.n_layers * m.n_heads * m.head_dim * config.data.seq_len;
    6.0 * m.param_count().total as f64 + attention as f64
}

/// The dtype a training step computes in under `precision`.
fn compute_dtype(precision: Precision) -> DType {
    match precision {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    }
}

/// A measurement's implementation name: `gatelab-<backend>`, `-bf16` appended in mixed precision
/// and `-blocks` with each block recomputed in the backward pass.
pub fn implementation(backend: Backend, train: &gatelab_rundir::TrainConfig) -> String {
    let mut name = format!("gatelab-{}", backend.name());
    if train.precision != Precision::F32 {
        name = format!("{name}-{}", train.precision.name());
    }
    if train.checkpointing == Checkpointing::Blocks {
        name.push_str("-blocks");
    }
    name
}

/// The CPU this runs on, as `/proc/cpuinfo` names it, and which of the instruction sets that
/// decide CPU throughput it has (AVX2, AVX-512, its bf16 dot products, AMX tiles): a ratio
/// measured on one CPU holds for that CPU.
pub fn cpu_info() -> serde_json::Value {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let have: Vec<&str> = ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    serde_json::json!({ "model": field("model name"), "flags": have })
}

/// The most GPU memory this process held while `f` ran, MiB, as `nvidia-smi` reports it per
/// process (sampled every 200 ms; the CUDA context and the caching allocator's reserve count, so
/// it reads higher than PyTorch's `max_memory_allocated`). `None` without `nvidia-smi`.
fn with_device_peak<T>(f: impl FnOnce() -> T) -> (T, Option<f64>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let pid = std::process::id().to_string();
    let sample = move || -> Option<f64> {
        let out = std::process::Command::new("nvidia-smi")
            .args(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (p, mib) = l.split_once(',')?;
            (p.trim() == pid).then(|| mib.trim().parse().ok()).flatten()
        })
    };
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let poller = std::thread::spawn(move || {
        let mut peak: Option<f64> = None;
        while !flag.load(Ordering::Relaxed) {
            if let Some(m) = sample() {
                peak = Some(peak.map_or(m, |p: f64| p.max(m)));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        peak
    });
    let out = f();
    done.store(true, Ordering::Relaxed);
    (out, poller.join().ok().flatten())
}

/// One variant's model in training, stepped by the bench.
struct Trainee {
    model: Option<Transformer>,
    /// The dtype of its forward and backward passes (`train.precision`).
    dtype: DType,
    optim: ModuleOptimizer,
    batches: Vec<(Tensor<2, Int>, Tensor<2, Int>, Tensor<2>)>,
    lr: f64,
    grad_clip: f64,
    /// `train.checkpointing = blocks`: each block recomputed in the backward pass.
    by_blocks: bool,
}

impl Trainee {
    fn new(config: &RunConfig, ad: &Device) -> Result<Self> {
        let (m, t) = (&config.model, &config.train);
        ad.seed(0);
        let model = m.init(ad)?;
        let batches = (0..4).map(|i| random_batch(m.vocab_size, t.batch_size, config.data.seq_len, i, ad)).collect();
        let dtype = compute_dtype(t.precision);
        let by_blocks = t.checkpointing == Checkpointing::Blocks;
        Ok(Self { model: Some(model), dtype, optim: adamw(t), batches, lr: t.lr, grad_clip: t.grad_clip, by_blocks })
    }

    /// One training step on batch `i` (mod 4); its wall time in seconds.
    fn step(&mut self, i: usize) -> f64 {
        let (x, y, mask) = self.batches[i % self.batches.len()].clone();
        let model = self.model.take().expect("a trainee holds its model between steps");
        let started = Instant::now();
        let (loss, grads) = if self.by_blocks {
            model.backward_by_blocks(x, self.dtype, 1.0, |logits| masked_cross_entropy(logits, y, mask))
        } else {
            let loss = masked_cross_entropy(model.cast_parameters(self.dtype).forward(x), y, mask);
            (loss.clone(), GradientsParams::from_grads(loss.backward(), &model))
        };
        let (_, grads) = clip_global(&model, grads, self.grad_clip);
        self.model = Some(self.optim.step(self.lr, model, grads));
        let _ = loss.into_scalar::<f32>();
        started.elapsed().as_secs_f64()
    }
}

/// Measures each of `cases` (variant name, resolved config) on `backend` in this process:
/// `warmup` untimed training steps, then `steps` timed ones, then `passes` timed forward and
/// analysis passes.
///
/// With several cases the training steps are interleaved: step `i` of every case runs before
/// step `i + 1` of any, in an order rotated by one each step (A B, B A, A B, …), so each case's
/// step `i` is timed within seconds of the others' and the machine's drift cancels out of their
/// ratio ([`Measurement::step_seconds`]). Peak memory is then the process's, shared by all cases,
/// and is not reported; on tch-cuda the process's peak GPU memory is ([`Measurement::peak_device_mib`],
/// shared by the interleaved cases).
pub fn measure(
    cases: &[(String, RunConfig)],
    backend: Backend,
    steps: usize,
    warmup: usize,
    passes: usize,
) -> Result<Vec<Measurement>> {
    if backend == Backend::TchCuda {
        let (measured, peak) = with_device_peak(|| measure_on(cases, backend, steps, warmup, passes));
        return measured.map(|ms| ms.into_iter().map(|m| Measurement { peak_device_mib: peak, ..m }).collect());
    }
    measure_on(cases, backend, steps, warmup, passes)
}

fn measure_on(
    cases: &[(String, RunConfig)],
    backend: Backend,
    steps: usize,
    warmup: usize,
    passes: usize,
) -> Result<Vec<Measurement>> {
    let device = backend::open(backend, 0)?;
    let ad = device.clone().autodiff();
    let mut trainees = cases.iter().map(|(_, c)| Trainee::new(c, &ad)).collect::<Result<Vec<_>>>()?;
    let n = trainees.len();
    let mut step_seconds = vec![Vec::with_capacity(steps); n];
    for i in 0..warmup + steps {
        for j in (0..n).map(|j| (j + i) % n) {
            let s = trainees[j].step(i);
            if i >= warmup {
                step_seconds[j].push(s);
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    for ((variant, config), (trainee, step_seconds)) in cases.iter().zip(trainees.into_iter().zip(step_seconds)) {
        let (m, t) = (&config.model, &config.train);
        let seq = config.data.seq_len;
        let model = trainee.model.expect("held").valid().cast_parameters(trainee.dtype);
        let inputs: Vec<Tensor<2, Int>> =
            (0..4).map(|i| random_batch(m.vocab_size, t.batch_size, seq, i, &device).0).collect();
        let timed = |f: &dyn Fn(Tensor<2, Int>)| {
            f(inputs[0].clone());
            let started = Instant::now();
            for i in 0..passes {
                f(inputs[i % inputs.len()].clone());
            }
            started.elapsed().as_secs_f64()
        };
        let forward_s = timed(&|x| {
            let _ = model.forward(x).sum().into_scalar::<f32>();
        });
        let analysis_s = timed(&|x| {
            let mut acc = Accumulator::new(StatsConfig::default());
            let logits = acc.observe(&model, x);
            let _ = logits.sum().into_scalar::<f32>();
        });
        let tokens = (t.batch_size * seq) as f64;
        out.push(Measurement {
            implementation: implementation(backend, t),
            variant: variant.clone(),
            train_tokens_per_s: tokens * steps as f64 / step_seconds.iter().sum::<f64>(),
            forward_tokens_per_s: tokens * passes as f64 / forward_s,
            analysis_tokens_per_s: Some(tokens * passes as f64 / analysis_s),
            peak_rss_mib: if n == 1 { peak_rss_mib() } else { None },
            peak_device_mib: None,
            steps,
            step_seconds,
        });
    }
    Ok(out)
}
