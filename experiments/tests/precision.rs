//! Mixed precision (`train.precision=bf16`, `gatelab_model::precision`): a bf16 run trains, its
//! loss curve stays within a stated tolerance of the f32 run's from the same initialisation and
//! batches, it saves f32 weights, it resumes from a checkpoint exactly, and a backend without bf16
//! refuses it before anything is written.
//!
//! The tolerance. bf16 keeps 8 significant bits: one rounding is off by at most u = 2⁻⁸ ≈ 0.0039
//! relative. A token's log-likelihood moves by a few u times the spread of its logits (the
//! products accumulate in f32, so a dot product's length adds nothing), but the loss is the mean
//! over the batch's B·T tokens, whose rounding errors are independent and of either sign, so they
//! shrink by √(B·T) (here √2048 ≈ 45) in the mean; what remains is the two runs' trajectories
//! drifting apart. The test holds the bf16 loss to within u of the f32 loss, relative, at every
//! logged step (over 25 times what it measured, 1–2·10⁻⁴) and prints the worst difference.

mod common;

use common::{gatelab, scratch, tiny_sweep_args};
use gatelab_rundir::RunDir;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const U: f64 = 1.0 / 256.0;

fn backends() -> Vec<&'static str> {
    let mut out = vec!["flex"];
    if gatelab::backend::Backend::compiled().iter().any(|b| b.name() == "tch") {
        out.push("tch");
    }
    out
}

fn pair_grid(dir: &std::path::Path) -> std::path::PathBuf {
    let grid = dir.join("pair.json");
    std::fs::write(
        &grid,
        r#"{"name": "pair", "variants": [{"name": "baseline"}, {"name": "g1", "set": {"model.gate.position": "g1"}}]}"#,
    )
    .unwrap();
    grid
}

fn losses(r: &RunDir) -> Vec<f64> {
    r.metrics().unwrap().iter().map(|m| m.loss).collect()
}

