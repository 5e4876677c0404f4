//! Behaviour of the model on flex: shapes, causality, gates forced open, parameter counts, probes
//! and the weights round trip.

use crate::common::{Lcg, batch_tensors, tempfile_dir};
use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_model::weights::{load_safetensors, to_safetensors};
use gatelab_model::{
    Combination, GateActivation, GateInput, GatePosition, GateSpec, Granularity, ModelConfig, ResidualEdit, Transformer,
};

fn tiny(gate: GateSpec) -> ModelConfig {
    ModelConfig {
        vocab_size: 29,
        d_model: 24,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 6,
        d_ff: 40,
        qk_norm: false,
        init_std: 0.2,
        gate,
        ..ModelConfig::default()
    }
}

fn tokens(rows: &[&[i64]], device: &Device) -> Tensor<2, Int> {
    let (b, t) = (rows.len(), rows[0].len());
    Tensor::from_data(TensorData::new(rows.concat(), [b, t]), device)
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn shapes_of_logits_and_probes() {
    let device = Device::flex();
    for spec in [
        GateSpec::BASELINE,
        GateSpec::G1_ELEMENTWISE,
        GateSpec::at(GatePosition::G2, Granularity::Headwise),
        GateSpec::at(GatePosition::G5, Granularity::Elementwise),
        GateSpec { input: GateInput::Independent, ..GateSpec::at(GatePosition::G1, Granularity::Headwise) },
    ] {
        let config = tiny(spec);
        let model = config.init(&device).unwrap();
        let (logits, probes) = model.forward_probed(tokens(&[&[1, 2, 3, 4, 5], &[5, 4, 3, 2, 1]], &device));
        assert_eq!(logits.dims(), [2, 5, 29]);
        assert_eq!(probes.layers.len(), 2);
        let p = &probes.layers[1];
        assert_eq!(p.attention.attn.as_ref().unwrap().dims(), [2, 4, 5, 5]);
        assert_eq!(p.attention.queries.dims(), [2, 4, 5, 6]);
        assert_eq!(p.attention.keys.dims(), [2, 2, 5, 6]);
        assert_eq!(p.attention.values.dims(), [2, 2, 5, 6]);
        assert_eq!(p.attention.sdpa_out.dims(), [2, 5, 4, 6]);
        assert_eq!(p.attention.sdpa_gated.dims(), [2, 5, 4, 6]);
        assert_eq!(p.residual.dims(), [2, 5, 24]);
        let scores = p.attention.gate_scores.as_ref().map(|s| s.dims());
        let expected = match (spec.position, spec.granularity, spec.input) {
            (GatePosition::None, ..) => None,
            (GatePosition::G1, Granularity::Elementwise, _) => Some([2, 5, 4, 6]),
            (GatePosition::G1, Granularity::Headwise, GateInput::Independent) => Some([1, 1, 4, 1]),
            (GatePosition::G2, Granularity::Headwise, _) => Some([2, 5, 2, 1]),
            (GatePosition::G5, ..) => Some([2, 5, 1, 24]),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(scores, expected, "{}", spec.label());
        // Attention rows are distributions over the past only.
        let attn = p.attention.attn.clone().unwrap().into_data().try_to_vec::<f32>().unwrap();
        for row in attn.chunks(5).take(5) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(attn[1..5].iter().sum::<f32>(), 0.0, "query 0 sees only key 0");
    }
}

#[test]
fn the_future_never_changes_the_past() {
    let device = Device::flex();
    for spec in GateSpec::enumerate(false) {
        let mut config = tiny(spec);
        if spec.input == GateInput::Independent {
            config.init_std = 0.3; // θ starts at zero; the check holds either way
        }
        let model = config.init(&device).unwrap();
        let a = values(model.forward(tokens(&[&[3, 1, 4, 1, 5, 9]], &device)));
        let b = values(model.forward(tokens(&[&[3, 1, 4, 1, 5, 2]], &device)));
        let v = config.vocab_size;
        let past = a[..5 * v].iter().zip(&b[..5 * v]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let last = a[5 * v..].iter().zip(&b[5 * v..]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(past <= 1e-6, "{}: an earlier logit moved by {past}", spec.label());
        assert!(last > 1e-4, "{}: the changed position did not change ({last})", spec.label());
    }
}

/// Copies `from`'s weights into `to` (same names), leaving `to`'s gate alone.
fn copy_shared_weights(from: &Transformer, to: Transformer, dir: &std::path::Path) -> Transformer {
    use burn::store::{ModuleSnapshot, SafetensorsStore};
    let path = dir.join("base.safetensors");
    let mut out = SafetensorsStore::from_file(&path).overwrite(true);
    from.save_into(&mut out).unwrap();
    let mut to = to;
    let result = to.load_from(&mut SafetensorsStore::from_file(&path).allow_partial(true)).unwrap();
    assert!(result.errors.is_empty() && result.unused.is_empty(), "{result:?}");
    to
}

#[test]
fn a_gate_forced_open_equals_the_baseline() {
    let device = Device::flex();
    let dir = tempfile_dir("forced-open");
    let base_config = tiny(GateSpec::BASELINE);
    let base = base_config.init(&device).unwrap();
    let input = tokens(&[&[7, 3, 3, 8, 1, 0, 2]], &device);
    let expected = values(base.forward(input.clone()));
    let open_gates = [
        // σ(30) = 1 in f32: a multiplicative gate that passes everything.
        (Combination::Multiplicative, GateActivation::Sigmoid, 30.0),
        // 0.5 + 0.5·σ(30) = 1.
        (Combination::Multiplicative, GateActivation::NsSigmoid, 30.0),
        // y + 0.
        (Combination::Additive, GateActivation::Identity, 0.0),
    ];
    for position in [GatePosition::G1, GatePosition::G2, GatePosition::G3, GatePosition::G4, GatePosition::G5] {
        for granularity in [Granularity::Elementwise, Granularity::Headwise] {
            for (combination, activation, theta) in open_gates {
                let spec = GateSpec {
                    position,
                    granularity,
                    combination,
                    activation,
                    input: GateInput::Independent,
                    ..GateSpec::BASELINE
                };
                if spec.validate(false).is_err() {
                    continue;
                }
                let mut gated = copy_shared_weights(&base, tiny(spec).init(&device).unwrap(), &dir);
                for layer in &mut gated.layers {
                    let gate = layer.attn.gate.as_mut().unwrap();
                    let width = gate.gate_theta.as_ref().unwrap().dims()[0];
                    gate.gate_theta = Some(Param::from_tensor(Tensor::full([width], theta, &device)));
                }
                let got = values(gated.forward(input.clone()));
                let err = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(err <= 1e-6, "{}: differs from the baseline by {err}", spec.label());
            }
        }
    }
    // And a gate that is not open does change the output (the check above can fail).
    let half = copy_shared_weights(
        &base,
        tiny(GateSpec { input: GateInput::Independent, ..GateSpec::G1_ELEMENTWISE }).init(&device).unwrap(),
        &dir,
    );
    let got = values(half.forward(input));
    assert!(got.iter().zip(&expected).any(|(a, b)| (a - b).abs() > 1e-3));
}

/// A zero-initialised gate (`gate.init = zero`) leaves the model as it was exactly where
/// [`GateSpec::identity_at_zero`] says so, at every point of the design space; elsewhere it
/// changes the output (so the check can fail).
#[test]
fn a_zero_initialised_gate_starts_as_no_gate_where_it_says_so() {
    let device = Device::flex();
    let dir = tempfile_dir("zero-init");
    let base = tiny(GateSpec::BASELINE).init(&device).unwrap();
    let input = tokens(&[&[7, 3, 3, 8, 1, 0, 2]], &device);
    let expected = values(base.forward(input.clone()));
    let mut identities = 0;
    for spec in GateSpec::enumerate(false).into_iter().filter(GateSpec::is_gated) {
        let spec = GateSpec { init: gatelab_model::GateInit::Zero, ..spec };
        let gated = copy_shared_weights(&base, tiny(spec).init(&device).unwrap(), &dir);
        let got = values(gated.forward(input.clone()));
        let err = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        match spec.identity_at_zero() {
            Ok(()) => {
                identities += 1;
                assert!(err <= 1e-6, "{}: differs from the model without it by {err}", spec.label());
            }
            Err(why) => assert!(err > 1e-4, "{}: said not to start as no gate ({why}), but does", spec.label()),
        }
    }
    assert!(identities > 0);
}

#[test]
fn parameter_count_from_config_equals_the_built_model() {
    let device = Device::flex();
    for spec in GateSpec::enumerate(false) {
        for (qk_norm, tie, sandwich, d_ff, matched) in
            [(false, true, false, 40, false), (false, false, true, 0, false), (false, true, false, 64, true)]
        {
            if matched && !spec.is_gated() && spec.sdpa_nonlinearity == Default::default() {
                continue;
            }
            let config = ModelConfig {
                qk_norm,
                tie_embeddings: tie,
                sandwich_norm: sandwich,
                d_ff,
                match_baseline_params: matched,
                ..tiny(spec)
            };
            if config.validate().is_err() {
                continue; // e.g. a head-shared headwise g1 gate under sandwich norm
            }
            let model = config.init(&device).unwrap();
            assert_eq!(config.param_count().total, model.num_params(), "{} {config:?}", spec.label());
        }
    }
}

/// The probed forward keeps the attention probabilities (the reference attention) and the plain
/// one does not (the fused causal kernel): the same logits up to float rounding.
#[test]
fn probed_and_training_forwards_agree() {
    let device = Device::flex();
    let model = tiny(GateSpec::G1_ELEMENTWISE).init(&device).unwrap();
    let input = tokens(&[&[1, 2, 3, 4, 5, 6, 7, 8]], &device);
    let (probed, _) = model.forward_probed(input.clone());
    let (probed, plain) = (values(probed), values(model.forward(input)));
    assert_eq!(probed.len(), plain.len());
    let worst = probed.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-5, "probed and plain logits differ by {worst}");
}

#[test]
fn a_residual_edit_writes_one_entry_and_only_changes_what_follows() {
    let device = Device::flex();
    let model = tiny(GateSpec::G1_ELEMENTWISE).init(&device).unwrap();
    let input = tokens(&[&[1, 2, 3, 4, 5, 6], &[6, 5, 4, 3, 2, 1]], &device);
    let (logits, probes) = model.forward_probed(input.clone());
    let before = values(probes.layers[0].residual.clone());
    // Writing back the first sequence's own value changes nothing in the first sequence.
    let (d, t, vocab) = (24, 6, 29);
    let same = ResidualEdit { layer: 0, position: 0, channel: 3, value: before[3] };
    let (unchanged, _) = model.forward_probed_edited(input.clone(), &same, true);
    let (a, b) = (values(unchanged), values(logits.clone()));
    assert!(a[..t * vocab].iter().zip(&b[..t * vocab]).all(|(x, y)| (x - y).abs() < 1e-5));
    // Zeroing position 2's channel 3 after block 0: that entry is 0 in both sequences, the other
    // entries of block 0's output are untouched, and the logits change from position 2 on only.
    let edit = ResidualEdit { layer: 0, position: 2, channel: 3, value: 0.0 };
    let (edited, probes) = model.forward_probed_edited(input, &edit, true);
    let after = values(probes.layers[0].residual.clone());
    for (i, (x, y)) in after.iter().zip(&before).enumerate() {
        let (pos, ch) = ((i / d) % t, i % d);
        if (pos, ch) == (2, 3) {
            assert_eq!(*x, 0.0);
        } else {
            assert_eq!(x, y, "entry {i}");
        }
    }
    let (a, b) = (values(edited), values(logits));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let pos = (i / vocab) % t;
        if pos < 2 {
            assert!((x - y).abs() < 1e-5, "logit {i} before the edit changed");
        }
    }
    let changed = a.iter().zip(&b).enumerate().filter(|(i, (x, y))| (i / vocab) % t == 2 && (*x - *y).abs() > 1e-6);
    assert!(changed.count() > 0, "the edit changed nothing at its position");
}

#[test]
fn weights_round_trip_and_mismatches_are_named() {
    let device = Device::flex();
    let dir = tempfile_dir("weights");
    let path = dir.join("model.safetensors");
    let config = tiny(GateSpec::G1_ELEMENTWISE);
    let model = config.init(&device).unwrap();
    std::fs::write(&path, to_safetensors(&model).unwrap()).unwrap();
    let mut rng = Lcg(3);
    let (input, _, _) = batch_tensors(&mut rng, 2, 6, config.vocab_size, &device);
    let reloaded = load_safetensors(config.init(&device).unwrap(), &path).unwrap();
    assert_eq!(values(model.forward(input.clone())), values(reloaded.forward(input)));

    // A baseline file into a gated model: the gate's tensors are missing, by name.
    let base_path = dir.join("base.safetensors");
    std::fs::write(&base_path, to_safetensors(&tiny(GateSpec::BASELINE).init(&device).unwrap()).unwrap()).unwrap();
    let err = load_safetensors(config.init(&device).unwrap(), &base_path).unwrap_err().to_string();
    assert!(err.contains("gate.gate_proj.weight"), "{err}");
    // A wider model: shapes differ.
    let wide = ModelConfig { d_ff: 48, ..config.clone() };
    let err = load_safetensors(wide.init(&device).unwrap(), &path).unwrap_err().to_string();
    assert!(err.contains("ffn"), "{err}");
    assert!(
        load_safetensors(config.init(&device).unwrap(), &dir.join("nope.safetensors"))
            .unwrap_err()
            .to_string()
            .contains("no such")
    );
}

/// Weights saved in bf16 by another tool (here: gatelab's own bf16 copy, saved) load into the f32
/// model upcast: every parameter f32, trainable, and the logits those of the rounded weights.
#[test]
fn bf16_weights_load_upcast_to_f32() {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::DType;
    struct Dtypes(Vec<DType>);
    impl ModuleVisitor for Dtypes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().dtype());
        }
    }
    let device = Device::flex().autodiff();
    let dir = tempfile_dir("weights-bf16");
    let path = dir.join("model.safetensors");
    let config = tiny(GateSpec::G1_ELEMENTWISE);
    let model = config.init(&device).unwrap();
    let rounded = model.cast_parameters(DType::BF16);
    std::fs::write(&path, to_safetensors(&rounded).unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&std::fs::read(&path).unwrap()[..400]).contains("BF16"), "saved in bf16");
    let loaded = load_safetensors(config.init(&device).unwrap(), &path).unwrap();
    let mut dtypes = Dtypes(Vec::new());
    loaded.visit(&mut dtypes);
    assert!(dtypes.0.iter().all(|d| *d == DType::F32), "{:?}", dtypes.0);
    let mut rng = Lcg(3);
    let (input, targets, _) = batch_tensors(&mut rng, 2, 6, config.vocab_size, &device);
    let want = values(rounded.forward(input.clone()).cast(DType::F32));
    let logits = loaded.forward(input);
    let got = values(logits.clone());
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(worst <= 0.05 * scale, "the upcast weights' logits differ by {worst} (scale {scale})");
    let grads = gatelab_model::cross_entropy(logits, targets).backward();
    let q = &loaded.layers[0].attn.q_proj.weight;
    assert!(q.val().grad(&grads).is_some(), "an upcast parameter trains");
}

