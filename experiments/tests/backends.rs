//! One optimiser step lowers the loss on every backend present: flex always; wgpu where a Vulkan
//! adapter exists (Mesa's lavapipe on a CPU); tch where libtorch is linked. A backend listed in
//! `GATELAB_REQUIRE_BACKENDS` (comma-separated; CI sets flex,wgpu,tch) must work; others are
//! skipped with the reason printed.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use gatelab::backend::{Backend, open};
use gatelab_model::{GateSpec, ModelConfig, cross_entropy};

fn required() -> Vec<String> {
    std::env::var("GATELAB_REQUIRE_BACKENDS").unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(String::from).collect()
}

#[test]
fn one_step_lowers_the_loss_on_every_backend() {
    let required = required();
    for name in &required {
        let known = Backend::compiled().iter().any(|b| b.name() == name);
        assert!(known, "GATELAB_REQUIRE_BACKENDS names {name}, which this build does not have (features: wgpu default, tch opt-in)");
    }
    let mut ran = 0;
    for backend in Backend::compiled().into_iter().filter(|b| !matches!(b, Backend::TchCuda | Backend::Auto)) {
        let device = match open(backend, 0) {
            Ok(d) => d.autodiff(),
            Err(e) => {
                assert!(!required.iter().any(|r| r == backend.name()), "required backend failed: {e}");
                println!("SKIPPED {}: {e}", backend.name());
                continue;
            }
        };
        for gate in [GateSpec::BASELINE, GateSpec::G1_ELEMENTWISE] {
            let config = ModelConfig { vocab_size: 17, d_model: 32, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 16, d_ff: 48, gate, ..ModelConfig::default() };
            let model = config.init(&device).unwrap();
            let seq: Vec<i64> = (0..2 * 9).map(|i| (i * 7 % 17) as i64).collect();
            let tokens = |s: &[i64]| Tensor::<2, Int>::from_data(TensorData::new(s.to_vec(), [2, 8]), &device);
            let inputs = tokens(&[&seq[0..8], &seq[9..17]].concat());
            let targets = tokens(&[&seq[1..9], &seq[10..18]].concat());
            let mut optim = AdamWConfig::new().init();
            let loss = cross_entropy(model.forward(inputs.clone()), targets.clone());
            let before = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = optim.step(1e-2, model, grads);
            let after = cross_entropy(model.forward(inputs), targets).into_scalar::<f32>();
            println!("{} {}: loss {before:.5} -> {after:.5}", backend.name(), gate.label());
            assert!(after.is_finite() && after < before, "{} {}: loss {before} -> {after}", backend.name(), gate.label());
        }
        ran += 1;
    }
    assert!(ran >= 1, "no backend ran");
}
