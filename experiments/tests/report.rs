//! Reports a researcher can put in a paper: one row per configuration (never pooled across a
//! learning rate), intervals over seeds and paired differences, tick labels that differ, and a
//! report.html that says what was run.

mod common;

use common::{gatelab, scratch};
use gatelab_analysis::charts::{LineChart, Point, Series, SeriesStyle, YAxis, line_chart};
use gatelab_analysis::summary::{Metric, summarize};
use std::collections::BTreeMap;
use std::path::Path;

/// The text of every `<text>` element of an SVG with its position.
fn svg_texts(svg: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for part in svg.split("<text").skip(1) {
        let (attrs, rest) = part.split_once('>').unwrap();
        let text = rest.split("</text>").next().unwrap().trim().to_string();
        let attr = |name: &str| {
            attrs
                .split(&format!("{name}=\""))
                .nth(1)
                .map(|s| s.split('"').next().unwrap().to_string())
                .unwrap_or_default()
        };
        out.push((text, attr("x"), attr("y")));
    }
    out
}

/// Tick labels (numbers) that share an axis position — a column of y ticks or a row of x ticks —
/// must differ from each other.
fn assert_ticks_distinct(svg: &str, what: &str) {
    let numbers: Vec<(String, String, String)> =
        svg_texts(svg).into_iter().filter(|(t, _, _)| t.parse::<f64>().is_ok()).collect();
    let mut by_x: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_y: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (t, x, y) in &numbers {
        by_x.entry(x.as_str()).or_default().push(t.as_str());
        by_y.entry(y.as_str()).or_default().push(t.as_str());
    }
    let mut axes = 0;
    for labels in by_x.values().chain(by_y.values()).filter(|l| l.len() >= 3) {
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{what}: repeated tick labels {labels:?}");
        axes += 1;
    }
    assert!(axes >= 1, "{what}: no axis of tick labels found in the SVG");
}

#[test]
fn tick_labels_differ_even_on_a_narrow_axis() {
    let dir = scratch("ticks");
    let points = (0..8).map(|k| Point::at(k as f64, 0.1 + 0.0007 * k as f64)).collect();
    let chart = LineChart {
        title: "narrow".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        caption: "values between 0.1000 and 0.1049".into(),
        series: vec![Series { label: "a".into(), colour: 0, points, style: SeriesStyle::Markers }],
        integer_x: true,
        y: YAxis::Fit,
    };
    line_chart(&dir, "narrow", &chart).unwrap();
    let svg = std::fs::read_to_string(dir.join("narrow.svg")).unwrap();
    assert_ticks_distinct(&svg, "narrow.svg");
    let png = std::fs::read(dir.join("narrow.png")).unwrap();
    // PNG width and height (IHDR) are twice the SVG's 1000 × 560.
    assert_eq!(
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap())),
        (2000, 1120)
    );
}

/// Sweeps the grid `grid` (its JSON) in `dir` at the tiny preset, two seeds, 200 steps, with
/// `overrides`; returns the sweep folder and what the sweep printed.
fn tiny_sweep_of_two_seeds(dir: &Path, grid: &str, overrides: &[&str]) -> (std::path::PathBuf, String) {
    let file = dir.join("grid.json");
    std::fs::write(&file, grid).unwrap();
    let out = dir.join("out");
    let mut args =
        vec!["sweep", file.to_str().unwrap(), "--preset", "tiny", "--seeds", "2", "--out", out.to_str().unwrap()];
    args.extend(overrides);
    args.extend(["train.steps=200", "train.eval_every=100"]);
    let (code, stdout, stderr) = gatelab(&args);
    assert_eq!(code, 0, "{stderr}");
    (out, stdout)
}

