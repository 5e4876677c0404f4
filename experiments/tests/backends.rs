//! One optimiser step lowers the loss on every backend present: flex always; wgpu where a Vulkan
//! adapter exists (Mesa's lavapipe on a CPU); tch where libtorch is linked. A backend listed in
//! `GATELAB_REQUIRE_BACKENDS` (comma-separated; CI sets flex,wgpu,tch) must work; others are
//! skipped with the reason printed.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use gatelab::backend::{Backend, open};
use gatelab_model::{
    GateActivation, GatePosition, GateSpec, Granularity, InputDims, ModelConfig, SinkCure, Transformer, cross_entropy,
};

mod common;

fn required() -> Vec<String> {
    std::env::var("GATELAB_REQUIRE_BACKENDS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The backend's autodiff device; `None` (printed as skipped) where it does not work here, which
/// fails the test for a backend in `GATELAB_REQUIRE_BACKENDS`.
fn open_autodiff(backend: Backend, required: &[String]) -> Option<burn::tensor::Device> {
    match open(backend, 0) {
        Ok(d) => Some(d.autodiff()),
        Err(e) => {
            assert!(!required.iter().any(|r| r == backend.name()), "required backend failed: {e}");
            println!("SKIPPED {}: {e}", backend.name());
            None
        }
    }
}

#[test]
fn one_step_lowers_the_loss_on_every_backend() {
    let required = required();
    for name in &required {
        let known = Backend::compiled().iter().any(|b| b.name() == name);
        assert!(
            known,
            "GATELAB_REQUIRE_BACKENDS names {name}, which this build does not have (features: wgpu default, tch opt-in)"
        );
    }
    let mut ran = 0;
    for backend in Backend::compiled().into_iter().filter(|b| !matches!(b, Backend::TchCuda | Backend::Auto)) {
        let Some(device) = open_autodiff(backend, &required) else { continue };
        let base = common::small_model_config();
        // Dense with and without G1, and the paper's sparse kind: a mixture-of-experts FFN (its
        // auxiliary losses in the objective) with Switch-Head key and value experts.
        let sparse = ModelConfig {
            moe: gatelab_model::MoeSpec { experts: 4, top_k: 2, d_expert: 16, ..Default::default() },
            switch_head: gatelab_model::SwitchHeadSpec {
                experts: 3,
                top_k: 2,
                keys: true,
                values: true,
                outputs: false,
                shared_kv_router: true,
            },
            ..base.clone()
        };
        for (label, config) in [
            ("baseline", base.clone()),
            ("g1", ModelConfig { gate: GateSpec::G1_ELEMENTWISE, ..base.clone() }),
            ("moe + switch-head", sparse),
        ] {
            let model = config.init(&device).unwrap();
            let seq: Vec<i64> = (0..2 * 9).map(|i| (i * 7 % 17) as i64).collect();
            let tokens = |s: &[i64]| Tensor::<2, Int>::from_data(TensorData::new(s.to_vec(), [2, 8]), &device);
            let inputs = tokens(&[&seq[0..8], &seq[9..17]].concat());
            let targets = tokens(&[&seq[1..9], &seq[10..18]].concat());
            let mut optim = AdamWConfig::new().init();
            let (logits, aux) = model.forward_with_aux(inputs.clone());
            let loss = cross_entropy(logits, targets.clone());
            let loss = aux.map_or(loss.clone(), |a| loss + a);
            let before = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = optim.step(1e-2, model, grads);
            let (logits, aux) = model.forward_with_aux(inputs);
            let after = cross_entropy(logits, targets);
            let after = aux.map_or(after.clone(), |a| after + a).into_scalar::<f32>();
            println!("{} {label}: loss {before:.5} -> {after:.5}", backend.name());
            assert!(after.is_finite() && after < before, "{} {label}: loss {before} -> {after}", backend.name());
        }
        ran += 1;
    }
    assert!(ran >= 1, "no backend ran");
}

/// The attention's own backward pass (`gatelab_model::sdpa`) runs on each backend's kernels: the
/// gradients of the projections around it, with grouped queries (2 query heads per KV head), equal
/// flex's (which the PyTorch parity tests check) from the same weights and tokens.
#[test]
fn attention_gradients_agree_across_backends() {
    let required = required();
    let base = ModelConfig {
        vocab_size: 17,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
        d_ff: 48,
        gate: GateSpec::G1_ELEMENTWISE,
        ..ModelConfig::default()
    };
    // Plain softmax, a slot cure through the handwritten backward (the key/value bias), another
    // with a learned logit, and one through Burn's autodiff (softpick); then the gates since the
    // paper: a tanh gate reading the first 12 dimensions, and G1 + a 2σ G2 reading d/4.
    let narrow_tanh =
        GateSpec { input_dims: InputDims::First(12), activation: GateActivation::Tanh, ..GateSpec::G1_ELEMENTWISE };
    let g2 = GateSpec {
        input_dims: InputDims::Fraction(4),
        activation: GateActivation::ScaledSigmoid,
        ..GateSpec::at(GatePosition::G2, Granularity::Elementwise)
    };
    let configs = [
        ModelConfig { gate: narrow_tanh, ..base.clone() },
        ModelConfig { extra_gates: vec![g2], ..base.clone() },
        base.clone(),
        ModelConfig { cure: SinkCure::KvBias, ..base.clone() },
        ModelConfig { cure: SinkCure::SinkLogit, gate: GateSpec::BASELINE, ..base.clone() },
        ModelConfig { cure: SinkCure::Softpick, ..base },
    ];
    let seq: Vec<i64> = (0..2 * 13).map(|i| (i * 7 % 17) as i64).collect();
    let grads_on = |model: Transformer, device: &burn::tensor::Device| -> Vec<(String, Vec<f32>)> {
        let tokens = |s: &[i64]| Tensor::<2, Int>::from_data(TensorData::new(s.to_vec(), [2, 12]), device);
        let loss = cross_entropy(
            model.forward(tokens(&[&seq[0..12], &seq[13..25]].concat())),
            tokens(&[&seq[1..13], &seq[14..26]].concat()),
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let attn = &model.layers[0].attn;
        let host = |name: &str, t: Option<Tensor<2>>| -> (String, Vec<f32>) {
            (
                name.to_string(),
                t.unwrap_or_else(|| panic!("no gradient for {name}")).into_data().iter::<f32>().collect(),
            )
        };
        let mut out: Vec<(String, Vec<f32>)> = [
            ("q_proj", &attn.q_proj.weight),
            ("k_proj", &attn.k_proj.weight),
            ("v_proj", &attn.v_proj.weight),
            ("o_proj", &attn.o_proj.weight),
        ]
        .into_iter()
        .map(|(name, p)| host(name, grads.get::<2>(p.id)))
        .collect();
        for (name, p) in [("kv_bias_key", &attn.kv_bias_key), ("kv_bias_value", &attn.kv_bias_value)] {
            if let Some(p) = p {
                out.push(host(name, grads.get::<2>(p.id)));
            }
        }
        let gates = attn.gate.iter().chain(&attn.extra_gates);
        for (i, p) in gates.filter_map(|g| g.gate_proj.as_ref()).enumerate() {
            out.push(host(&format!("gate {i}"), grads.get::<2>(p.weight.id)));
        }
        if let Some(p) = &attn.sink_logit {
            out.push(host("sink_logit", grads.get::<1>(p.id).map(|g| g.unsqueeze::<2>())));
        }
        out
    };
    let mut compared = 0;
    for config in &configs {
        let flex = open(Backend::Flex, 0).unwrap().autodiff();
        let reference_model = config.init(&flex).unwrap();
        // Parameters initialise on first use: run once so the copies below carry the same values.
        let _ = reference_model.forward(Tensor::<2, Int>::zeros([1, 4], &flex));
        let reference = grads_on(reference_model.clone(), &flex);
        for backend in
            Backend::compiled().into_iter().filter(|b| !matches!(b, Backend::Flex | Backend::TchCuda | Backend::Auto))
        {
            let Some(device) = open_autodiff(backend, &required) else { continue };
            let got = grads_on(reference_model.clone().fork(&device), &device);
            assert_eq!(got.len(), reference.len());
            for ((name, want), (_, got)) in reference.iter().zip(got) {
                let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
                let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
                let cure = format!("{} {}", config.cure.name(), config.gate_label());
                println!("{} {cure} {name}: worst difference {worst:.2e} of the largest gradient", backend.name());
                assert!(
                    worst < 1e-4,
                    "{} {cure} {name}: gradients differ from flex's by {worst:.2e} of the largest",
                    backend.name()
                );
            }
            compared += 1;
        }
    }
    println!("compared {compared} (backend, cure) pairs with flex");
}

#[test]
fn a_routing_tie_takes_exactly_k_experts_by_index_on_every_backend() {
    // A zero router gives every expert the same probability: a tie at every place. Top-2 takes
    // experts 0 and 1 of every token (torch.topk's rule) on every backend, as the PyTorch parity
    // reference does (its case "every router score tied").
    let required = required();
    for backend in Backend::compiled().into_iter().filter(|b| !matches!(b, Backend::TchCuda | Backend::Auto)) {
        let device = match open(backend, 0) {
            Ok(d) => d,
            Err(e) => {
                assert!(!required.iter().any(|r| r == backend.name()), "required backend failed: {e}");
                println!("SKIPPED {}: {e}", backend.name());
                continue;
            }
        };
        let config = ModelConfig {
            vocab_size: 17,
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 8,
            moe: gatelab_model::MoeSpec { experts: 4, top_k: 2, d_expert: 8, ..Default::default() },
            ..ModelConfig::default()
        };
        let mut model = config.init(&device).unwrap();
        for layer in &mut model.layers {
            let router = &mut layer.moe.as_mut().unwrap().router;
            router.weight = burn::module::Param::from_tensor(router.weight.val().zeros_like());
        }
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4, 5, 6], [1, 6]), &device);
        let (_, probes) = model.forward_probed(tokens);
        for layer in &probes.layers {
            let chosen: Vec<f32> = layer.routing.as_ref().unwrap().chosen.clone().into_data().iter::<f32>().collect();
            for (i, token) in chosen.chunks(4).enumerate() {
                assert_eq!(
                    token,
                    [1.0, 1.0, 0.0, 0.0],
                    "{}: token {i} routed to {token:?} under top-2",
                    backend.name()
                );
            }
        }
    }
}
