//! Parity with PyTorch: every point of the gating design space and every sink cure (alone and
//! with G1), fed the same weights and tokens to
//! gatelab (flex, f32) and to the independent reference `tests/reference/gatelab_ref.py` (torch
//! 2.9, computing in f64 so the comparison measures gatelab's own f32 error), must give the same logits (≤ 1e-4 max abs) and parameter gradients of the same cross-entropy
//! loss (≤ 1e-3, max abs error relative to the tensor's largest gradient). G1 elementwise is also
//! checked against `transformers`' `Qwen3NextAttention`. The gates since the paper are cases too:
//! a narrow gate input (`x[:k]` in the case's name), `2σ` zero-initialised, tanh, and two or three
//! gate sites in one model (`… + …`).
//!
//! Needs a Python with torch, safetensors and transformers: `$GATELAB_PYTHON` (scripts/env.sh sets
//! it from scripts/setup-libtorch.sh's virtualenv). Without one the test prints why and passes,
//! unless `GATELAB_REQUIRE_TORCH=1` (CI), where it fails.

use crate::common::{Lcg, batch_tensors, read_safetensors, reference_python, tempfile_dir};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Distribution, Gradients, Tensor};
use gatelab_model::weights::to_safetensors;
use gatelab_model::{
    Combination, GateActivation, GateInit, GateInput, GatePosition, GateSpec, Granularity, HeadSharing, InputDims,
    ModelConfig, MoeSpec, SdpaNonlinearity, SinkCure, SwitchHeadSpec, Transformer, cross_entropy,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LOGIT_TOL: f32 = 1e-4;
const GRAD_TOL: f32 = 1e-3;

/// Adds N(0, 0.3) to every parameter, so norms, gates and θ are far from their initial values and
/// a transposed or misplaced tensor cannot hide.
struct Perturb;
impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let noise = t.random_like(Distribution::Normal(0.0, 0.3));
            (t + noise).detach().require_grad()
        })
    }
}

/// Replaces every parameter by its gradient, so the gradients save under the parameters' names.
struct ToGrads<'a>(&'a Gradients);
impl ModuleMapper for ToGrads<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let grads = self.0;
        param.map(|t| t.grad(grads).expect("every parameter takes part in the loss"))
    }
}

/// Architecture variations cycled through the gate specs.
fn architectures() -> Vec<(&'static str, ModelConfig)> {
    let base = ModelConfig {
        vocab_size: 37,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
        d_ff: 48,
        ..ModelConfig::default()
    };
    vec![
        ("gqa-tied", base.clone()),
        (
            "mha-untied-sandwich",
            ModelConfig { n_kv_heads: 4, tie_embeddings: false, sandwich_norm: true, ..base.clone() },
        ),
        ("mqa-noqknorm-attnonly", ModelConfig { n_kv_heads: 1, qk_norm: false, d_ff: 0, ..base.clone() }),
        ("gqa-matched", ModelConfig { d_ff: 64, match_baseline_params: true, ..base }),
    ]
}

struct Case {
    name: String,
    dir: PathBuf,
    logits: Vec<f32>,
    /// The logits of the bf16 forward pass on the same weights.
    bf16_logits: Vec<f32>,
    n_layers: usize,
    qwen3next: bool,
}

fn write_case(root: &Path, index: usize, name: String, config: &ModelConfig, qwen3next: bool) -> Case {
    write_case_inner(root, index, name, config, qwen3next, |_| {})
}

/// A case whose perturbed weights `edit` changes before the forward pass.
fn write_case_with(
    root: &Path,
    index: usize,
    name: String,
    config: &ModelConfig,
    edit: impl FnOnce(&mut Transformer),
) -> Case {
    write_case_inner(root, index, name, config, false, edit)
}