#[test]
fn a_learning_rate_sweep_over_two_seeds_reports_one_row_per_configuration() {
    let dir = scratch("report");
    let grid = r#"{"name": "pair", "variants": [{"name": "baseline", "paper": "Table 1 row 1"}, {"name": "g1", "paper": "Table 1 row 5", "set": {"model.gate.position": "g1"}}]}"#;
    let (out, stdout) = tiny_sweep_of_two_seeds(&dir, grid, &["train.lr=3e-3,6e-3"]);
    // Two variants × two learning rates, each over two seeds: four rows, none pooled.
    let summary = summarize(&out).unwrap();
    assert_eq!(summary.groups.len(), 4);
    assert_eq!(summary.differing_keys, ["train.lr"]);
    let mut labels: Vec<String> = summary.groups.iter().map(|g| g.name()).collect();
    labels.sort();
    assert_eq!(
        labels,
        ["baseline · train.lr=0.003", "baseline · train.lr=0.006", "g1 · train.lr=0.003", "g1 · train.lr=0.006"]
    );
    for g in &summary.groups {
        let loss = &g.estimates[&Metric::ValLoss];
        assert_eq!(loss.n, 2, "{}", g.name());
        let (lo, hi) = loss.interval().expect("two seeds give an interval");
        assert!(lo <= loss.mean && loss.mean <= hi);
        if g.variant == "g1" {
            // Paired with the baseline of its own learning rate, seed by seed.
            let base = &summary.groups[g.baseline.expect("a baseline")];
            assert_eq!(base.label, g.label);
            assert_eq!(g.versus_baseline[&Metric::ValLoss].n, 2);
        }
    }
    // The printed summary and summary.md carry the rows with their labels and intervals.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(stdout.contains("| g1 · train.lr=0.006 |") && md.contains("| g1 · train.lr=0.006 |"), "{md}");
    assert!(md.contains("## Against the baseline (paired by seed)"));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.lines().next().unwrap().contains(",train.lr,"));
    // G1 rows carry a verdict on the paper's claims, by the rule the report states.
    assert!(csv.lines().next().unwrap().contains(",verdict_val_loss,"));
    let verdicts = ["reproduced", "not at this scale", "contradicted", "inconclusive"];
    // The two main tables: everything before the first section after the paired one.
    let paired_at = md.find("## Against the baseline").unwrap();
    let tables = &md[..md[paired_at + 1..].find("\n## ").map_or(md.len(), |i| paired_at + 1 + i)];
    assert!(tables.lines().filter(|l| l.starts_with("| g1 · ")).count() == 4, "{md}");
    assert!(
        tables.lines().filter(|l| l.starts_with("| g1 · ") && verdicts.iter().any(|v| l.contains(v))).count() == 2,
        "paired rows: {md}"
    );
    assert!(md.contains("Verdicts (G1 sigmoid gates only"));
    // One swept key: each metric against it, one line per variant (the stability frontier).
    let frontier = std::fs::read_to_string(out.join("frontier_best_val_loss.csv")).unwrap();
    assert_eq!(frontier.lines().filter(|l| l.starts_with("g1,")).count(), 2, "{frontier}");
    // report.html says what was run, and draws intervals.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<title>gatelab report: grid pair</title>"));
    for item in [
        "<dt>grid</dt><dd>pair</dd>",
        "<dt>preset</dt><dd>tiny</dd>",
        "<dt>steps</dt><dd>200</dd>",
        "<dt>seeds</dt><dd>2 (0, 1; 2 runs per configuration)</dd>",
    ] {
        assert!(html.contains(item), "report.html lacks {item}");
    }
    assert!(html.contains("Figure 1.") && html.contains("95% Student-t"));
    let dots = std::fs::read_to_string(out.join("val_loss.csv")).unwrap();
    let rows: Vec<&str> = dots.lines().skip(2).collect();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r.split(',').nth(2).is_some_and(|lo| !lo.is_empty())),
        "every configuration has an error bar: {dots}"
    );
    // Every figure's tick labels differ.
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "svg") {
            assert_ticks_distinct(&std::fs::read_to_string(&path).unwrap(), &path.display().to_string());
        }
    }
    // Probability axes run from 0 to 1.
    let svg = std::fs::read_to_string(out.join("first_token_attention_over_training.svg")).unwrap();
    let numbers: Vec<f64> = svg_texts(&svg).iter().filter_map(|(t, _, _)| t.parse().ok()).collect();
    assert!(numbers.contains(&0.0) && numbers.contains(&1.0), "{numbers:?}");
    assert!(!Path::new(&out.join("report.html")).with_extension("tmp").exists());
    // The interventions on the first token's peak ran with the analysis, and have their table.
    assert!(md.contains("## Interventions on the first token's peak activation"), "{md}");
    assert!(html.contains("Interventions on the first token"));
    // --json: the same summary, machine-readable; nothing else on stdout.
    let (code, stdout, stderr) = gatelab(&["report", out.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("report --json prints JSON");
    let configs = json["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 4);
    for c in configs {
        assert_eq!(c["estimates"]["val_loss"]["n"], 2, "{c}");
        assert_eq!(c["estimates"]["loss_peak_zeroed"]["n"], 2, "{c}");
        let meaned = c["estimates"]["loss_peak_meaned"]["mean"].as_f64().unwrap();
        assert!(meaned.is_finite() && meaned > 0.0);
    }
    assert!(json["verdict_rule"].as_str().unwrap().starts_with("Verdicts"));
    // --out writes the report elsewhere, linking the run folders from there.
    let elsewhere = dir.join("reports/pair");
    let (code, _, stderr) = gatelab(&["report", out.to_str().unwrap(), "--out", elsewhere.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let moved = std::fs::read_to_string(elsewhere.join("report.html")).unwrap();
    assert!(moved.contains("href=\"../../out/"), "links to the runs from the report's folder");
    assert!(elsewhere.join("summary.csv").is_file() && elsewhere.join("val_loss.svg").is_file());
    // eval: held-out perplexity of every run as JSON, with the streaming probe; the report then
    // carries the streaming ratio.
    let (code, stdout, stderr) = gatelab(&["eval", out.to_str().unwrap(), "--window", "8", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let evals: serde_json::Value = serde_json::from_str(&stdout).expect("eval --json prints JSON");
    assert_eq!(evals.as_array().unwrap().len(), 8);
    for e in evals.as_array().unwrap() {
        let (loss, ppl) = (e["loss"].as_f64().unwrap(), e["perplexity"].as_f64().unwrap());
        assert!((loss.exp() - ppl).abs() < 1e-9 * ppl && e["source"] == "validation split", "{e}");
        let s = &e["streaming"];
        assert_eq!(s["window"], 8);
        let ratio = s["ratio"].as_f64().unwrap();
        assert!((ratio - s["first_evicted"].as_f64().unwrap() / s["first_kept"].as_f64().unwrap()).abs() < 1e-9);
    }
    let (code, _, stderr) = gatelab(&["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = head.iter().position(|h| *h == "streaming_ratio_mean").expect("a streaming ratio column");
    assert!(csv.lines().skip(1).all(|l| l.split(',').nth(col).is_some_and(|v| v.parse::<f64>().is_ok())), "{csv}");
    // A window that fits no run (T = 32) fails before anything is written: the probe's results stay.
    let before = std::fs::read(summary.groups[0].runs[0].run.file("perplexity.json")).unwrap();
    let (code, _, stderr) = gatelab(&["eval", out.to_str().unwrap(), "--window", "32"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--window 32: fits none of the 8 runs (sequence length 32)"), "{stderr}");
    assert_eq!(std::fs::read(summary.groups[0].runs[0].run.file("perplexity.json")).unwrap(), before);
    // analyze --json prints one object per run, with where the peak was edited.
    let run = summary.groups[0].runs[0].run.path.clone();
    let (code, stdout, stderr) = gatelab(&["analyze", run.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("analyze --json prints JSON");
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["interventions"]["position"], 0);
    assert!(rows[0]["first_token_attention"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_cure_is_paired_with_softmax_and_a_cure_with_a_gate_with_the_cure_alone() {
    let dir = scratch("report-cures");
    let grid = r#"{"name": "three", "variants": [
            {"name": "baseline", "paper": "softmax"},
            {"name": "sink-logit", "paper": "gpt-oss", "set": {"model.cure": "sink_logit"}},
            {"name": "sink-logit-g1", "paper": "gpt-oss + G1", "set": {"model.cure": "sink_logit", "model.gate.position": "g1"}}
        ]}"#;
    let (out, _) = tiny_sweep_of_two_seeds(&dir, grid, &[]);
    let summary = summarize(&out).unwrap();
    let name_of = |i: Option<usize>| i.map(|b| summary.groups[b].name());
    for g in &summary.groups {
        let expected = match g.name().as_str() {
            "baseline" => None,
            "sink-logit" => Some("baseline".to_string()),
            "sink-logit-g1" => Some("sink-logit".to_string()),
            other => panic!("unexpected {other}"),
        };
        assert_eq!(name_of(g.baseline), expected, "{}", g.name());
    }
    // The slot's weight is measured for the cures, and the report says where the attention went.
    let cured = summary.groups.iter().find(|g| g.name() == "sink-logit").unwrap();
    let slot = cured.estimates[&Metric::Slot].mean;
    assert!(slot > 0.0 && slot < 1.0, "{slot}");
    assert!(!summary.groups.iter().find(|g| g.name() == "baseline").unwrap().estimates.contains_key(&Metric::Slot));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Where the attention goes") && md.contains("| sink-logit | sink_logit |"), "{md}");
    assert!(md.contains("- **attention weights**: sink_logit; softmax (differs"), "{md}");
}
