//! The sweep harness: expansion of grids and overrides, run folders, resume after SIGKILL,
//! refusal of bad grids before anything is written, shards, divergence.

use gatelab::backend::Backend;
use gatelab::config::preset;
use gatelab::grid::{self, Grid};
use gatelab::sweep::{self, SweepOptions};
use gatelab_rundir::{RunDir, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// The tests of this file train on flex; run concurrently they split the CPU's threads
/// differently, which changes floating-point sums and so the trajectories. One at a time, each
/// run is reproducible.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch(tag: &str) -> PathBuf {
    common::scratch(&format!("sweep-{tag}"))
}

fn options(grid: &str, out: &Path, overrides: &[&str]) -> SweepOptions {
    SweepOptions {
        grid: grid.into(),
        preset: "tiny".into(),
        backend: Backend::Flex,
        device_index: 0,
        devices: vec![],
        data: None,
        out: Some(out.into()),
        shard: None,
        seeds: 1,
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        variants: vec![],
    }
}

fn gatelab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatelab")).args(args).output().unwrap()
}

/// Every file under `dir` with its bytes, less the run folders' `.lock` files (which name the last
/// process that took the lock, not a result).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p)
            } else if !p.ends_with(".lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_tiny_sweep_of_the_core_grid_completes() {
    let _serial = serial();
    let out = scratch("core");
    let rows = sweep::run(&options("core", &out, &[])).unwrap();
    assert_eq!(rows.len(), 5);
    for r in &rows {
        assert_eq!(r.status, Status::Done, "{}", r.variant);
        for file in ["config.json", "status.json", "metrics.jsonl", "eval.jsonl", "dynamics.jsonl", "model.safetensors"]
        {
            assert!(r.dir.join(file).is_file(), "{}: {file}", r.dir.display());
        }
        assert!(!r.dir.join("checkpoint.json").exists(), "checkpoints are removed when a run is done");
        let run = sweep::read_run_file(&r.dir).unwrap();
        assert_eq!(run.meta.variant, r.variant);
        assert_eq!(run.meta.backend, "flex");
        assert!(r.valid_loss.unwrap().is_finite());
        assert!(!RunDir::new(&r.dir).dynamics().unwrap().is_empty(), "sink dynamics were recorded");
    }
    // Analysis reads the run folders (not the training code) and writes analysis.json.
    let device = burn::tensor::Device::flex();
    for r in &rows {
        let a = gatelab_analysis::run::analyze_run(&RunDir::new(&r.dir), &device, &Default::default()).unwrap();
        assert_eq!(a.stats.sequences, 64, "the tiny preset's whole analysis split");
        assert_eq!(a.stats.layers.len(), 1);
        assert_eq!(a.stats.gate_mean().is_some(), r.variant != "baseline");
        let f = a.stats.first_token_attention();
        assert!(f > 0.0 && f < 1.0);
        if r.variant == "baseline" {
            // The positive control: the baseline grows a first-token sink at the tiny preset.
            let best = a.stats.layers.iter().map(|l| l.first_token_attention[1]).fold(0.0, f64::max);
            println!("tiny baseline F-Attn (best layer): {best:.3}");
            assert!(best > 0.5, "baseline F-Attn {best} at the tiny preset: no sink");
        }
        assert!(r.dir.join("analysis.json").is_file());
        let png = std::fs::read(r.dir.join("attention_maps.png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        assert!(std::fs::read_to_string(r.dir.join("attention_maps.csv")).unwrap().lines().count() > 32 * 33 / 2);
    }
    // The report reads the folders and says what the baseline shows.
    let report = gatelab_analysis::report::write(&out).unwrap();
    let summary = &report.summary;
    assert_eq!(summary.groups.len(), 5);
    assert!(report.finding.starts_with("The baseline has a first-token sink (one seed)"), "{}", report.finding);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| g1-elementwise | Table 1 row 5 |"), "{md}");
    assert!(md.contains("- **grid**: core") && md.contains("- **preset**: tiny"), "{md}");
    assert_eq!(std::fs::read_to_string(out.join("summary.csv")).unwrap().lines().count(), 6);
    let stems: Vec<&str> = report.charts().map(|c| c.stem.as_str()).collect();
    assert_eq!(
        stems,
        [
            "first_token_attention_per_layer",
            "first_token_attention_vs_baseline",
            "first_token_attention_over_training",
            "val_loss",
            "val_loss_vs_baseline",
            "loss_curves",
            "max_activation_per_layer",
            "top_activations_per_layer",
            "max_activation_over_training",
            "gate_scores",
            "gate_mean",
            "gate_mean_over_training",
            "gate_saturation_over_training",
            "gate_logit_over_training"
        ]
    );
    for stem in &stems {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{stem}.svg");
        let csv = std::fs::read_to_string(out.join(format!("{stem}.csv"))).unwrap();
        assert!(csv.lines().count() > 2, "{stem}.csv holds the plotted numbers");
    }
    let side = gatelab_analysis::report::compare(summary, summary, "A", "B");
    assert!(side.contains("| g1-elementwise |") && side.contains("+0.0000"), "{side}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), stems.len() + 5, "every chart and every variant's attention maps inline");
    // A rerun skips every finished run and changes no file.
    let before = snapshot(&out);
    sweep::run(&options("core", &out, &[])).unwrap();
    let mut after = snapshot(&out);
    after.retain(|p, _| !p.ends_with("sweep.json"));
    let mut before = before;
    before.retain(|p, _| !p.ends_with("sweep.json"));
    assert!(before.keys().any(|p| p.ends_with("summary.md")));
    assert_eq!(before, after);
}

#[test]
fn overrides_and_comma_lists_expand_and_key_the_folders() {
    let _serial = serial();
    let grid = grid::load("core").unwrap();
    let preset = preset("tiny").unwrap();
    let runs = grid::plan(&grid, &preset, None, &["train.lr=1e-3,2e-3".into(), "model.d_model=48".into()], 2).unwrap();
    assert_eq!(runs.len(), 5 * 2 * 2);
    assert_eq!(runs[0].overrides, vec!["train.lr=0.001", "model.d_model=48"]);
    assert_eq!((runs[0].config.train.lr, runs[0].config.train.seed), (1e-3, 0));
    assert_eq!((runs[1].config.train.lr, runs[1].config.train.seed), (1e-3, 1));
    assert_eq!(runs[2].config.train.lr, 2e-3);
    assert!(runs.iter().all(|r| r.config.model.d_model == 48));
    assert_eq!(runs[4].variant, "g1-elementwise");
    // The folder follows the resolved config: a changed override, a new folder.
    let out = scratch("keys");
    let a = sweep::plan(&options("core", &out, &["train.lr=1e-3"])).unwrap().runs;
    let b = sweep::plan(&options("core", &out, &["train.lr=1e-3"])).unwrap().runs;
    let c = sweep::plan(&options("core", &out, &["train.lr=2e-3"])).unwrap().runs;
    assert_eq!(a[0].dir.path, b[0].dir.path);
    assert_ne!(a[0].dir.path, c[0].dir.path);
    assert!(a[0].dir.path.file_name().unwrap().to_str().unwrap().starts_with("baseline-"));
    // Unknown keys are refused by name.
    let err = grid::plan(&grid, &preset, None, &["train.lrr=1".into()], 1).unwrap_err().one_line();
    assert!(err.contains("no field lrr in train"), "{err}");
}

#[test]
fn bad_grids_are_refused_before_anything_is_written() {
    let _serial = serial();
    let dir = scratch("bad");
    let out = dir.join("results");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let cases = [
        (
            write("unknown-field.json", r#"{"name": "g", "variants": [{"name": "a", "colour": "red"}]}"#),
            "unknown field `colour`",
        ),
        (
            write("bad-key.json", r#"{"name": "g", "variants": [{"name": "a", "set": {"model.d_modle": 3}}]}"#),
            "variant a: override model.d_modle: no field d_modle in model",
        ),
        (
            write(
                "heads.json",
                r#"{"name": "g", "variants": [{"name": "ok"}, {"name": "b", "set": {"model.n_heads": 4, "model.n_kv_heads": 3}}]}"#,
            ),
            "variant b: model.n_kv_heads: 3 does not divide n_heads = 4",
        ),
        (
            write(
                "gate.json",
                r#"{"name": "g", "variants": [{"name": "c", "set": {"model.gate.position": "g5", "model.gate.granularity": "headwise"}}]}"#,
            ),
            "variant c: model.gate.granularity: headwise has no meaning at position g5",
        ),
        (
            write("twice.json", r#"{"name": "g", "variants": [{"name": "a"}, {"name": "a"}]}"#),
            "variant a appears twice",
        ),
        (dir.join("missing.json").display().to_string(), "no such grid file"),
    ];
    for (grid, expected) in &cases {
        let output = gatelab(&["sweep", grid, "--preset", "tiny", "--out", &out.display().to_string()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{grid}: {stderr}");
        assert!(stderr.contains(expected), "{grid}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!out.exists(), "{grid}: the results folder was touched");
    }
}

#[test]
fn shards_cover_the_grid_exactly_once() {
    let _serial = serial();
    let grid = grid::load("paper").unwrap();
    let runs = grid::plan(&grid, &preset("tiny").unwrap(), None, &[], 1).unwrap();
    assert!(runs.len() >= 30);
    let mut seen: Vec<String> = (1..=3).flat_map(|i| grid::shard(runs.clone(), i, 3)).map(|r| r.variant).collect();
    seen.sort();
    let mut all: Vec<String> = runs.iter().map(|r| r.variant.clone()).collect();
    all.sort();
    assert_eq!(seen, all);
    assert!(
        grid::parse_shard("0/3").is_err()
            && grid::parse_shard("4/3").is_err()
            && grid::parse_shard("2/3").ok() == Some((2, 3))
    );
}

#[test]
fn a_diverging_run_is_recorded_and_the_sweep_goes_on() {
    let _serial = serial();
    let dir = scratch("diverge");
    let grid: Grid = serde_json::from_value(serde_json::json!({
        "name": "diverge",
        "variants": [
            {"name": "absurd-lr", "set": {"train.lr": 1e4, "train.grad_clip": 0.0}},
            {"name": "fine"}
        ]
    }))
    .unwrap();
    let path = dir.join("grid.json");
    std::fs::write(&path, serde_json::to_string(&grid).unwrap()).unwrap();
    let rows = sweep::run(&options(&path.display().to_string(), &dir.join("out"), &[])).unwrap();
    match &rows[0].status {
        Status::Diverged { step, .. } => assert!(*step >= 1 && *step <= 100, "diverged late: {step}"),
        other => panic!("absurd-lr: {other:?}"),
    }
    assert_eq!(rows[1].status, Status::Done);
}

#[test]
fn sigkill_then_rerun_finishes_every_run_and_keeps_finished_ones_byte_identical() {
    let _serial = serial();
    let dir = scratch("kill");
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let args = ["sweep", "core", "--preset", "tiny", "--out", &out_s, "train.steps=300", "train.checkpoint_every=20"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatelab"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until two runs are done and a third has a checkpoint, then kill -9.
    let started = Instant::now();
    let status_of = |p: &Path| std::fs::read_to_string(p.join("status.json")).unwrap_or_default();
    loop {
        let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
            .map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        let done = dirs.iter().filter(|d| status_of(d).contains("\"done\"")).count();
        // A run mid-way: checkpointed and not done (a run that has just finished keeps its
        // checkpoint.json for an instant after status.json says done).
        let mid = dirs.iter().any(|d| d.join("checkpoint.json").exists() && !status_of(d).contains("\"done\""));
        if done >= 2 && mid {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(300), "timed out waiting for the sweep");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| status_of(p).contains("\"done\""))
        .collect();
    let before: Vec<_> = finished.iter().map(|d| snapshot(d)).collect();
    // Almost always the run that was checkpointed; if the kill landed just as it finished, none is.
    let interrupted = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("checkpoint.json").exists() && !status_of(p).contains("\"done\""));

    let rerun = gatelab(&args);
    assert!(rerun.status.success(), "{}", String::from_utf8_lossy(&rerun.stderr));
    assert_eq!(interrupted.is_some(), String::from_utf8_lossy(&rerun.stderr).contains("resuming at step"));
    // Every file of a run finished before the kill is byte-identical (the report may add its
    // analysis files, analysis.json and attention_maps.*, beside them).
    for (d, snap) in finished.iter().zip(&before) {
        let after = snapshot(d);
        for (path, bytes) in snap {
            assert!(after.get(path) == Some(bytes), "{} changed or vanished", path.display());
        }
        let analysis_output = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "analysis.json" || n.starts_with("attention_maps."))
        };
        assert!(
            after.keys().all(|p| snap.contains_key(p) || analysis_output(p)),
            "{}: unexpected new files",
            d.display()
        );
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["status"]["state"] == "done"), "{rows:?}");

    // The resumed run ends where an uninterrupted one does (same batches, restored optimiser).
    let Some(interrupted) = interrupted else {
        println!("the kill landed between two runs; the resume comparison did not apply this time");
        return;
    };
    let name = interrupted.file_name().unwrap().to_str().unwrap().to_string();
    let clean = dir.join("clean");
    let variant = name.rsplit_once('-').unwrap().0;
    let grid_file = dir.join("one.json");
    std::fs::write(&grid_file, serde_json::json!({"name": "core", "variants": [grid::load("core").unwrap().variants.into_iter().find(|v| v.name == variant).unwrap()]}).to_string()).unwrap();
    let output = gatelab(&[
        "sweep",
        &grid_file.display().to_string(),
        "--preset",
        "tiny",
        "--out",
        &clean.display().to_string(),
        "train.steps=300",
        "train.checkpoint_every=20",
    ]);
    assert!(output.status.success());
    let last_eval =
        |d: &Path| std::fs::read_to_string(d.join("eval.jsonl")).unwrap().lines().last().unwrap().to_string();
    assert_eq!(last_eval(&interrupted), last_eval(&clean.join(&name)));
    let lines = std::fs::read_to_string(interrupted.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "metrics have no repeated or torn lines: {steps:?}");
}

#[test]
fn data_parallel_over_two_devices_trains_as_one() {
    let _serial = serial();
    let dir = scratch("ddp");
    let grid = dir.join("pair.json");
    std::fs::write(
        &grid,
        r#"{"name": "pair", "variants": [{"name": "baseline"}, {"name": "g1", "set": {"model.gate.position": "g1"}}]}"#,
    )
    .unwrap();
    let grid = grid.display().to_string();
    let one = options(&grid, &dir.join("one"), &["train.steps=100", "train.warmup_steps=10", "train.log_every=10"]);
    // Two replicas on the one flex device: the same code path as two GPUs, shards and all.
    let two = SweepOptions { out: Some(dir.join("two")), devices: vec![0, 0], ..one.clone() };
    let (a, b) = (sweep::run(&one).unwrap(), sweep::run(&two).unwrap());
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(sweep::read_run_file(&rb.dir).unwrap().meta.devices, vec![0, 0]);
        let losses = |d: &Path| RunDir::new(d).metrics().unwrap().iter().map(|m| m.loss).collect::<Vec<_>>();
        let (la, lb) = (losses(&ra.dir), losses(&rb.dir));
        assert_eq!(la.len(), 10);
        let worst = la.iter().zip(&lb).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        println!("{}: worst |loss difference| over 100 steps, 1 device against 2: {worst:.2e}", ra.variant);
        assert!(worst < 1e-5, "{}: {la:?} vs {lb:?}", ra.variant);
        // A run that diverges would differ wildly; these trained.
        assert!(la[9] < la[0] - 0.3, "{la:?}");
    }
}

#[test]
fn sigint_checkpoints_marks_the_run_interrupted_and_the_rerun_resumes() {
    let _serial = serial();
    let dir = scratch("sigint");
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let grid = dir.join("one.json");
    std::fs::write(&grid, r#"{"name": "one", "variants": [{"name": "baseline"}]}"#).unwrap();
    let args = [
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--out",
        &out_s,
        "--no-report",
        "train.steps=4000",
        "train.checkpoint_every=1000",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_gatelab"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it trains (a metrics line), then Ctrl-C.
    let started = Instant::now();
    let metrics = || {
        std::fs::read_dir(&out)
            .ok()
            .and_then(|r| r.flatten().map(|e| e.path().join("metrics.jsonl")).find(|p| p.is_file()))
    };
    while metrics().is_none_or(|p| std::fs::read_to_string(p).unwrap_or_default().lines().count() < 2) {
        assert!(started.elapsed() < Duration::from_secs(120), "the run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("gatelab: interrupted: ") && last.contains("rerun the same command to resume"),
        "{stderr}"
    );
    let run = RunDir::new(metrics().unwrap().parent().unwrap());
    let Status::Interrupted { step } = run.status().unwrap() else { panic!("{:?}", run.status()) };
    assert!(step > 0 && step < 4000, "{step}");
    assert_eq!(run.checkpoint().unwrap().map(|c| c.step), Some(step), "checkpointed where it stopped");
    // The rerun resumes from there and finishes.
    let rerun = gatelab(&args);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("resuming at step {step}")), "{stderr}");
    assert_eq!(run.status().unwrap(), Status::Done);
}
