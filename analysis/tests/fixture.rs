//! Run folders written by gatelab before the run folder was typed (commit ca03b9e;
//! `rundir/tests/fixtures/README.md`) analyse and report as that build did: every statistic of
//! its `analysis.json` comes out again, and its summary's per-variant numbers are those of the
//! configurations it pooled. The report now splits what that build pooled by mistake (a baseline
//! run of another configuration).

use burn::tensor::Device;
use gatelab_analysis::run::{Analysis, AnalyzeOptions, analyze_run};
use gatelab_analysis::summary::{Metric, summarize};
use gatelab_rundir::{RunDir, read_json, runs_under};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../rundir/tests/fixtures")
}

/// A copy of the fixture sweep to write into.
fn copy_sweep(tag: &str) -> PathBuf {
    let to = std::env::temp_dir().join(format!("gatelab-fixture-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    for run in runs_under(&fixtures().join("sweep-ca03b9e")).unwrap() {
        let dest = to.join(run.name());
        std::fs::create_dir_all(&dest).unwrap();
        for entry in std::fs::read_dir(&run.path).unwrap().flatten() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
    to
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(1.0) || (a.is_nan() && b.is_nan())
}

#[test]
fn analysis_reproduces_the_earlier_build_numbers() {
    let sweep = copy_sweep("analyze");
    let device = Device::flex();
    let mut analysed = 0;
    for run in runs_under(&sweep).unwrap().into_iter().filter(RunDir::is_done) {
        let now = analyze_run(&run, &device, &AnalyzeOptions::default()).unwrap();
        let then: Analysis =
            read_json(&fixtures().join("expected-ca03b9e").join(run.name()).join("analysis.json")).unwrap();
        let (a, b) = (&now.stats, &then.stats);
        assert_eq!((a.sequences, a.tokens, a.seq_len), (b.sequences, b.tokens, b.seq_len));
        assert_eq!(a.layers.len(), b.layers.len());
        for (x, y) in a.layers.iter().zip(&b.layers) {
            for j in 0..3 {
                assert!(
                    close(x.first_token_attention[j], y.first_token_attention[j]),
                    "{}: F-Attn {x:?} vs {y:?}",
                    run.name()
                );
            }
            assert!(
                close(x.sink, y.sink)
                    && close(x.max_activation, y.max_activation)
                    && close(x.top1_median_ratio, y.top1_median_ratio),
                "{}",
                run.name()
            );
            assert_eq!(x.max_at, y.max_at);
            assert!(close(x.value_norm_first, y.value_norm_first) && close(x.sdpa_abs_after, y.sdpa_abs_after));
            assert_eq!(x.gate.as_ref().map(|g| g.histogram.clone()), y.gate.as_ref().map(|g| g.histogram.clone()));
            for (h, k) in x.heads.iter().zip(&y.heads) {
                assert!(h.alpha.iter().zip(&k.alpha).all(|(p, q)| close(*p, *q)) && close(h.entropy, k.entropy));
            }
        }
        analysed += 1;
    }
    assert_eq!(analysed, 4);
    let _ = std::fs::remove_dir_all(&sweep);
}

/// The earlier build's summary.csv: variant → (valid_loss mean, first_token_attention mean).
fn earlier_summary(path: &Path) -> Vec<(String, f64, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (v, l, f) = (col("variant"), col("valid_loss"), col("first_token_attention"));
    lines
        .map(|line| {
            // Quoted fields hold no commas in this file's rows except none; split plainly.
            let cells: Vec<&str> = line.split(',').collect();
            (cells[v].to_string(), cells[l].parse().unwrap(), cells[f].parse().unwrap())
        })
        .collect()
}

#[test]
fn the_report_keeps_the_numbers_and_splits_what_was_pooled() {
    let sweep = copy_sweep("report");
    // The analyses that build wrote, beside the runs, as `gatelab report` finds them.
    for run in runs_under(&sweep).unwrap().into_iter().filter(RunDir::is_done) {
        std::fs::copy(
            fixtures().join("expected-ca03b9e").join(run.name()).join("analysis.json"),
            run.file("analysis.json"),
        )
        .unwrap();
    }
    let summary = summarize(&sweep).unwrap();
    // Three configurations: the two-seed baseline and G1, and the diverged baseline of another
    // configuration (its own sweep: train.diverge_factor = 0.5 and the preset's logging) that the
    // earlier build pooled into the first.
    let names: Vec<String> = summary.groups.iter().map(|g| g.name()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        summary.differing_keys,
        ["train.checkpoint_every", "train.diverge_factor", "train.dynamics_every", "train.eval_every"]
    );
    let base = summary.groups.iter().find(|g| g.variant == "baseline" && g.done() == 2).unwrap();
    let diverged = summary.groups.iter().find(|g| g.variant == "baseline" && g.diverged() == 1).unwrap();
    assert_eq!((base.runs.len(), diverged.runs.len()), (2, 1));
    assert!(
        base.label.contains("train.diverge_factor=3") && diverged.label.contains("train.diverge_factor=0.5"),
        "{} / {}",
        base.label,
        diverged.label
    );
    for (variant, loss, fattn) in earlier_summary(&fixtures().join("expected-ca03b9e/summary.csv")) {
        let g = summary.groups.iter().find(|g| g.variant == variant && g.done() > 0).unwrap();
        assert!(
            close(g.estimates[&Metric::ValLoss].mean, loss),
            "{variant}: {} vs {loss}",
            g.estimates[&Metric::ValLoss].mean
        );
        assert!(close(g.estimates[&Metric::FirstTokenAttention].mean, fattn), "{variant}");
        assert_eq!(g.estimates[&Metric::ValLoss].n, 2);
        assert!(g.estimates[&Metric::ValLoss].interval().is_some(), "two seeds give an interval");
    }
    // G1 is paired with the baseline of its own configuration, seed by seed.
    let g1 = summary.groups.iter().find(|g| g.variant == "g1-elementwise").unwrap();
    assert_eq!(summary.groups[g1.baseline.unwrap()].name(), base.name());
    let d = &g1.versus_baseline[&Metric::ValLoss];
    assert_eq!(d.n, 2);
    let by_seed = |g: &gatelab_analysis::summary::Group, s: u64| {
        g.estimates[&Metric::ValLoss].values.iter().find(|(x, _)| *x == s).unwrap().1
    };
    assert!(close(d.mean, ((by_seed(g1, 0) - by_seed(base, 0)) + (by_seed(g1, 1) - by_seed(base, 1))) / 2.0));
    let _ = std::fs::remove_dir_all(&sweep);
}