fn write_case_inner(
    root: &Path,
    index: usize,
    name: String,
    config: &ModelConfig,
    qwen3next: bool,
    edit: impl FnOnce(&mut Transformer),
) -> Case {
    let device = Device::flex().autodiff();
    device.seed(1000 + index as u64); // reproducible weights and perturbations
    let dir = root.join(format!("case{index:03}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut model = config.init(&device).unwrap_or_else(|e| panic!("{name}: {e}")).map(&mut Perturb);
    edit(&mut model);
    let mut rng = Lcg(index as u64 + 1);
    let (tokens, targets, batch_json) = batch_tensors(&mut rng, 2, 7, config.vocab_size, &device);
    // Mixed precision: the same weights and batch through the bf16 copy; gradients are the f32
    // masters' (`gatelab_model::precision`).
    let (logits16, aux16) = model.cast_parameters(DType::BF16).forward_with_aux(tokens.clone());
    let bf16_logits = logits16.clone().cast(DType::F32).into_data().try_to_vec::<f32>().unwrap();
    let loss16 = cross_entropy(logits16, targets.clone());
    let grads16 = aux16.map_or(loss16.clone(), |a| loss16 + a.cast(DType::F32)).backward();
    std::fs::write(
        dir.join("grads_bf16.safetensors"),
        to_safetensors(&model.clone().map(&mut ToGrads(&grads16))).unwrap(),
    )
    .unwrap();
    let (logits, aux) = model.forward_with_aux(tokens);
    let values = logits.clone().into_data().try_to_vec::<f32>().unwrap();
    // The training objective: a mixture-of-experts model's auxiliary losses join the cross-entropy.
    let loss = cross_entropy(logits, targets);
    let loss = aux.map_or(loss.clone(), |a| loss + a);
    let grads = loss.backward();
    std::fs::write(dir.join("weights.safetensors"), to_safetensors(&model).unwrap()).unwrap();
    std::fs::write(dir.join("grads.safetensors"), to_safetensors(&model.clone().map(&mut ToGrads(&grads))).unwrap())
        .unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
    std::fs::write(dir.join("batch.json"), batch_json).unwrap();
    if qwen3next {
        std::fs::write(dir.join("mode"), "qwen3next").unwrap();
    }
    Case { name, dir, logits: values, bf16_logits, n_layers: config.n_layers, qwen3next }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Problems found, and the worst logit error and relative gradient error seen.
fn compare(case: &Case) -> (Vec<String>, f32, f32) {
    let torch = read_safetensors(&case.dir.join("torch.safetensors"));
    let mut problems = Vec::new();
    let err = max_abs_diff(&case.logits, &torch["logits"]);
    if err.is_nan() || err > LOGIT_TOL {
        problems.push(format!("{}: logits differ by {err:.3e}", case.name));
    }
    if case.qwen3next {
        return (problems, err, 0.0);
    }
    let ours: BTreeMap<String, Vec<f32>> = read_safetensors(&case.dir.join("grads.safetensors"));
    let theirs: BTreeMap<String, &Vec<f32>> =
        torch.iter().filter_map(|(k, v)| k.strip_prefix("grad.").map(|n| (n.to_string(), v))).collect();
    let (a, b): (Vec<_>, Vec<_>) = (ours.keys().collect(), theirs.keys().collect());
    if a != b {
        problems.push(format!("{}: parameter names differ: gatelab {a:?}, torch {b:?}", case.name));
        return (problems, err, f32::INFINITY);
    }
    // A case whose formulas lose precision in f32 whoever computes them (softpick's small
    // denominators; a θ gradient summed over every position that nearly cancels) is held to 4×
    // PyTorch's own f32 error on it, where that exceeds GRAD_TOL (the reference measures it for
    // every case).
    let tol = torch.get("f32_grad_error").map_or(GRAD_TOL, |e| GRAD_TOL.max(4.0 * e[0]));
    let mut worst = 0.0f32;
    for (name, g) in &ours {
        let reference = theirs[name];
        let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
        let rel = max_abs_diff(g, reference) / scale;
        worst = worst.max(rel);
        if rel.is_nan() || rel > tol {
            problems.push(format!(
                "{}: gradient of {name} differs by {rel:.3e} (relative; tolerance {tol:.1e})",
                case.name
            ));
        }
    }
    (problems, err, worst)
}

/// bf16's unit roundoff, 2⁻⁸: one rounding moves a value by at most this, relative.
const BF16_U: f32 = 1.0 / 256.0;

/// The bf16 tolerance of a model of `n_layers` blocks, relative to the reference's largest
/// magnitude (of the logits, or of one parameter's gradient), derived by counting roundings.
///
/// The products accumulate in f32, so a dot product's length adds nothing; what bf16 costs is one
/// rounding of each tensor it keeps. Along the forward path those are, per block, the normed
/// input, the Q/K/V projections, the rotated queries and keys, the attention output, the gated
/// output, `W_o`'s output, the residual sum, the second normed input, the FFN's two projections,
/// their SwiGLU product and the down projection: 14; the embedding, the final norm and the head
/// add 3. Taken as adding up in the worst case (each at full size, none cancelling): `(14·L + 3)·u`
/// for the logits. A gradient goes back through the same roundings and through as many again in
/// the backward pass's own bf16 products: twice that.
///
/// That assumes each rounding moves the output by about its own size. Some cases amplify it:
/// sharp softmaxes of queries without QK-norm, unbounded identity gates, a routing choice near a
/// tie, an input-independent gate's θ gradient summed over every position. The reference measures
/// how much (`response`: the change, in f64, when every weight moves by ±u at random, in the same
/// measure). gatelab's pass rounds the `14·L + 3` activations along the path as well as the
/// weights, each moving the output by about the response; adding as a random walk that is
/// `√(14·L + 3)` responses, and the tolerance takes twice that where it is the larger.
fn bf16_tolerance(n_layers: usize, gradient: bool, response: f32) -> f32 {
    let roundings = (14 * n_layers + 3) as f32;
    let forward = roundings * BF16_U;
    let derived = if gradient { 2.0 * forward } else { forward };
    let amplified = if response.is_finite() { 2.0 * roundings.sqrt() * response } else { 0.0 };
    derived.max(amplified)
}

/// The bf16 pass against the reference: problems, and the worst logit and gradient errors as
/// fractions of their tolerances.
fn compare_bf16(case: &Case, torch: &BTreeMap<String, Vec<f32>>) -> (Vec<String>, f32, f32) {
    let mut problems = Vec::new();
    let reference = &torch["logits"];
    let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
    let response = |key: &str| torch.get(key).map_or(f32::NAN, |r| r[0]);
    let logit_tol = bf16_tolerance(case.n_layers, false, response("bf16_logit_response"));
    let logit = max_abs_diff(&case.bf16_logits, reference) / scale;
    if logit.is_nan() || logit > logit_tol {
        problems.push(format!(
            "{} (bf16): logits differ by {logit:.3e} of their largest (tolerance {logit_tol:.1e})",
            case.name
        ));
    }
    if case.qwen3next {
        return (problems, logit / logit_tol, 0.0);
    }
    let ours = read_safetensors(&case.dir.join("grads_bf16.safetensors"));
    let grad_tol = bf16_tolerance(case.n_layers, true, response("bf16_grad_response"));
    let mut worst = 0.0f32;
    for (name, g) in &ours {
        let Some(reference) = torch.get(&format!("grad.{name}")) else { continue };
        let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
        let rel = max_abs_diff(g, reference) / scale;
        worst = worst.max(rel / grad_tol);
        if rel.is_nan() || rel > grad_tol {
            problems.push(format!(
                "{} (bf16): gradient of {name} differs by {rel:.3e} (relative; tolerance {grad_tol:.1e})",
                case.name
            ));
        }
    }
    (problems, logit / logit_tol, worst)
}

#[test]
fn every_design_point_matches_pytorch() {
    let Some(python) = reference_python() else { return };
    let root = tempfile_dir("parity");
    let archs = architectures();
    let mut cases = Vec::new();
    for (i, spec) in GateSpec::enumerate(false).into_iter().enumerate() {
        // The i-th architecture, or the next one that admits this spec (e.g. headwise Q/K gates
        // need qk_norm off).
        let (arch_name, config) = (0..archs.len())
            .map(|k| &archs[(i + k) % archs.len()])
            .map(|(name, arch)| (*name, ModelConfig { gate: spec, ..arch.clone() }))
            .find(|(_, c)| c.validate().is_ok())
            .unwrap_or_else(|| panic!("no architecture admits {}", spec.label()));
        cases.push(write_case(&root, cases.len(), format!("{} [{arch_name}]", spec.label()), &config, false));
    }
    // Every architecture at least once with the baseline and G1 elementwise.
    for (arch_name, arch) in &archs {
        for spec in [GateSpec::BASELINE, GateSpec::G1_ELEMENTWISE] {
            let config = ModelConfig { gate: spec, ..arch.clone() };
            cases.push(write_case(&root, cases.len(), format!("{} [{arch_name}]", spec.label()), &config, false));
        }
    }
    // Every sink cure alone and with G1 elementwise and headwise, cycling the architectures.
    let g1h = GateSpec::at(GatePosition::G1, Granularity::Headwise);
    for (i, cure) in SinkCure::ALL.into_iter().filter(|c| !c.is_softmax()).enumerate() {
        for (j, spec) in [GateSpec::BASELINE, GateSpec::G1_ELEMENTWISE, g1h].into_iter().enumerate() {
            let (arch_name, arch) = &archs[(i + j) % archs.len()];
            let config = ModelConfig { gate: spec, cure, ..arch.clone() };
            let name = format!("{} + {} [{arch_name}]", cure.name(), spec.label());
            cases.push(write_case(&root, cases.len(), name, &config, false));
        }
    }
    // Sigmoid attention's published bias (one constant, −ln n), alone and with G1.
    for (j, spec) in [GateSpec::BASELINE, GateSpec::G1_ELEMENTWISE].into_iter().enumerate() {
        let (arch_name, arch) = &archs[j % archs.len()];
        let cure = SinkCure::Sigmoid { bias: gatelab_model::cure::SigmoidBias::Sequence };
        let config = ModelConfig { gate: spec, cure, ..arch.clone() };
        let name = format!("sigmoid, bias −ln n + {} [{arch_name}]", spec.label());
        cases.push(write_case(&root, cases.len(), name, &config, false));
    }
    // The mixture-of-experts FFN (router included, through its auxiliary losses) and Switch-Head in
    // the paper's Table 6 forms (kv / v; E top-k), alone and with G1, on the dense architectures.
    let moe = |shared: usize, normalize_top_k: bool| MoeSpec {
        experts: 4,
        top_k: 2,
        d_expert: 12,
        shared_experts: shared,
        shared_gate: gatelab_model::SharedGate::None,
        normalize_top_k,
        balance_coef: 0.1,
        z_coef: 0.01,
    };
    let qwen2 = MoeSpec { shared_gate: gatelab_model::SharedGate::Sigmoid, ..moe(1, false) };
    let sh = |experts, top_k, keys, outputs| SwitchHeadSpec {
        experts,
        top_k,
        keys,
        values: true,
        outputs,
        shared_kv_router: false,
    };
    let authors = |experts, top_k| SwitchHeadSpec { shared_kv_router: true, ..sh(experts, top_k, true, false) };
    let sparse = [
        ("moe 4top2", moe(0, true), SwitchHeadSpec::default(), GateSpec::BASELINE),
        ("moe 4top2 + shared, unnormalised", moe(1, false), SwitchHeadSpec::default(), GateSpec::BASELINE),
        ("moe 4top2 + sigmoid-gated shared (Qwen2-MoE)", qwen2, SwitchHeadSpec::default(), GateSpec::BASELINE),
        ("moe 4top2 + G1", moe(0, true), SwitchHeadSpec::default(), GateSpec::G1_ELEMENTWISE),
        ("switch-head kv 4top4", MoeSpec::default(), sh(4, 4, true, false), GateSpec::BASELINE),
        ("switch-head kv 4top2, one K/V router (the authors')", MoeSpec::default(), authors(4, 2), GateSpec::BASELINE),
        ("switch-head kv 3top2 + G1, one K/V router", MoeSpec::default(), authors(3, 2), GateSpec::G1_ELEMENTWISE),
        ("switch-head v 4top2", MoeSpec::default(), sh(4, 2, false, false), GateSpec::BASELINE),
        ("switch-head v 1top1", MoeSpec::default(), sh(1, 1, false, false), GateSpec::BASELINE),
        ("switch-head vo 3top1 + G1", MoeSpec::default(), sh(3, 1, false, true), GateSpec::G1_ELEMENTWISE),
        ("moe 4top2 + switch-head kv 3top2", moe(0, true), sh(3, 2, true, false), GateSpec::BASELINE),
    ];
    for (i, (label, moe, switch_head, gate)) in sparse.into_iter().enumerate() {
        let (arch_name, arch) = &archs[i % 3];
        let config = ModelConfig { moe, switch_head, gate, ..arch.clone() };
        cases.push(write_case(&root, cases.len(), format!("{label} [{arch_name}]"), &config, false));
    }
    // A tie at every place (a zero router): both sides take experts 0 and 1, so their logits and
    // gradients agree only if both break ties by index.
    let config = ModelConfig { moe: moe(0, true), ..archs[0].1.clone() };
    let mut case = write_case_with(&root, cases.len(), "moe 4top2, every router score tied".into(), &config, |m| {
        for layer in &mut m.layers {
            let router = &mut layer.moe.as_mut().expect("experts").router;
            router.weight = Param::from_tensor(router.weight.val().zeros_like().require_grad());
        }
    });
    case.name += " [gqa-tied]";
    cases.push(case);
    // G1 elementwise against transformers' Qwen3NextAttention (an implementation nobody here wrote).
    for (arch_name, arch) in archs.iter().filter(|(_, a)| a.qk_norm) {
        let config = ModelConfig { gate: GateSpec::at(GatePosition::G1, Granularity::Elementwise), ..arch.clone() };
        cases.push(write_case(&root, cases.len(), format!("Qwen3NextAttention [{arch_name}]"), &config, true));
    }
    // The gates since the paper: a narrow input (the first k dimensions of the layer input), and
    // several sites in one model; each named by its label (`x[:k]`, `+`).
    let (g1, g2) = (GateSpec::G1_ELEMENTWISE, GateSpec::at(GatePosition::G2, Granularity::Elementwise));
    let first = |k: usize, spec: GateSpec| GateSpec { input_dims: InputDims::First(k), ..spec };
    let fraction = |n: usize, spec: GateSpec| GateSpec { input_dims: InputDims::Fraction(n), ..spec };
    let act = |activation: GateActivation, spec: GateSpec| GateSpec { activation, ..spec };
    let g1h = GateSpec::at(GatePosition::G1, Granularity::Headwise);
    let zero_2s = GateSpec { init: GateInit::Zero, ..act(GateActivation::ScaledSigmoid, g1) };
    let additive_g4 = GateSpec {
        combination: Combination::Additive,
        ..act(GateActivation::Silu, GateSpec::at(GatePosition::G4, Granularity::Elementwise))
    };
    let shared_g4 = GateSpec {
        sharing: HeadSharing::HeadShared,
        ..act(GateActivation::NsSigmoid, GateSpec::at(GatePosition::G4, Granularity::Elementwise))
    };
    let independent_g2 = GateSpec { input: GateInput::Independent, ..g2 };
    let g5 = GateSpec::at(GatePosition::G5, Granularity::Elementwise);
    let g3 = GateSpec::at(GatePosition::G3, Granularity::Elementwise);
    let norm_g1 = GateSpec { sdpa_nonlinearity: SdpaNonlinearity::RmsNorm, ..g1 };
    let since: [(GateSpec, Vec<GateSpec>); 14] = [
        (first(4, g1), vec![]),
        (first(12, g1), vec![]),
        (fraction(4, g1h), vec![]),
        (first(12, zero_2s), vec![]),
        (first(4, act(GateActivation::Tanh, g2)), vec![]),
        (fraction(2, g5), vec![]),
        (first(4, additive_g4), vec![]),
        (g1, vec![g2]),
        (g1, vec![g5]),
        (first(4, g1h), vec![act(GateActivation::Tanh, g2), g3]),
        (zero_2s, vec![shared_g4]),
        (g1, vec![independent_g2]),
        (norm_g1, vec![first(12, g2)]),
        (act(GateActivation::Tanh, g1), vec![fraction(4, g5)]),
    ];
    for (i, (gate, extra_gates)) in since.into_iter().enumerate() {
        let (arch_name, config) = (0..archs.len())
            .map(|k| &archs[(i + k) % archs.len()])
            .map(|(name, arch)| (*name, ModelConfig { gate, extra_gates: extra_gates.clone(), ..arch.clone() }))
            .find(|(_, c)| c.validate().is_ok())
            .unwrap_or_else(|| panic!("no architecture admits {}", gate.label()));
        cases.push(write_case(&root, cases.len(), format!("{} [{arch_name}]", config.gate_label()), &config, false));
    }

    let status = std::process::Command::new(&python)
        .arg(reference_script())
        .args(cases.iter().map(|c| &c.dir))
        .status()
        .expect("run the PyTorch reference");
    assert!(status.success(), "the PyTorch reference failed ({status})");
    let (mut problems, mut worst_logit, mut worst_grad) = (Vec::new(), 0.0f32, 0.0f32);
    let (mut bf16_problems, mut bf16_logit, mut bf16_grad) = (Vec::new(), 0.0f32, 0.0f32);
    for case in &cases {
        let (p, logit, grad) = compare(case);
        problems.extend(p);
        worst_logit = worst_logit.max(logit);
        worst_grad = worst_grad.max(grad);
        let (p, logit, grad) = compare_bf16(case, &read_safetensors(&case.dir.join("torch.safetensors")));
        bf16_problems.extend(p);
        bf16_logit = bf16_logit.max(logit);
        bf16_grad = bf16_grad.max(grad);
    }
    println!(
        "parity: {} cases compared with PyTorch; worst logit error {worst_logit:.2e} (max abs), worst gradient error {worst_grad:.2e} (relative); {} problems",
        cases.len(),
        problems.len()
    );
    println!(
        "parity in bf16: worst logit error {bf16_logit:.2} of its tolerance, worst gradient error {bf16_grad:.2} of its tolerance; {} problems",
        bf16_problems.len()
    );
    problems.extend(bf16_problems);
    assert!(
        problems.is_empty(),
        "{} of {} cases differ from PyTorch:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn reference_script() -> PathBuf {
    crate::common::manifest_dir().join("tests/reference/gatelab_ref.py")
}
