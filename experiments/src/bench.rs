//! Throughput: training steps, forward-only passes and the analysis (probed forward + statistics),
//! in tokens/s, with the process's peak memory, for a preset and the variants of a grid on each
//! backend — and the same model in PyTorch (`bench/peer.py`), measured in the same run so the
//! report is a ratio, not two numbers from two noisy afternoons.
//!
//! Each measurement runs in its own process (`gatelab bench --one`), so its peak resident memory
//! is its own and no backend's thread pool or allocator warms another's; cases are interleaved
//! over rounds and each reports its best round (the least disturbed by the machine's noise).
//! A training step is the harness's step: forward, masked cross-entropy, backward, global
//! gradient clipping, AdamW, and the loss read back to the host.

use crate::backend::{self, Backend};
use crate::config::RunConfig;
use crate::train::clip_global;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_analysis::stats::{Accumulator, StatsConfig};
use gatelab_model::masked_cross_entropy;
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
    /// Timed steps.
    pub steps: usize,
}

fn random_batch(vocab: usize, batch: usize, seq: usize, salt: u64, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>) {
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

/// Measures `config` on `backend` in this process: `warmup` untimed steps, then `steps` timed
/// training steps, forward passes and analysis passes.
pub fn measure(config: &RunConfig, variant: &str, backend: Backend, steps: usize, warmup: usize) -> Result<Measurement, String> {
    let device = backend::open(backend, 0)?;
    let (m, t) = (&config.model, &config.train);
    let seq = config.data.seq_len;
    let ad = device.clone().autodiff();
    ad.seed(0);
    let mut model = m.init(&ad).map_err(|e| format!("model.{e}"))?;
    let mut optim = t.adamw().init();
    let batches: Vec<_> = (0..4).map(|i| random_batch(m.vocab_size, t.batch_size, seq, i, &ad)).collect();
    let mut train_s = 0.0;
    for i in 0..warmup + steps {
        let (x, y, mask) = batches[i % batches.len()].clone();
        let started = Instant::now();
        let loss = masked_cross_entropy(model.forward(x), y, mask);
        let (_, grads) = clip_global(&model, GradientsParams::from_grads(loss.backward(), &model), t.grad_clip);
        model = optim.step(t.lr, model, grads);
        let _ = loss.into_scalar::<f32>();
        if i >= warmup {
            train_s += started.elapsed().as_secs_f64();
        }
    }
    let model = model.valid();
    let inputs: Vec<Tensor<2, Int>> = (0..4).map(|i| random_batch(m.vocab_size, t.batch_size, seq, i, &device).0).collect();
    let timed = |f: &dyn Fn(Tensor<2, Int>)| {
        f(inputs[0].clone());
        let started = Instant::now();
        for i in 0..steps {
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
    let tokens = (steps * t.batch_size * seq) as f64;
    Ok(Measurement {
        implementation: format!("gatelab-{}", backend.name()),
        variant: variant.into(),
        train_tokens_per_s: tokens / train_s,
        forward_tokens_per_s: tokens / forward_s,
        analysis_tokens_per_s: Some(tokens / analysis_s),
        peak_rss_mib: peak_rss_mib(),
        steps,
    })
}