#[test]
fn same_seed_same_model() {
    let config = tiny(GateSpec::G1_ELEMENTWISE);
    let build = || {
        let device = Device::flex();
        device.seed(42);
        let model = config.init(&device).unwrap();
        values(model.forward(tokens(&[&[1, 2, 3]], &device)))
    };
    assert_eq!(build(), build());
}

#[test]
fn padding_targets_do_not_count() {
    use gatelab_model::{cross_entropy, masked_cross_entropy};
    let device = Device::flex();
    let model = tiny(GateSpec::BASELINE).init(&device).unwrap();
    let logits = model.forward(tokens(&[&[1, 2, 3, 4]], &device));
    let targets = tokens(&[&[2, 3, 4, 0]], &device);
    let all = masked_cross_entropy(logits.clone(), targets.clone(), Tensor::ones([1, 4], &device)).into_scalar::<f32>();
    assert!((all - cross_entropy(logits.clone(), targets.clone()).into_scalar::<f32>()).abs() < 1e-6);
    // Masking the last target equals the loss on the first three positions alone.
    let mask = Tensor::from_data(TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0], [1, 4]), &device);
    let masked = masked_cross_entropy(logits.clone(), targets, mask).into_scalar::<f32>();
    let first3 = cross_entropy(logits.slice([0..1, 0..3, 0..29]), tokens(&[&[2, 3, 4]], &device)).into_scalar::<f32>();
    assert!((masked - first3).abs() < 1e-6, "{masked} vs {first3}");
    assert!((masked - all).abs() > 1e-4);
}

