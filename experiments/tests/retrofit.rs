//! `gatelab retrofit` and `train.trainable`: a gate added to a finished ungated run starts, under
//! `--init identity`, as no gate at all (the parent's logits); frozen parameters end bit-identical
//! to the parent's; the optimiser keeps state for the trainable ones only; and what a retrofit
//! cannot do is refused before anything is written.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{gatelab, scratch, tiny_sweep};
use gatelab::extend::Target;
use gatelab::retrofit::{self, RetrofitInit, RetrofitOptions};
use gatelab_model::Transformer;
use gatelab_model::weights::{load_safetensors, load_safetensors_adding};
use gatelab_rundir::config::{Trainable, TrainableSet};
use gatelab_rundir::{RunDir, runs_under};
use std::path::{Path, PathBuf};

/// Every parameter of `model` by path, as numbers.
fn values(model: &Transformer) -> Vec<(String, Vec<f32>)> {
    struct All {
        path: Vec<String>,
        out: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for All {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.push((self.path.join("."), param.val().into_data().try_to_vec::<f32>().unwrap()));
        }
    }
    let mut all = All { path: vec![], out: vec![] };
    model.visit(&mut all);
    all.out
}

/// A finished run's model, loaded from its final weights.
fn trained(run: &RunDir) -> Transformer {
    let config = run.read_file().unwrap().config;
    load_safetensors(config.model.init(&Device::flex()).unwrap(), &run.file("model.safetensors")).unwrap()
}

fn options(path: &Path, init: RetrofitInit, out: &Path) -> RetrofitOptions {
    RetrofitOptions {
        path: path.to_path_buf(),
        gate: vec![],
        init,
        train: Trainable::Set(TrainableSet::Gate),
        variants: vec!["baseline".into()],
        seq_len: None,
        rope_theta: None,
        steps: 60,
        lr: None,
        name: None,
        control: true,
        control_seq_len: None,
        control_rope_theta: None,
        overrides: vec![],
        out: Some(out.to_path_buf()),
        target: Target { backend: gatelab::backend::Backend::Flex, device_index: 0, devices: vec![] },
    }
}

