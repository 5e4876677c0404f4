//! Hugging Face Qwen3-format checkpoints in and out: tiny random models made and saved by
//! `transformers` import with their logits; gatelab exports reload in `transformers` (baseline) or
//! in an independent PyTorch forward of the paper's released layout (gated); malformed
//! directories are refused naming the problem.

use crate::common::{reference_python, tempfile_dir};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_model::hf::{self, GateLayout};
use gatelab_model::{GatePosition, GateSpec, Granularity, ModelConfig, Transformer};
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    crate::common::manifest_dir().join("tests/reference/hf_ref.py")
}

fn python(py: &str, args: &[&str]) {
    let out = Command::new(py).arg(script()).args(args).output().expect("run hf_ref.py");
    assert!(out.status.success(), "hf_ref.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const TOKENS: [[i64; 7]; 2] = [[1, 5, 9, 3, 7, 2, 96], [4, 4, 8, 60, 96, 0, 11]];

fn tokens(device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(TOKENS.concat(), [2, 7]), device)
}

/// Logits of `dir` from the Python side.
fn reference_logits(py: &str, dir: &Path) -> Vec<f32> {
    let tok = dir.join("tokens.json");
    std::fs::write(&tok, serde_json::json!({ "tokens": TOKENS }).to_string()).unwrap();
    let out = dir.join("logits.json");
    python(py, &["logits", dir.to_str().unwrap(), tok.to_str().unwrap(), out.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    v["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn logits(model: &Transformer, device: &Device) -> Vec<f32> {
    model.forward(tokens(device)).into_data().iter::<f32>().collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn transformers_checkpoints_import_with_their_logits() {
    let Some(py) = reference_python() else { return };
    let device = Device::flex();
    let dir = tempfile_dir("hf-import");
    for (kind, flags, layout) in [
        ("qwen3", vec!["--untied", "--shard"], GateLayout::None),
        ("qwen3", vec![], GateLayout::None),
        ("qwen3_next", vec![], GateLayout::HeadInterleaved),
        ("separate", vec![], GateLayout::Separate),
    ] {
        let d = dir.join(format!("{kind}{}", flags.join("")));
        let mut args = vec!["make", kind, d.to_str().unwrap()];
        args.extend(flags.iter().copied());
        python(&py, &args);
        let (model, m) = hf::import(&d, &device).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.layout, layout);
        let expected = reference_logits(&py, &d);
        let got = logits(&model, &device);
        let err = max_diff(&got, &expected);
        let scale = expected.iter().fold(0f32, |a, b| a.max(b.abs()));
        println!("{kind} {flags:?}: max |logit error| {err:.2e} (logits up to {scale:.2})");
        assert!(scale > 0.1, "logits too small to test anything");
        assert!(err <= 1e-4, "{kind} {flags:?}: logits differ by {err}");
    }
}

fn gated_config(gate: GateSpec) -> ModelConfig {
    ModelConfig {
        vocab_size: 97,
        d_model: 64,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 16,
        d_ff: 96,
        tie_embeddings: false,
        init_std: 0.2,
        gate,
        ..ModelConfig::default()
    }
}

#[test]
fn exports_reload_in_transformers_and_the_official_gated_layout() {
    let Some(py) = reference_python() else { return };
    let device = Device::flex();
    let dir = tempfile_dir("hf-export");
    let g1 = |granularity| GateSpec { position: GatePosition::G1, granularity, ..GateSpec::default() };
    // Each gate in each layout that holds it: the paper's KV-grouped one (the default), Qwen3-Next's
    // (reloaded by transformers' own Qwen3NextForCausalLM) and Step-3.5's separate g_proj.
    for (name, gate, layout) in [
        ("baseline", GateSpec::BASELINE, None),
        ("g1-headwise", g1(Granularity::Headwise), None),
        ("g1-elementwise", g1(Granularity::Elementwise), None),
        ("g1-elementwise-qwen3-next", g1(Granularity::Elementwise), Some(GateLayout::HeadInterleaved)),
        ("g1-headwise-separate", g1(Granularity::Headwise), Some(GateLayout::Separate)),
    ] {
        device.seed(7);
        let config = gated_config(gate);
        let model = config.init(&device).unwrap();
        let d = dir.join(name);
        write_checkpoint(&d, hf::export_as(&model, &config, None, layout).unwrap());
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        if layout.is_none() {
            assert_eq!(
                cfg["elementwise_attn_output_gate"].as_bool(),
                (name != "baseline").then_some(name == "g1-elementwise")
            );
        }
        let ours = logits(&model, &device);
        let theirs = reference_logits(&py, &d);
        let err = max_diff(&ours, &theirs);
        println!("{name}: exported, reloaded in PyTorch: max |logit error| {err:.2e}");
        assert!(err <= 1e-4, "{name}: {err}");
        // And back: the exported directory imports to the same model.
        let (back, m) = hf::import(&d, &device).unwrap();
        assert_eq!(m.config.gate, config.gate);
        let expected = match (name, layout) {
            ("baseline", _) => GateLayout::None,
            (_, None) => GateLayout::KvGrouped,
            (_, Some(l)) => l,
        };
        assert_eq!(m.layout, expected);
        assert!(max_diff(&logits(&back, &device), &ours) <= 1e-6);
    }
    // A layout that cannot hold the gate is refused, naming both.
    let headwise = gated_config(g1(Granularity::Headwise));
    let model = headwise.init(&device).unwrap();
    let err = hf::export_as(&model, &headwise, None, Some(GateLayout::HeadInterleaved)).unwrap_err().to_string();
    assert!(err.contains("qwen3-next") && err.contains("headwise"), "{err}");
    let elementwise = gated_config(g1(Granularity::Elementwise));
    let err = hf::export_layout_as(&elementwise, Some(GateLayout::Separate)).unwrap_err().to_string();
    assert!(err.contains("separate") && err.contains("elementwise"), "{err}");
    let two = ModelConfig {
        extra_gates: vec![GateSpec::at(GatePosition::G2, Granularity::Elementwise)],
        ..gated_config(g1(Granularity::Elementwise))
    };
    assert!(hf::export_layout(&two).unwrap_err().to_string().contains("one gate"));
    let attention_only = ModelConfig { d_ff: 0, ..gated_config(GateSpec::BASELINE) };
    let model = attention_only.init(&device).unwrap();
    let err = hf::export(&model, &attention_only, None).unwrap_err().to_string();
    assert!(err.contains("attention-only"), "{err}");
}

#[test]
fn malformed_checkpoints_are_refused_naming_the_problem() {
    let Some(py) = reference_python() else { return };
    let device = Device::flex();
    let dir = tempfile_dir("hf-bad");
    let fresh = |tag: &str, flags: &[&str]| {
        let d = dir.join(tag);
        let mut args = vec!["make", "qwen3", d.to_str().unwrap()];
        args.extend(flags);
        python(&py, &args);
        d
    };
    let edit_config = |d: &Path, key: &str, value: serde_json::Value| {
        let p = d.join("config.json");
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v[key] = value;
        std::fs::write(&p, v.to_string()).unwrap();
    };
    let error = |d: &Path| hf::import(d, &device).expect_err("refused").to_string();
    let d = fresh("shard", &["--shard"]);
    let shard = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("model-00002-of-"))
        .expect("a second shard");
    std::fs::remove_file(d.join(&shard)).unwrap();
    let e = error(&d);
    assert!(e.contains(&format!("missing shard {shard}")), "{e}");
    let d = fresh("shape", &[]);
    edit_config(&d, "intermediate_size", 95.into());
    let e = error(&d);
    assert!(
        e.contains("has shape") && e.contains("the config implies") && e.contains("95") && e.contains(".mlp."),
        "{e}"
    );
    edit_config(&d, "model_type", "llama".into());
    let e = error(&d);
    assert!(e.contains("model_type \"llama\" is not supported"), "{e}");
    edit_config(&d, "model_type", "qwen3_next".into());
    edit_config(&d, "layer_types", serde_json::json!(["linear_attention", "full_attention"]));
    let e = error(&d);
    assert!(e.contains("layer 0 is \"linear_attention\""), "{e}");
    let d = fresh("gated-flag", &[]);
    edit_config(&d, "elementwise_attn_output_gate", true.into());
    let e = error(&d);
    assert!(e.contains("self_attn.q_proj.weight has shape [64, 64], the config implies [128, 64]"), "{e}");
    // A gated q_proj whose config names no layout: refused with the shapes found.
    let exported = dir.join("unnamed-layout-export");
    let config = gated_config(GateSpec::G1_ELEMENTWISE);
    write_checkpoint(&exported, hf::export(&config.init(&device).unwrap(), &config, None).unwrap());
    edit_config(&exported, "elementwise_attn_output_gate", false.into());
    let e = error(&exported);
    assert!(
        e.contains("has shape [128, 64], the config implies [64, 64]")
            && e.contains("64 rows beyond the 64 queries")
            && e.contains("layout the config does not name"),
        "{e}"
    );
    // Two layouts named at once.
    edit_config(&exported, "elementwise_attn_output_gate", true.into());
    edit_config(&exported, "use_head_wise_attn_gate", true.into());
    assert!(error(&exported).contains("one gate layout"));
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    assert!(error(&d).contains("no model.safetensors"));
}

/// Writes an exported checkpoint's files into `dir`.
fn write_checkpoint(dir: &Path, checkpoint: hf::HfCheckpoint) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), checkpoint.config_json).unwrap();
    std::fs::write(dir.join("model.safetensors"), checkpoint.weights).unwrap();
}