/// The small mixture-of-experts and Switch-Head shapes the tests below use.
fn moe(switch_head: gatelab_model::SwitchHeadSpec, shared: usize) -> ModelConfig {
    ModelConfig {
        moe: gatelab_model::MoeSpec {
            experts: 4,
            top_k: 2,
            d_expert: 12,
            shared_experts: shared,
            ..Default::default()
        },
        switch_head,
        ..tiny(GateSpec::BASELINE)
    }
}

fn switch(experts: usize, top_k: usize, keys: bool, values: bool, outputs: bool) -> gatelab_model::SwitchHeadSpec {
    gatelab_model::SwitchHeadSpec { experts, top_k, keys, values, outputs, shared_kv_router: false }
}

#[test]
fn experts_count_route_and_respect_causality() {
    let device = Device::flex();
    device.seed(7);
    for (sh, shared) in [
        (gatelab_model::SwitchHeadSpec::default(), 0),
        (gatelab_model::SwitchHeadSpec::default(), 1),
        (switch(4, 2, true, true, false), 0),
        (switch(3, 1, false, true, true), 1),
        (gatelab_model::SwitchHeadSpec { shared_kv_router: true, ..switch(4, 2, true, true, false) }, 0),
    ] {
        let config = moe(sh, shared);
        config.validate().unwrap();
        let model = config.init(&device).unwrap();
        assert_eq!(config.param_count().total, model.num_params(), "{config:?}");
        // The dense FFN is replaced, not kept beside the experts.
        assert!(model.layers.iter().all(|l| l.ffn.is_none() && l.moe.is_some()));
        let a = tokens(&[&[1, 2, 3, 4, 5, 6, 7, 8]], &device);
        let b = tokens(&[&[1, 2, 3, 4, 9, 10, 11, 12]], &device);
        let (la, lb) = (values(model.forward(a.clone())), values(model.forward(b)));
        assert_eq!(la[..4 * 29], lb[..4 * 29], "routing must not see the future");
        // Every token goes to exactly top_k experts; the aux loss is finite and positive.
        let (_, probes) = model.forward_probed(a.clone());
        for layer in &probes.layers {
            let r = layer.routing.as_ref().expect("a mixture-of-experts layer reports its routing");
            let per_token: Vec<f32> = r.chosen.clone().sum_dim(2).into_data().iter::<f32>().collect();
            assert!(per_token.iter().all(|&n| n == 2.0), "{per_token:?}");
            // balance = E · Σ_e f_e P_e, recomputed from what the layer reports. It is not bounded
            // below by 1 (f and P can disagree); it is exactly 1 for a uniform router, below.
            let [_, _, e] = r.probs.dims();
            let f = r.chosen.clone().reshape([8, e]).sum_dim(0).div_scalar(16.0);
            let p = r.probs.clone().reshape([8, e]).mean_dim(0);
            let expected = (f * p).sum().into_scalar::<f32>() * e as f32;
            let balance = r.balance.clone().into_scalar::<f32>();
            assert!((balance - expected).abs() < 1e-5 && balance > 0.0, "balance {balance}, E·Σ f·P = {expected}");
        }
        let (_, aux) = model.forward_with_aux(a.clone());
        assert!(aux.unwrap().into_scalar::<f32>() > 0.0);
        // A uniform router (zero weights): every P_e = 1/E, so the balance is 1 whatever was chosen.
        let mut uniform = model;
        for layer in &mut uniform.layers {
            let router = &mut layer.moe.as_mut().expect("experts").router;
            router.weight = Param::from_tensor(router.weight.val().zeros_like());
            if let Some(bias) = &mut router.bias {
                *bias = Param::from_tensor(bias.val().zeros_like());
            }
        }
        for layer in &uniform.forward_probed(a).1.layers {
            let balance = layer.routing.as_ref().unwrap().balance.clone().into_scalar::<f32>();
            assert!((balance - 1.0).abs() < 1e-5, "uniform router: balance {balance}");
        }
    }
    // A dense model has no auxiliary loss; nonsense is refused naming the field.
    assert!(tiny(GateSpec::BASELINE).init(&device).unwrap().forward_with_aux(tokens(&[&[1, 2]], &device)).1.is_none());
    let bad = ModelConfig {
        moe: gatelab_model::MoeSpec { top_k: 5, ..moe(Default::default(), 0).moe },
        ..moe(Default::default(), 0)
    };
    assert_eq!(bad.validate().unwrap_err().field, "moe.top_k");
    let bad = moe(switch(2, 1, false, false, false), 0);
    assert_eq!(bad.validate().unwrap_err().field, "switch_head");
    let bad = moe(gatelab_model::SwitchHeadSpec { shared_kv_router: true, ..switch(2, 1, false, true, false) }, 0);
    assert_eq!(bad.validate().unwrap_err().field, "switch_head.shared_kv_router");
    let json = serde_json::to_string(&tiny(GateSpec::BASELINE)).unwrap();
    assert!(!json.contains("moe") && !json.contains("switch_head"), "dense configs keep their JSON (and hashes)");
}

