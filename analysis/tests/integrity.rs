//! Reports that refuse what they cannot trust: a non-finite statistic reads back and shows as
//! such, an unreadable `analysis.json` or a run whose weights are gone or damaged is named and
//! left out, and the other runs' numbers do not move.

use gatelab_analysis::report;
use gatelab_analysis::run::{Analysis, read_analysis};
use gatelab_analysis::summary::{Metric, NON_FINITE, summarize};
use gatelab_rundir::{FileDigest, read_json, runs_under, write_json};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../rundir/tests/fixtures")
}

/// The fixture sweep, copied, with the analysis its build wrote beside each finished run.
fn analysed_copy(tag: &str) -> PathBuf {
    let to = std::env::temp_dir().join(format!("gatelab-report-integrity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    for run in runs_under(&fixtures().join("sweep-ca03b9e")).unwrap() {
        let dest = to.join(run.name());
        std::fs::create_dir_all(&dest).unwrap();
        for entry in std::fs::read_dir(&run.path).unwrap().flatten() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
        let expected = fixtures().join("expected-ca03b9e").join(run.name()).join("analysis.json");
        if expected.is_file() {
            std::fs::copy(expected, dest.join("analysis.json")).unwrap();
        }
    }
    to
}

/// Every group's estimates, by name, as text.
fn numbers(sweep: &std::path::Path) -> Vec<(String, String)> {
    summarize(sweep).unwrap().groups.iter().map(|g| (g.name(), format!("{:?}", g.estimates))).collect()
}

#[test]
fn a_non_finite_statistic_reads_back_and_leaves_the_other_runs_alone() {
    let sweep = analysed_copy("nan");
    let before = numbers(&sweep);
    let runs = runs_under(&sweep).unwrap();
    let by_name = |n: &str| runs.iter().find(|r| r.name() == n).unwrap().clone();
    // Both seeds of the g1 configuration: a NaN peak in each, and an infinite ratio in one.
    let (run, other) = (by_name("g1-elementwise-0cfe02e3b9"), by_name("g1-elementwise-c3802c5be0"));
    for (k, r) in [&run, &other].into_iter().enumerate() {
        let mut analysis: Analysis = read_analysis(r).unwrap().unwrap();
        analysis.stats.layers[0].max_activation = f64::NAN;
        if k == 0 {
            analysis.stats.layers[0].top1_median_ratio = f64::INFINITY;
        }
        write_json(&r.file("analysis.json"), &analysis).unwrap();
    }
    let text = std::fs::read_to_string(run.file("analysis.json")).unwrap();
    assert!(text.contains("\"max_activation\": \"NaN\"") && text.contains("\"Infinity\""), "explicit markers");
    let back = read_analysis(&run).unwrap().unwrap();
    assert!(back.stats.layers[0].max_activation.is_nan());
    assert_eq!(back.stats.layers[0].top1_median_ratio, f64::INFINITY);

    let written = report::write(&sweep).unwrap();
    let g1 = written.summary.groups.iter().find(|g| g.runs.iter().any(|r| r.run.name() == run.name())).unwrap();
    let peak = &g1.estimates[&Metric::MaxActivation];
    assert!(peak.mean.is_nan() && peak.non_finite == 2, "{peak:?}");
    // One seed of two non-finite: the mean of the other, saying one was left out.
    let ratio = &g1.estimates[&Metric::Top1Median];
    assert_eq!((ratio.n, ratio.non_finite), (1, 1));
    assert!(ratio.show(2).ends_with("(1 non-finite left out)"), "{}", ratio.show(2));
    let md = std::fs::read_to_string(sweep.join("summary.md")).unwrap();
    assert!(md.contains(NON_FINITE), "{md}");
    // Every group without that run keeps its numbers exactly.
    let after = numbers(&sweep);
    for (name, n) in &before {
        if *name != g1.name() {
            assert_eq!(after.iter().find(|(a, _)| a == name).map(|(_, n)| n), Some(n), "{name}");
        }
    }
}

#[test]
fn unreadable_analysis_and_damaged_or_missing_weights_are_named_and_left_out() {
    let sweep = analysed_copy("left-out");
    let before = numbers(&sweep);
    let runs = runs_under(&sweep).unwrap();
    let by_name = |n: &str| runs.iter().find(|r| r.name() == n).unwrap();
    // A truncated analysis.json, a deleted model.safetensors, and one flipped against its manifest.
    let cut = by_name("g1-elementwise-0cfe02e3b9");
    let text = std::fs::read_to_string(cut.file("analysis.json")).unwrap();
    std::fs::write(cut.file("analysis.json"), &text[..text.len() / 2]).unwrap();
    let gone = by_name("baseline-61269182f2");
    std::fs::remove_file(gone.file("model.safetensors")).unwrap();
    let flipped = by_name("g1-elementwise-c3802c5be0");
    write_json(&flipped.file("weights.json"), &FileDigest::of_file(&flipped.file("model.safetensors")).unwrap())
        .unwrap();
    let mut bytes = std::fs::read(flipped.file("model.safetensors")).unwrap();
    bytes[20_000] ^= 1;
    std::fs::write(flipped.file("model.safetensors"), bytes).unwrap();
    // A run folder whose config.json is cut short.
    let broken = sweep.join("baseline-0000000000");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{\"meta\": ").unwrap();

    report::write(&sweep).unwrap();
    let md = std::fs::read_to_string(sweep.join("summary.md")).unwrap();
    let row = |name: &str| md.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_default().to_string();
    assert!(row(&cut.name()).contains("analysis unreadable"), "{md}");
    assert!(row(&gone.name()).contains("weights missing") && row(&gone.name()).contains("~~"), "{md}");
    assert!(
        row(&flipped.name()).contains("weights damaged") && row(&flipped.name()).contains("fails its checksum"),
        "{md}"
    );
    assert!(row("baseline-0000000000").contains("unreadable: "), "{md}");
    let html = std::fs::read_to_string(sweep.join("report.html")).unwrap();
    assert!(html.contains("<del>"), "struck out in the HTML too");
    // Each damaged run is out of its group's means; the untouched baseline run's group is not.
    let summary = summarize(&sweep).unwrap();
    for g in &summary.groups {
        let counted: Vec<String> = g.runs.iter().filter(|r| r.counts()).map(|r| r.run.name()).collect();
        assert!(![&cut.name(), &gone.name(), &flipped.name()].iter().any(|n| counted.contains(n)), "{counted:?}");
    }
    // The untouched runs keep their own numbers exactly.
    let metrics_of = |summary: &gatelab_analysis::summary::Summary, name: &str| {
        summary.groups.iter().flat_map(|g| &g.runs).find(|r| r.run.name() == name).map(|r| format!("{:?}", r.metrics))
    };
    let clean = summarize(&analysed_copy("left-out-clean")).unwrap();
    assert_eq!(metrics_of(&summary, "baseline-80904d9489"), metrics_of(&clean, "baseline-80904d9489"));
    assert!(before.len() >= 2);
    let _: serde_json::Value = read_json(&sweep.join("baseline-80904d9489/analysis.json")).unwrap();
}
