//! Run folders written by gatelab before the run folder was typed (commit ca03b9e; see
//! `tests/fixtures/README.md`) read through today's types, field by field.

use gatelab_rundir::{RunDir, Status, read_jsonl, runs_under};
use std::path::PathBuf;

fn fixture() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("tests/fixtures/sweep-ca03b9e")
}

#[test]
fn a_sweep_written_before_the_types_reads_unchanged() {
    let runs = runs_under(&fixture()).unwrap();
    let names: Vec<String> = runs.iter().map(RunDir::name).collect();
    assert_eq!(
        names,
        [
            "baseline-61269182f2",
            "baseline-7626fcd26a",
            "baseline-80904d9489",
            "g1-elementwise-0cfe02e3b9",
            "g1-elementwise-c3802c5be0"
        ]
    );
    for run in &runs {
        let file = run.read_file().unwrap();
        assert_eq!(file.meta.grid, "fixture");
        assert_eq!((file.meta.preset.as_str(), file.meta.backend.as_str()), ("tiny", "flex"));
        assert_eq!(file.meta.git_commit, "ca03b9e38447262ef75e2b0d2199ecdc37402d38");
        assert_eq!(file.meta.hash, run.name().rsplit_once('-').unwrap().1);
        assert_eq!((file.config.train.steps, file.config.data.seq_len, file.config.model.d_model), (300, 32, 32));
        assert!(file.meta.gatelab_version.is_empty(), "written before versions were recorded");
        match run.status().unwrap() {
            Status::Done => {
                let evals = run.evals().unwrap();
                assert_eq!(evals.iter().map(|e| e.step).collect::<Vec<_>>(), [150, 300]);
                assert!((evals[1].perplexity - evals[1].loss.exp()).abs() < 1e-9);
                assert_eq!(run.metrics().unwrap().len(), 6, "a line every 50 steps");
                let dynamics = run.dynamics().unwrap();
                assert_eq!(dynamics.iter().map(|d| d.step).collect::<Vec<_>>(), [100, 200, 300]);
                assert_eq!(dynamics[0].layers.len(), 1);
                assert_eq!(dynamics[0].layers[0].gate_mean.is_some(), file.meta.variant == "g1-elementwise");
                assert!(run.file("model.safetensors").is_file());
            }
            Status::Diverged { step, loss } => {
                assert_eq!(run.name(), "baseline-7626fcd26a");
                assert_eq!(step, 1);
                assert!(loss > 0.5 * 65f64.ln(), "diverge_factor 0.5: {loss}");
                assert_eq!(file.config.train.diverge_factor, 0.5);
            }
            other => panic!("{}: {other:?}", run.name()),
        }
    }
}

#[test]
fn a_torn_last_line_is_skipped_and_a_bad_line_named() {
    let dir = std::env::temp_dir().join(format!("gatelab-rundir-jsonl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("eval.jsonl");
    // A crash mid-write leaves a line without its end.
    std::fs::write(&path, "{\"step\":1,\"loss\":2.0,\"perplexity\":7.38,\"tokens\":10}\n{\"step\":2,\"lo").unwrap();
    let records: Vec<gatelab_rundir::EvalRecord> = read_jsonl(&path).unwrap();
    assert_eq!(records.len(), 1);
    // A broken line in the middle is an error naming the file and line.
    std::fs::write(&path, "{\"step\":1}\n{\"step\":2,\"loss\":2.0,\"perplexity\":7.38,\"tokens\":10}\n").unwrap();
    let err = read_jsonl::<gatelab_rundir::EvalRecord>(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:1: ", path.display())), "{err}");
    // Non-finite losses are written as null and read back as NaN.
    std::fs::write(&path, "{\"step\":3,\"loss\":null,\"perplexity\":null,\"tokens\":10}\n").unwrap();
    let records: Vec<gatelab_rundir::EvalRecord> = read_jsonl(&path).unwrap();
    assert!(records[0].loss.is_nan());
    let status: Status = serde_json::from_str(r#"{"state":"diverged","step":4,"loss":null}"#).unwrap();
    assert!(matches!(status, Status::Diverged { step: 4, loss } if loss.is_nan()));
    let _ = std::fs::remove_dir_all(&dir);
}