#[test]
fn qwen2_moe_gates_its_shared_expert() {
    // moe.shared_gate = sigmoid: σ(x·w) scales the shared expert; w = 0 halves it exactly.
    let device = Device::flex();
    let plain = moe(Default::default(), 1);
    let gated = ModelConfig {
        moe: gatelab_model::MoeSpec { shared_gate: gatelab_model::SharedGate::Sigmoid, ..plain.moe },
        ..plain.clone()
    };
    let mut model = gated.init(&device).unwrap();
    assert_eq!(gated.param_count().total, model.num_params());
    assert_eq!(model.num_params(), plain.init(&device).unwrap().num_params() + 2 * plain.d_model);
    let x = Tensor::<3>::random([1, 5, plain.d_model], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let ffn = model.layers[0].moe.as_mut().unwrap();
    let gate = ffn.shared_gate.as_mut().expect("a gate on the shared expert");
    gate.weight = Param::from_tensor(gate.weight.val().zeros_like());
    let (with_half, _) = ffn.forward(x.clone());
    let shared = ffn.shared.as_ref().unwrap().forward(x.clone());
    ffn.shared_gate = None;
    let (with_full, _) = ffn.forward(x);
    let diff = (with_full - with_half - shared.mul_scalar(0.5)).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-5, "σ(0) = 0.5 of the shared expert: off by {diff}");
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("shared_gate"), "an ungated shared expert keeps its JSON (and hash)");
    let bad = ModelConfig { moe: gatelab_model::MoeSpec { shared_experts: 0, ..gated.moe }, ..gated };
    assert_eq!(bad.validate().unwrap_err().field, "moe.shared_gate");
}

