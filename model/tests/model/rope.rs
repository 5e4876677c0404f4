//! RoPE scaling: each method's frequencies and attention factor against `transformers`' own RoPE
//! initialisation functions (to 1e-6 relative), and every method equal to plain RoPE at factor 1.

use crate::common::{reference_python, tempfile_dir};
use gatelab_model::RopeScaling;
use gatelab_model::rope::inv_freq;

fn yarn(factor: f64, original_max_position: usize) -> RopeScaling {
    RopeScaling::Yarn { factor, original_max_position, beta_fast: 32.0, beta_slow: 1.0 }
}

#[test]
fn every_method_is_plain_rope_at_factor_one() {
    let (plain, one) = inv_freq(64, 10_000.0, RopeScaling::None);
    assert_eq!(one, 1.0);
    for scaling in [RopeScaling::Linear { factor: 1.0 }, RopeScaling::Ntk { factor: 1.0 }, yarn(1.0, 128)] {
        let (f, a) = inv_freq(64, 10_000.0, scaling);
        assert_eq!(a, 1.0, "{scaling:?}");
        for (x, y) in f.iter().zip(&plain) {
            assert!((x - y).abs() <= 1e-15 * y.abs(), "{scaling:?}: {x} vs {y}");
        }
    }
    // And a real factor changes them (the check above can fail).
    assert_ne!(inv_freq(64, 10_000.0, yarn(4.0, 128)).0, plain);
}

/// (ours, transformers' rope_type, its rope_scaling, max_position_embeddings, seq_len, head_dim,
/// base).
type RopeCase = (RopeScaling, &'static str, serde_json::Value, usize, Option<usize>, usize, f64);

#[test]
fn frequencies_and_temperature_match_transformers() {
    let Some(python) = reference_python() else { return };
    // (ours, transformers' rope_type, its rope_scaling, max_position_embeddings, seq_len, head_dim, base)
    let cases: Vec<RopeCase> = vec![
        (RopeScaling::Linear { factor: 4.0 }, "linear", serde_json::json!({"factor": 4.0}), 128, None, 64, 1e4),
        // Dynamic NTK at the length where its multiplier (s·L/L₀ − (s − 1)) equals s is static NTK.
        (
            RopeScaling::Ntk { factor: 4.0 },
            "dynamic",
            serde_json::json!({"factor": 4.0}),
            128,
            Some(128 * 7 / 4),
            64,
            1e4,
        ),
        (
            yarn(4.0, 128),
            "yarn",
            serde_json::json!({"factor": 4.0, "original_max_position_embeddings": 128}),
            128,
            None,
            64,
            1e4,
        ),
        (
            yarn(8.0, 256),
            "yarn",
            serde_json::json!({"factor": 8.0, "original_max_position_embeddings": 256}),
            256,
            None,
            128,
            1e6,
        ),
        (
            yarn(2.0, 4096),
            "yarn",
            serde_json::json!({"factor": 2.0, "original_max_position_embeddings": 4096}),
            4096,
            None,
            32,
            5e5,
        ),
    ];
    let json: Vec<_> = cases
        .iter()
        .map(|(_, kind, scaling, max_pos, seq_len, hd, base)| {
            serde_json::json!({"rope_type": kind, "rope_scaling": scaling, "max_position_embeddings": max_pos, "seq_len": seq_len, "head_dim": hd, "base": base})
        })
        .collect();
    let dir = tempfile_dir("rope");
    let path = dir.join("cases.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let script = crate::common::manifest_dir().join("tests/reference/rope_ref.py");
    let output = std::process::Command::new(&python).arg(&script).arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let reference: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    for ((scaling, kind, _, _, _, hd, base), r) in cases.iter().zip(&reference) {
        let (ours, factor) = inv_freq(*hd, *base, *scaling);
        let theirs: Vec<f64> = r["inv_freq"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(ours.len(), theirs.len(), "{kind}");
        // transformers computes in float32: 1e-6 relative is its precision.
        for (i, (x, y)) in ours.iter().zip(&theirs).enumerate() {
            assert!((x - y).abs() <= 1e-6 * y.abs(), "{kind} {scaling:?}: θ_{i} {x} vs {y}");
        }
        let theirs_factor = r["attention_factor"].as_f64().unwrap();
        assert!((factor - theirs_factor).abs() <= 1e-6, "{kind}: attention factor {factor} vs {theirs_factor}");
    }
    println!("rope: {} scaling cases match transformers", cases.len());
}
