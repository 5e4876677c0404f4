//! A results folder against the accidents of a shared cluster: two sweeps into one folder, a
//! checkpoint damaged in place, weights that vanish, identical runs that must give identical
//! bytes, and a signal during a report.

use gatelab_rundir::{RunDir, Status, runs_under};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{gatelab, scratch, tiny_sweep};

/// One at a time: the trajectories depend on how the CPU's threads are split.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gatelab")).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn grid(dir: &Path, variants: &str) -> String {
    let path = dir.join("grid.json");
    std::fs::write(&path, format!(r#"{{"name": "g", "variants": [{variants}]}}"#)).unwrap();
    path.display().to_string()
}

/// A log's lines without the field that depends on the clock (tokens per second).
fn log_without_timing(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("tokens_per_s");
            v
        })
        .collect()
}

#[test]
fn two_sweeps_started_together_train_each_run_once() {
    let _serial = serial();
    let dir = scratch("integrity-two");
    let grid = grid(&dir, r#"{"name": "baseline"}, {"name": "g1", "set": {"model.gate.position": "g1"}}"#);
    let (shared, clean) = (dir.join("shared").display().to_string(), dir.join("clean").display().to_string());
    let args = |out: &str| {
        ["sweep", &grid, "--preset", "tiny", "--seeds", "2", "--out", out, "train.steps=1500"]
            .map(String::from)
            .to_vec()
    };
    let shared_args = args(&shared);
    let shared_args: Vec<&str> = shared_args.iter().map(String::as_str).collect();
    let (a, b) = (spawn(&shared_args), spawn(&shared_args));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let stderr = format!("{}\n{}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success() && b.status.success(), "{stderr}");
    println!("held lines: {}", stderr.lines().filter(|l| l.contains("held by pid")).count());
    let clean_args = args(&clean);
    let (code, _, err) = gatelab(&clean_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let (shared_runs, clean_runs) = (runs_under(Path::new(&shared)).unwrap(), runs_under(Path::new(&clean)).unwrap());
    assert_eq!(shared_runs.len(), 4);
    for (s, c) in shared_runs.iter().zip(&clean_runs) {
        assert_eq!(s.name(), c.name());
        assert_eq!(s.status().unwrap(), Status::Done, "{}", s.name());
        for log in ["metrics.jsonl", "eval.jsonl", "dynamics.jsonl"] {
            assert_eq!(log_without_timing(&s.file(log)), log_without_timing(&c.file(log)), "{}: {log}", s.name());
        }
        let weights = |r: &RunDir| std::fs::read(r.file("model.safetensors")).unwrap();
        assert!(weights(s) == weights(c), "{}: the weights differ from a clean sweep's", s.name());
        assert!(std::fs::read_to_string(s.file(".lock")).unwrap().starts_with("pid "));
    }
    // No temporary file is left behind by either process.
    for run in &shared_runs {
        for entry in std::fs::read_dir(&run.path).unwrap().flatten() {
            assert!(!entry.file_name().to_string_lossy().ends_with(".tmp"), "{}", entry.path().display());
        }
    }
}

#[test]
fn a_flipped_byte_in_a_checkpoint_resumes_from_the_previous_one_to_the_same_weights() {
    let _serial = serial();
    let dir = scratch("integrity-flip");
    let grid = grid(&dir, r#"{"name": "baseline"}"#);
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let args = [
        "sweep",
        &grid,
        "--preset",
        "tiny",
        "--out",
        &out_s,
        "--no-report",
        "train.steps=6000",
        "train.checkpoint_every=500",
    ];
    let child = spawn(&args);
    let started = Instant::now();
    let second = || {
        std::fs::read_dir(&out).ok().and_then(|r| {
            r.flatten().map(|e| e.path()).find(|p| p.join("checkpoint-1000").join("checkpoint.json").is_file())
        })
    };
    let run = loop {
        if let Some(run) = second() {
            break RunDir::new(run);
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no second checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    };
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let Status::Interrupted { step } = run.status().unwrap() else { panic!("{:?}", run.status()) };
    let newest = run.resume_point().unwrap().checkpoint.unwrap();
    assert_eq!(newest.step, step);
    let previous = (step - 1) / 500 * 500;
    assert!(run.path.join(format!("checkpoint-{previous}")).is_dir(), "the previous checkpoint is kept");

    // One byte of the newest model file flipped, at the same size.
    let model = run.checkpoint_model(&newest);
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x10;
    std::fs::write(&model, bytes).unwrap();
    let (code, _, err) = gatelab(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("checkpoint-{step}/model.bpk fails its checksum")), "{err}");
    assert!(err.contains(&format!("resuming from the previous checkpoint, checkpoint-{previous}")), "{err}");
    assert!(err.contains(&format!("resuming at step {previous}")), "{err}");

    // The same weights as a run never interrupted.
    let clean = dir.join("clean").display().to_string();
    let (code, _, err) = tiny_sweep(&grid, Path::new(&clean), &["train.steps=6000", "train.checkpoint_every=500"]);
    assert_eq!(code, 0, "{err}");
    let weights = |d: &Path| std::fs::read(d.join(run.name()).join("model.safetensors")).unwrap();
    assert!(weights(&out) == weights(Path::new(&clean)), "the fallback resume ended elsewhere");
    let steps: Vec<u64> =
        log_without_timing(&run.file("metrics.jsonl")).iter().map(|v| v["step"].as_u64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]) && steps.last() == Some(&6000), "{steps:?}");
}

/// The safetensors header's JSON text.
fn header(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    String::from_utf8(bytes[8..8 + n].to_vec()).unwrap()
}

#[test]
fn identical_runs_give_byte_identical_weights() {
    let _serial = serial();
    let dir = scratch("integrity-bytes");
    let grid = grid(&dir, r#"{"name": "g1", "set": {"model.gate.position": "g1"}}"#);
    let mut files = Vec::new();
    for k in 0..3 {
        let out = dir.join(format!("out{k}")).display().to_string();
        let (code, _, err) = tiny_sweep(&grid, Path::new(&out), &["train.steps=200"]);
        assert_eq!(code, 0, "{err}");
        files.push(runs_under(Path::new(&out)).unwrap()[0].file("model.safetensors"));
    }
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(bytes.windows(2).all(|w| w[0] == w[1]), "identical runs wrote different bytes");
    // The metadata's keys stand in sorted order (Burn writes them from a hash map).
    let text = header(&files[0]);
    let keys: Vec<usize> =
        ["\"format\"", "\"producer\"", "\"version\""].iter().map(|k| text.find(k).unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.find("\"__metadata__\"").unwrap() < text.find("\"embed_tokens.weight\"").unwrap(), "{text}");
}

#[test]
fn vanished_weights_are_reported_and_retrained_and_analysis_goes_on_past_them() {
    let _serial = serial();
    let dir = scratch("integrity-vanished");
    let grid = grid(&dir, r#"{"name": "baseline"}"#);
    let out = dir.join("out").display().to_string();
    let args = ["sweep", &grid, "--preset", "tiny", "--seeds", "2", "--out", &out, "train.steps=600"];
    let (code, _, err) = gatelab(&args);
    assert_eq!(code, 0, "{err}");
    let runs = runs_under(Path::new(&out)).unwrap();
    let lost = &runs[0];
    let original = std::fs::read(lost.file("model.safetensors")).unwrap();
    std::fs::remove_file(lost.file("model.safetensors")).unwrap();

    let (code, _, err) = gatelab(&["report", &out]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(Path::new(&out).join("summary.md")).unwrap();
    assert!(md.contains("## Runs left out of the means"), "{md}");
    let row = md.lines().find(|l| l.starts_with(&format!("| {} |", lost.name()))).unwrap();
    assert!(row.contains("weights missing") && row.contains("~~"), "{row}");
    assert!(md.contains("1 done, 1 weights missing"), "{md}");

    // analyze names the run it cannot analyse, analyses the other, and exits non-zero.
    let (code, stdout, err) = gatelab(&["analyze", &out]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{}: not analysed: ", lost.name())) && err.contains("weights missing"), "{err}");
    assert!(stdout.contains(&runs[1].name()), "{stdout}");
    assert!(err.lines().last().unwrap().contains("1 run(s) could not be analysed"), "{err}");

    // The sweep trains it again, to the same bytes.
    let (code, _, err) = gatelab(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("done, but weights missing"), "{err}");
    assert!(std::fs::read(lost.file("model.safetensors")).unwrap() == original);
    let md = std::fs::read_to_string(Path::new(&out).join("summary.md")).unwrap();
    assert!(!md.contains("Runs left out"), "{md}");
}

#[test]
fn sigterm_during_a_report_stops_it_with_a_non_zero_exit() {
    let _serial = serial();
    let dir = scratch("integrity-term");
    let out = dir.join("out").display().to_string();
    let (code, _, err) = tiny_sweep("core", Path::new(&out), &["train.steps=200"]);
    assert_eq!(code, 0, "{err}");
    let mut child = spawn(&["report", &out]);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("analysing "), "{first}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.last().unwrap().contains("interrupted: gatelab report stopped before it was done"), "{rest:?}");
    // Nothing half-written: a rerun finishes the report.
    let (code, _, err) = gatelab(&["report", &out]);
    assert_eq!(code, 0, "{err}");
    let _ = PathBuf::from(&out);
}