#[test]
fn a_one_expert_value_switch_head_is_a_headwise_value_gate() {
    // Switch-Head v 1top1 = σ(x·w_h) · (x·W_v)_h: the G2 headwise gate (the paper's Table 6 note).
    let device = Device::flex();
    let gated = tiny(GateSpec::at(GatePosition::G2, Granularity::Headwise)).init(&device).unwrap();
    let switch_config = ModelConfig { switch_head: switch(1, 1, false, true, false), ..tiny(GateSpec::BASELINE) };
    assert_eq!(
        switch_config.param_count().total,
        tiny(GateSpec::at(GatePosition::G2, Granularity::Headwise)).param_count().total
    );
    let mut switched = switch_config.init(&device).unwrap();
    // Copy every weight; the gate's projection becomes the router.
    {
        use burn::store::{ModuleSnapshot, SafetensorsStore};
        let path = tempfile_dir("switch1").join("gated.safetensors");
        gated.save_into(&mut SafetensorsStore::from_file(&path).overwrite(true)).unwrap();
        let result = switched.load_from(&mut SafetensorsStore::from_file(&path).allow_partial(true)).unwrap();
        assert!(result.errors.is_empty(), "{result:?}");
    }
    for (s, g) in switched.layers.iter_mut().zip(&gated.layers) {
        let router = s.attn.v_experts.as_mut().unwrap().router.as_mut().unwrap();
        router.weight = Param::from_tensor(g.attn.gate.as_ref().unwrap().gate_proj.as_ref().unwrap().weight.val());
    }
    let input = tokens(&[&[3, 1, 4, 1, 5, 9, 2, 6]], &device);
    let (a, b) = (values(gated.forward(input.clone())), values(switched.forward(input)));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "logits differ by {worst}");
}
