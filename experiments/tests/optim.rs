//! The fused AdamW (`gatelab::optim::FusedAdamW`) against Burn's `AdamW` with the same constants:
//! the same parameters after several steps from the same gradients (weight decay and the bias
//! corrections included), on flex and (with the `tch` feature) libtorch; and its optimiser
//! checkpoints load into Burn's, and Burn's into it.

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab::backend::Backend;
use gatelab::optim::FusedAdamW;
use gatelab_model::{GateSpec, ModelConfig, Transformer, cross_entropy};

mod common;

/// The autodiff devices of the CPU backends with a fused AdamW: flex, and libtorch's CPU device
/// where this build has it.
fn devices() -> Vec<(&'static str, Device)> {
    let fused = [Backend::Flex, Backend::Tch];
    Backend::compiled()
        .into_iter()
        .filter(|b| fused.contains(b))
        .map(|b| (b.name(), b.device(0).unwrap().autodiff()))
        .collect()
}

const BETAS: (f64, f64) = (0.9, 0.95);
const EPS: f64 = 1e-8;
const DECAY: f64 = 0.1;

fn burn_adamw() -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(BETAS.0 as f32)
        .with_beta_2(BETAS.1 as f32)
        .with_epsilon(EPS as f32)
        .with_weight_decay(DECAY as f32)
        .init()
}

fn fused_adamw() -> ModuleOptimizer {
    FusedAdamW::new(BETAS.0, BETAS.1, EPS, DECAY).init()
}

fn model(device: &Device) -> Transformer {
    device.seed(5);
    let config = ModelConfig { gate: GateSpec::G1_ELEMENTWISE, ..common::small_model_config() };
    config.init(device).unwrap()
}

fn step(model: Transformer, optim: &mut ModuleOptimizer, i: usize, device: &Device) -> Transformer {
    let tokens: Vec<i64> = (0..2 * 9).map(|j| ((j * 7 + i * 3) % 17) as i64).collect();
    let t = |s: &[i64]| Tensor::<2, Int>::from_data(TensorData::new(s.to_vec(), [2, 8]), device);
    let inputs = t(&[&tokens[0..8], &tokens[9..17]].concat());
    let targets = t(&[&tokens[1..9], &tokens[10..18]].concat());
    let loss = cross_entropy(model.forward(inputs), targets);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    optim.step(3e-2, model, grads)
}

fn parameters(model: &Transformer) -> Vec<f32> {
    let mut out = Vec::new();
    for layer in &model.layers {
        let attn = &layer.attn;
        for w in [&attn.q_proj.weight, &attn.k_proj.weight, &attn.o_proj.weight] {
            out.extend(w.val().into_data().iter::<f32>());
        }
        out.extend(layer.attn_norm.gamma.val().into_data().iter::<f32>());
    }
    out.extend(model.embed_tokens.weight.val().into_data().iter::<f32>());
    out
}

fn worst_relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
}

#[test]
fn fused_adamw_equals_burns() {
    for (name, device) in devices() {
        let (mut fused, mut burn) = (fused_adamw(), burn_adamw());
        let mut a = model(&device);
        let mut b = a.clone();
        let start = parameters(&a);
        for i in 0..4 {
            a = step(a, &mut fused, i, &device);
            b = step(b, &mut burn, i, &device);
        }
        let (pa, pb) = (parameters(&a), parameters(&b));
        let moved = worst_relative(&pa, &start);
        assert!(moved > 1e-2, "{name}: the parameters barely moved ({moved:e})");
        let diff = worst_relative(&pa, &pb);
        assert!(diff < 1e-5, "{name}: fused and Burn's AdamW differ by {diff:e} of the largest parameter");
    }
}

#[test]
fn optimiser_checkpoints_load_either_way() {
    let device = Device::flex().autodiff();
    let dir = std::env::temp_dir().join(format!("gatelab-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (label, write, read) in [
        ("fused -> burn", fused_adamw as fn() -> ModuleOptimizer, burn_adamw as fn() -> ModuleOptimizer),
        ("burn -> fused", burn_adamw, fused_adamw),
    ] {
        // Two steps with the writer, save; then one more step with (a) the writer, (b) the reader
        // loaded from the file: the same parameters.
        let mut writer = write();
        let mut m = model(&device);
        for i in 0..2 {
            m = step(m, &mut writer, i, &device);
        }
        let path = dir.join("optim");
        writer.save(&path).unwrap();
        let reader = read().load(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let (mut writer, mut reader) = (writer, reader);
        let a = step(m.clone(), &mut writer, 2, &device);
        let b = step(m, &mut reader, 2, &device);
        let diff = worst_relative(&parameters(&a), &parameters(&b));
        assert!(diff < 1e-5, "{label}: a step after loading differs by {diff:e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