/// The dtype names in a safetensors file's header.
fn dtypes(path: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out: Vec<String> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["dtype"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn bf16_trains_within_tolerance_of_f32_and_saves_f32_weights() {
    let dir = scratch("precision");
    let grid = pair_grid(&dir);
    for backend in backends() {
        let sweep = |precision: &str| {
            let out = dir.join(format!("{backend}-{precision}"));
            let (code, _, err) = gatelab(&[
                "sweep",
                grid.to_str().unwrap(),
                "--preset",
                "tiny",
                "--backend",
                backend,
                "--out",
                out.to_str().unwrap(),
                "--no-report",
                "train.steps=150",
                "train.log_every=10",
                &format!("train.precision={precision}"),
            ]);
            assert_eq!(code, 0, "{backend} {precision}: {err}");
            gatelab_rundir::runs_under(&out).unwrap()
        };
        let (full, mixed) = (sweep("f32"), sweep("bf16"));
        assert_eq!(full.len(), 2);
        for (a, b) in full.iter().zip(&mixed) {
            let config = b.read_file().unwrap().config;
            assert_eq!(config.train.precision, gatelab_rundir::config::Precision::Bf16);
            let (la, lb) = (losses(a), losses(b));
            assert_eq!(la.len(), lb.len());
            assert!(lb.iter().all(|l| l.is_finite()), "{backend} {}: {lb:?}", b.name());
            assert!(lb[lb.len() - 1] < lb[0] - 0.5, "{backend} {}: bf16 did not train: {lb:?}", b.name());
            // The runs compute differently: identical curves would mean bf16 never ran.
            assert_ne!(la, lb, "{backend} {}: the bf16 curve is the f32 one", b.name());
            let worst = la.iter().zip(&lb).map(|(x, y)| (x - y).abs() / x).fold(0.0, f64::max);
            println!(
                "{backend} {}: worst |Δloss| / loss over {} logged steps: {worst:.4} (tolerance {:.4})",
                b.name(),
                la.len(),
                U
            );
            assert!(worst <= U, "{backend} {}: f32 {la:?} against bf16 {lb:?}", b.name());
            // Checkpoints and weights are the f32 masters.
            assert_eq!(dtypes(&b.file("model.safetensors")), ["F32"], "{backend} {}", b.name());
        }
        // The default stays out of config.json (older runs keep their hashes); bf16 is named.
        let text = |r: &RunDir| serde_json::to_string(&r.read_file().unwrap().config).unwrap();
        assert!(!text(&full[0]).contains("precision"), "{}", text(&full[0]));
        assert!(text(&mixed[0]).contains("\"precision\":\"bf16\""), "{}", text(&mixed[0]));
    }
}

#[test]
fn bf16_resumes_from_a_checkpoint_exactly() {
    let dir = scratch("precision-resume");
    let grid = dir.join("one.json");
    std::fs::write(&grid, r#"{"name": "one", "variants": [{"name": "g1", "set": {"model.gate.position": "g1"}}]}"#)
        .unwrap();
    let args = |out: &std::path::Path| {
        tiny_sweep_args(
            grid.to_str().unwrap(),
            out,
            &["train.steps=600", "train.checkpoint_every=1000", "train.precision=bf16"],
        )
    };
    // Interrupted (Ctrl-C checkpoints where it stops), then resumed.
    let out = dir.join("interrupted");
    let child = Command::new(env!("CARGO_BIN_EXE_gatelab"))
        .args(args(&out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let metrics = || {
        std::fs::read_dir(&out)
            .ok()
            .and_then(|r| r.flatten().map(|e| e.path().join("metrics.jsonl")).find(|p| p.is_file()))
    };
    while metrics().is_none_or(|p| std::fs::read_to_string(p).unwrap_or_default().lines().count() < 2) {
        assert!(started.elapsed() < Duration::from_secs(300), "the run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let run = RunDir::new(metrics().unwrap().parent().unwrap());
    let step = run.checkpoint().unwrap().expect("checkpointed where it stopped").step;
    assert!(step > 0 && step < 600, "{step}");
    let (code, _, err) = gatelab(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("resuming at step {step}")), "{err}");
    // Uninterrupted.
    let clean = dir.join("clean");
    let (code, _, err) = gatelab(&args(&clean).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let clean = gatelab_rundir::runs_under(&clean).unwrap().remove(0);
    assert_eq!(losses(&run), losses(&clean), "resumed at step {step}");
    assert_eq!(
        std::fs::read(run.file("model.safetensors")).unwrap(),
        std::fs::read(clean.file("model.safetensors")).unwrap(),
        "resumed at step {step}: final weights differ"
    );
}

#[test]
fn bf16_is_refused_where_the_backend_has_none_before_anything_is_written() {
    let dir = scratch("precision-refused");
    let grid = pair_grid(&dir);
    let out = dir.join("out");
    // A misspelt precision is refused by name first.
    let (code, _, err) = gatelab(&[
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--out",
        out.to_str().unwrap(),
        "train.precision=fp8",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("train.precision") && !out.exists(), "{err}");
    let required = std::env::var("GATELAB_REQUIRE_BACKENDS").unwrap_or_default();
    if !gatelab::backend::Backend::compiled().iter().any(|b| b.name() == "wgpu") {
        println!("SKIPPED: this build has no wgpu");
        return;
    }
    let (code, _, err) = gatelab(&[
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--backend",
        "wgpu",
        "--out",
        out.to_str().unwrap(),
        "train.precision=bf16",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(!out.exists(), "{err}");
    // One line of error (after the sweep's header line).
    assert_eq!(err.lines().filter(|l| l.starts_with("gatelab:")).count(), 1, "{err}");
    let err = err.trim().lines().last().unwrap_or_default().to_string();
    if err.contains("not usable here") {
        assert!(!required.split(',').any(|b| b == "wgpu"), "wgpu is required but did not open: {err}");
        println!("SKIPPED the message check: no Vulkan adapter here ({err})");
        return;
    }
    assert!(err.contains("wgpu") && err.contains("bf16") && err.contains("refused"), "{err}");
}