/// Parents: the tiny preset's baseline, G1 and a cure, two layers, a few hundred steps.
fn parents(dir: &Path) -> PathBuf {
    let grid = dir.join("parents.json");
    std::fs::write(
        &grid,
        r#"{"name": "parents", "variants": [
            {"name": "baseline"},
            {"name": "g1", "set": {"model.gate.position": "g1"}},
            {"name": "cure", "set": {"model.cure": "softpick"}}
        ]}"#,
    )
    .unwrap();
    let out = dir.join("parents");
    let (code, _, err) =
        tiny_sweep(grid.to_str().unwrap(), &out, &["model.n_layers=2", "model.d_ff=64", "train.steps=300"]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn a_retrofit_starts_as_its_parent_and_trains_the_gate_alone() {
    let dir = scratch("retrofit");
    let sweep = parents(&dir);
    let out = dir.join("retrofit");
    let plan = retrofit::plan(&options(&sweep, RetrofitInit::Identity, &out)).unwrap();
    // One child and its control per ungated parent; the child is paired with the control.
    let names: Vec<&str> = plan.runs.iter().map(|(l, _)| l.run.variant.as_str()).collect();
    assert_eq!(names, ["baseline+g1-identity-gate", "baseline+control"]);
    let (child, meta) = &plan.runs[0];
    assert_eq!(meta.baseline.as_ref().unwrap().hash, plan.runs[1].0.hash);
    let spec = child.run.config.model.gate;
    assert_eq!(spec.activation, gatelab_model::GateActivation::ScaledSigmoid);
    assert!(meta.trainable_params.unwrap() > 0 && plan.runs[1].1.trainable_params.is_none());

    // Identity: the child's model at step 0 (the parent's weights and a zero gate, loaded as
    // training loads them) gives the parent's logits.
    let parent = RunDir::new(meta.parent.clone().unwrap());
    let parent_model = trained(&parent);
    let fresh = child.run.config.model.init(&Device::flex()).unwrap();
    let start =
        load_safetensors_adding(fresh, &parent.file("model.safetensors"), |n| n.contains(".attn.gate.")).unwrap();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 1, 4, 1, 5, 9, 2, 6], [1, 8]), &Device::flex());
    let (a, b) = (parent_model.forward(tokens.clone()), start.forward(tokens.clone()));
    let diff = (a - b).abs().max().into_scalar::<f32>();
    assert!(diff <= 1e-6, "the identity retrofit moved the logits by {diff}");
    // Random initialisation does not start there (so the check above can fail).
    let random = retrofit::plan(&RetrofitOptions {
        gate: vec!["activation=sigmoid".into()],
        ..options(&sweep, RetrofitInit::Random, &out)
    })
    .unwrap();
    let fresh = random.runs[0].0.run.config.model.init(&Device::flex()).unwrap();
    let moved =
        load_safetensors_adding(fresh, &parent.file("model.safetensors"), |n| n.contains(".attn.gate.")).unwrap();
    assert!((parent_model.forward(tokens.clone()) - moved.forward(tokens)).abs().max().into_scalar::<f32>() > 1e-3);

    // A gate trained at T paired with continued training at 2T: the control of a retrofit at 2T,
    // the same run (one hash), whichever retrofit plans it.
    let at_t = retrofit::plan(&RetrofitOptions {
        control_seq_len: Some(64),
        control_rope_theta: Some(1e5),
        ..options(&sweep, RetrofitInit::Identity, &out)
    })
    .unwrap();
    let at_2t = retrofit::plan(&RetrofitOptions {
        seq_len: Some(64),
        rope_theta: Some(1e5),
        ..options(&sweep, RetrofitInit::Identity, &out)
    })
    .unwrap();
    let parent_t = parent.read_file().unwrap().config.data.seq_len;
    assert_eq!(at_t.runs[0].0.run.config.data.seq_len, parent_t);
    assert_eq!((at_t.runs[1].0.run.config.data.seq_len, at_t.runs[1].0.run.config.model.rope_theta), (64, 1e5));
    assert_eq!(at_t.runs[1].0.hash, at_2t.runs[1].0.hash);
    assert_eq!(at_t.runs[0].1.baseline.as_ref().unwrap().hash, at_2t.runs[1].0.hash);
    assert_ne!(at_t.runs[0].0.hash, at_2t.runs[0].0.hash);

    // Trained: the frozen parameters are the parent's, bit for bit; the gate moved from zero.
    let (code, stdout, err) = gatelab(&[
        "retrofit",
        sweep.to_str().unwrap(),
        "--variants",
        "baseline",
        "--steps",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("trained"), "the table shows the trained parameter count: {stdout}");
    let runs = runs_under(&out).unwrap();
    let child_dir = runs.iter().find(|r| r.name().starts_with("baseline+g1-identity-gate")).unwrap();
    let after = values(&trained(child_dir));
    let before = values(&parent_model);
    let mut gate_moved = false;
    for (path, v) in &after {
        match before.iter().find(|(p, _)| p == path) {
            Some((_, w)) => assert!(v == w, "{path}: a frozen parameter changed"),
            None => {
                assert!(path.contains(".attn.gate."), "{path}");
                gate_moved |= v.iter().any(|x| *x != 0.0);
            }
        }
    }
    assert!(gate_moved, "the gate did not train");
    let text = std::fs::read_to_string(child_dir.file("config.json")).unwrap();
    assert!(text.contains("\"trainable\": \"gate\"") && text.contains("\"trainable_params\""), "{text}");
    // The control trained everything.
    let control = runs.iter().find(|r| r.name().starts_with("baseline+control")).unwrap();
    let moved = values(&trained(control)).iter().zip(&before).filter(|((_, a), (_, b))| a != b).count();
    assert_eq!(moved, before.len(), "the control trains every parameter");
    // The report pairs each retrofit with its control and with the run it started from.
    let (code, md, err) = gatelab(&["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let against_parent = md.split("## Against the run each started from").nth(1).expect("a table against the parents");
    let row = against_parent.lines().find(|l| l.starts_with("| baseline+g1-identity-gate |")).expect("the child's row");
    assert!(row.contains("| baseline | 1 |") && row.contains(" → "), "{row}");

    // Refused, nothing written: a gated parent, a cure, identity with σ, an unknown pattern.
    let bad = dir.join("bad");
    let refuse = |args: &[&str], says: &str| {
        let mut all = vec!["retrofit", sweep.to_str().unwrap(), "--out", bad.to_str().unwrap()];
        all.extend_from_slice(args);
        let (code, _, err) = gatelab(&all);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says) && err.trim().lines().count() == 1, "{args:?}: {err}");
        assert!(!bad.exists(), "{args:?} wrote {}", bad.display());
    };
    refuse(&["--variants", "g1"], "already has a gate");
    refuse(&["--variants", "cure"], "sink cure");
    refuse(&["--variants", "baseline", "--gate", "activation=sigmoid"], "scaled_sigmoid");
    refuse(&["--variants", "baseline", r#"train.trainable=["layers.*.nothing"]"#], "layers.*.nothing");
    refuse(&["--variants", "nobody"], "nobody");
    let (code, _, err) =
        gatelab(&["retrofit", sweep.to_str().unwrap(), "--out", bad.to_str().unwrap(), "--steps", "1"]);
    assert!(code == 0 && err.contains("2 runs with a gate, a cure or experts left out"), "{err}");
    let (code, help, _) = gatelab(&["retrofit", "--help"]);
    assert!(code == 0 && help.contains("gatelab retrofit results/core"), "{help}");
}

#[test]
fn frozen_parameters_get_no_gradient_and_no_optimiser_state() {
    use burn::optim::GradientsParams;
    let device = Device::flex().autodiff();
    let config = gatelab_model::ModelConfig {
        vocab_size: 17,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 8,
        d_ff: 24,
        gate: gatelab_model::GateSpec::G1_ELEMENTWISE,
        ..gatelab_model::ModelConfig::default()
    };
    let model = config.init(&device).unwrap();
    let selection = gatelab::trainable::select(&model, &Trainable::Set(TrainableSet::Gate)).unwrap();
    assert_eq!(selection.trainable, ["layers.0.attn.gate.gate_proj.weight", "layers.1.attn.gate.gate_proj.weight"]);
    assert_eq!(selection.trainable_params, 2 * 16 * 16);
    let norms = gatelab::trainable::select(&model, &Trainable::Set(TrainableSet::GateAndNorms)).unwrap();
    // Per layer: the gate, attn_norm, ffn_norm (QK-norm's two are on by default), and the final norm.
    assert_eq!(norms.trainable.len(), 2 * 5 + 1, "{:?}", norms.trainable);
    let model = gatelab::trainable::freeze(model, &selection);
    let before = values(&model);
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 5, 2, 7, 3, 3], [1, 6]), &device);
    let mut optim = gatelab::train::adamw(&gatelab_rundir::TrainConfig::default());
    let mut model = model;
    for _ in 0..3 {
        let grads = GradientsParams::from_grads(model.forward(tokens.clone()).sum().backward(), &model);
        assert_eq!(grads.len(), 2, "gradients for the two gate weights only");
        model = optim.step(1e-2, model, grads);
    }
    // AdamW keeps two moments per trained tensor, and none for the frozen ones.
    let record = format!("{:?}", optim.to_record());
    assert!(record.contains("num_tensors: 4"), "{record}");
    for ((path, a), (_, b)) in values(&model).iter().zip(&before) {
        assert_eq!(a != b, path.contains(".attn.gate."), "{path}");
    }
    // A pattern that matches nothing is refused, naming it; so is a gate set on a model without one.
    let err = gatelab::trainable::select(&model, &Trainable::Patterns(vec!["layers.9.*".into()])).unwrap_err();
    assert!(err.to_string().contains("layers.9.*"), "{err}");
    let ungated =
        gatelab_model::ModelConfig { gate: gatelab_model::GateSpec::BASELINE, ..config }.init(&device).unwrap();
    let err = gatelab::trainable::select(&ungated, &Trainable::Set(TrainableSet::Gate)).unwrap_err();
    assert!(err.to_string().contains("no gate"), "{err}");
}