/// Every field the authors' `modeling_qwen3.py` (qiuzh20/gated_attention @49645df) reads from its
/// config, less those `PretrainedConfig` supplies itself (`_attn_implementation`, `output_*`,
/// `use_return_dict`, `num_labels`, `problem_type`, `classifier_dropout` and the like): their
/// configuration class does not define `qkv_bias`, so a G1 export that left it out would not load.
const AUTHORS_FIELDS: [&str; 22] = [
    "attention_dropout",
    "elementwise_attn_output_gate",
    "head_dim",
    "headwise_attn_output_gate",
    "hidden_act",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "max_position_embeddings",
    "max_window_layers",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "pad_token_id",
    "qkv_bias",
    "rms_norm_eps",
    "rope_scaling",
    "rope_theta",
    "sliding_window",
    "use_qk_norm",
    "use_sliding_window",
    "vocab_size",
];

#[test]
fn a_g1_export_carries_every_field_the_authors_code_reads() {
    let device = Device::flex();
    for granularity in [Granularity::Elementwise, Granularity::Headwise] {
        let config = gated_config(GateSpec { granularity, ..GateSpec::G1_ELEMENTWISE });
        let model = config.init(&device).unwrap();
        let checkpoint = hf::export(&model, &config, Some([94, 95, 96])).unwrap();
        let json: serde_json::Value = serde_json::from_str(&checkpoint.config_json).unwrap();
        for field in AUTHORS_FIELDS {
            assert!(json.get(field).is_some(), "{granularity:?} export lacks {field}: {json}");
        }
        assert_eq!((json["qkv_bias"].as_bool(), json["use_qk_norm"].as_bool()), (Some(false), Some(true)));
        let gates = (json["elementwise_attn_output_gate"].as_bool(), json["headwise_attn_output_gate"].as_bool());
        let expected =
            if granularity == Granularity::Elementwise { (Some(true), Some(false)) } else { (Some(false), Some(true)) };
        assert_eq!(gates, expected);
        assert_eq!(json["use_sliding_window"].as_bool(), Some(false));
    }
}
