//! A sweep's summary: one row per variant (mean ± spread over its seeds) from the run folders'
//! `config.json`, `status.json`, `eval.jsonl` and `analysis.json`, written as `summary.csv` and
//! `summary.md`. The markdown opens with what the baseline shows: when it has no sink (F-Attn
//! within twice the chance level in every layer) it says so, instead of crediting the gate.

use crate::run::{Analysis, RunInfo, read_jsonl, read_run, runs_under};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Mean and sample standard deviation of a metric over seeds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
    /// Values it rests on.
    pub n: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64 } else { 0.0 };
        Some(Spread { mean, std: var.sqrt(), n: v.len() })
    }

    fn show(s: Option<Spread>, digits: usize) -> String {
        match s {
            None => "-".into(),
            Some(s) if s.n > 1 => format!("{:.d$} ± {:.d$}", s.mean, s.std, d = digits),
            Some(s) => format!("{:.d$}", s.mean, d = digits),
        }
    }
}

/// One variant of the sweep.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct VariantRow {
    /// Variant name.
    pub variant: String,
    /// The paper's table and row.
    pub paper: String,
    /// Its gate, in words.
    pub gate: String,
    /// Parameters.
    pub params: usize,
    /// Runs found, and how many diverged or failed.
    pub runs: usize,
    /// Diverged runs.
    pub diverged: usize,
    /// Failed or unfinished runs.
    pub unfinished: usize,
    /// Final validation loss.
    pub valid_loss: Option<Spread>,
    /// Its perplexity.
    pub perplexity: Option<Spread>,
    /// F-Attn (queries ≥ 1), mean over heads and layers.
    pub first_token_attention: Option<Spread>,
    /// Sink_1^ε, mean over layers.
    pub sink: Option<Spread>,
    /// Largest activation, mean over layers.
    pub max_activation: Option<Spread>,
    /// Mean gate score.
    pub gate_mean: Option<Spread>,
    /// Per-layer F-Attn (queries ≥ 1), mean over seeds.
    pub first_token_attention_per_layer: Vec<f64>,
    /// Per-layer largest activation, mean over seeds.
    pub max_activation_per_layer: Vec<f64>,
    /// Gate scores per histogram bin over [0, 1], summed over layers and seeds, as shares.
    pub gate_histogram: Vec<f64>,
    /// Chance level of F-Attn (queries ≥ 1) at the analysed length.
    pub chance: Option<f64>,
}

/// The summary of a sweep.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Summary {
    /// Rows in the order the variants first appear.
    pub rows: Vec<VariantRow>,
    /// What the baseline shows, in words.
    pub finding: String,
}

fn last_eval(dir: &Path) -> Option<(f64, f64)> {
    let v = read_jsonl(&dir.join("eval.jsonl")).pop()?;
    Some((v["loss"].as_f64()?, v["perplexity"].as_f64()?))
}

/// What one variant's finished runs contributed, before it is summarised.
#[derive(Default)]
struct Collected {
    valid_loss: Vec<f64>,
    perplexity: Vec<f64>,
    first_token_attention: Vec<f64>,
    sink: Vec<f64>,
    max_activation: Vec<f64>,
    gate_mean: Vec<f64>,
    first_token_attention_per_layer: Vec<Vec<f64>>,
    max_activation_per_layer: Vec<Vec<f64>>,
    gate_histogram: Vec<u64>,
}

/// Reads every run folder under `sweep`.
pub fn summarize(sweep: &Path) -> Result<Summary, String> {
    let mut variants: Vec<(VariantRow, Collected)> = Vec::new();
    for dir in runs_under(sweep)? {
        let RunInfo { variant, paper, model, .. } = read_run(&dir)?;
        let status = std::fs::read_to_string(dir.join("status.json")).unwrap_or_default();
        let k = match variants.iter().position(|(r, _)| r.variant == variant) {
            Some(k) => k,
            None => {
                let row = VariantRow {
                    variant: variant.clone(),
                    paper,
                    gate: model.gate.label(),
                    params: model.param_count().total,
                    runs: 0,
                    diverged: 0,
                    unfinished: 0,
                    valid_loss: None,
                    perplexity: None,
                    first_token_attention: None,
                    sink: None,
                    max_activation: None,
                    gate_mean: None,
                    first_token_attention_per_layer: vec![],
                    max_activation_per_layer: vec![],
                    gate_histogram: vec![],
                    chance: None,
                };
                variants.push((row, Collected::default()));
                variants.len() - 1
            }
        };
        let (row, got) = &mut variants[k];
        row.runs += 1;
        if status.contains("\"diverged\"") {
            row.diverged += 1;
            continue;
        }
        if !status.contains("\"done\"") {
            row.unfinished += 1;
            continue;
        }
        if let Some((loss, ppl)) = last_eval(&dir) {
            got.valid_loss.push(loss);
            got.perplexity.push(ppl);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("analysis.json")) {
            let a: Analysis = serde_json::from_str(&text).map_err(|e| format!("{}: analysis.json: {e}", dir.display()))?;
            let s = &a.stats;
            got.first_token_attention.push(s.first_token_attention());
            got.sink.push(s.sink());
            got.max_activation.push(s.max_activation());
            got.gate_mean.extend(s.gate_mean());
            got.first_token_attention_per_layer.push(s.layers.iter().map(|l| l.first_token_attention[1]).collect());
            got.max_activation_per_layer.push(s.layers.iter().map(|l| l.max_activation).collect());
            for g in s.layers.iter().filter_map(|l| l.gate.as_ref()) {
                got.gate_histogram.resize(g.histogram.len(), 0);
                for (a, b) in got.gate_histogram.iter_mut().zip(&g.histogram) {
                    *a += b;
                }
            }
            row.chance = Some(s.chance_first_token_attention[1]);
        }
    }
    let rows: Vec<VariantRow> = variants
        .into_iter()
        .map(|(mut row, got)| {
            row.valid_loss = Spread::of(&got.valid_loss);
            row.perplexity = Spread::of(&got.perplexity);
            row.first_token_attention = Spread::of(&got.first_token_attention);
            row.sink = Spread::of(&got.sink);
            row.max_activation = Spread::of(&got.max_activation);
            row.gate_mean = Spread::of(&got.gate_mean);
            row.first_token_attention_per_layer = mean_per_layer(&got.first_token_attention_per_layer);
            row.max_activation_per_layer = mean_per_layer(&got.max_activation_per_layer);
            let total: u64 = got.gate_histogram.iter().sum();
            row.gate_histogram = got.gate_histogram.iter().map(|&c| c as f64 / total.max(1) as f64).collect();
            row
        })
        .collect();
    let finding = finding(&rows);
    Ok(Summary { rows, finding })
}

/// Element-wise mean of per-run, per-layer values (runs of one variant have the same depth).
fn mean_per_layer(runs: &[Vec<f64>]) -> Vec<f64> {
    let Some(first) = runs.first() else { return vec![] };
    (0..first.len()).map(|l| runs.iter().map(|r| r[l]).sum::<f64>() / runs.len() as f64).collect()
}

/// What the baseline shows, in words.
fn finding(rows: &[VariantRow]) -> String {
    let Some(base) = rows.iter().find(|r| r.gate == "baseline") else {
        return "This sweep has no ungated baseline, so it says nothing about whether a gate removes a sink.".into();
    };
    let (Some(chance), false) = (base.chance, base.first_token_attention_per_layer.is_empty()) else {
        return "The baseline has not been analysed (run gatelab analyze), so nothing can be said about sinks yet.".into();
    };
    let sinks: Vec<String> = base
        .first_token_attention_per_layer
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 2.0 * chance)
        .map(|(l, f)| format!("layer {} ({f:.3})", l + 1))
        .collect();
    if sinks.is_empty() {
        let fs: Vec<String> = base.first_token_attention_per_layer.iter().map(|f| format!("{f:.3}")).collect();
        format!(
            "**The baseline shows no attention sink**: its first-token attention ({}) is within twice the chance level of uniform causal attention ({chance:.3}) in every layer. This sweep therefore cannot show a gate removing a sink; differences between variants below are not evidence of it.",
            fs.join(", ")
        )
    } else {
        format!("The baseline has a first-token sink: F-Attn above twice the chance level ({chance:.3}) in {}.", sinks.join(", "))
    }
}

/// Writes `summary.csv` and `summary.md` into `dir`.
pub fn write(summary: &Summary, dir: &Path, title: &str) -> Result<(), String> {
    let fmt = |s: Option<Spread>, which: fn(Spread) -> f64| s.map(|s| format!("{}", which(s))).unwrap_or_default();
    let mut csv = String::from("variant,paper,gate,params,runs,diverged,unfinished,valid_loss,valid_loss_std,perplexity,first_token_attention,first_token_attention_std,sink,max_activation,gate_mean\n");
    for r in &summary.rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.variant,
            format!("\"{}\"", r.paper),
            format!("\"{}\"", r.gate),
            r.params,
            r.runs,
            r.diverged,
            r.unfinished,
            fmt(r.valid_loss, |s| s.mean),
            fmt(r.valid_loss, |s| s.std),
            fmt(r.perplexity, |s| s.mean),
            fmt(r.first_token_attention, |s| s.mean),
            fmt(r.first_token_attention, |s| s.std),
            fmt(r.sink, |s| s.mean),
            fmt(r.max_activation, |s| s.mean),
            fmt(r.gate_mean, |s| s.mean),
        );
    }
    let mut md = format!("# {title}\n\n{}\n\n", summary.finding);
    md.push_str("| variant | paper | params | val loss | val ppl | F-Attn | Sink | max act | gate mean | diverged |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &summary.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            r.variant,
            r.paper,
            r.params,
            Spread::show(r.valid_loss, 4),
            Spread::show(r.perplexity, 2),
            Spread::show(r.first_token_attention, 3),
            Spread::show(r.sink, 3),
            Spread::show(r.max_activation, 2),
            Spread::show(r.gate_mean, 3),
            r.diverged,
            r.runs
        );
    }
    md.push_str(
        "\nF-Attn: attention on position 0 (BOS), mean over heads, layers and queries ≥ 1 (query 0 excluded), over the held-out analysis split (analysis.json gives queries ≥ 0 and ≥ 4 too, per layer and head). \
         Sink: share of (sequence, head) pairs with α(0) > 0.3 (Gu et al. 2024), mean over layers. Max act: largest |h| of each block's output, mean over layers. \
         Validation loss: the last validation pass. ± is the sample standard deviation over seeds.\n",
    );
    crate::write_atomic(&dir.join("summary.csv"), &csv)?;
    crate::write_atomic(&dir.join("summary.md"), &md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gate: &str, per_layer: Vec<f64>) -> VariantRow {
        VariantRow {
            variant: gate.into(), paper: String::new(), gate: gate.into(), params: 0, runs: 1, diverged: 0, unfinished: 0,
            valid_loss: None, perplexity: None, first_token_attention: None, sink: None, max_activation: None, gate_mean: None,
            first_token_attention_per_layer: per_layer, max_activation_per_layer: vec![], gate_histogram: vec![], chance: Some(0.035),
        }
    }

    #[test]
    fn the_finding_names_sink_layers_or_says_there_is_none() {
        let with = finding(&[row("baseline", vec![0.04, 0.275])]);
        assert_eq!(with, "The baseline has a first-token sink: F-Attn above twice the chance level (0.035) in layer 2 (0.275).");
        let without = finding(&[row("baseline", vec![0.04, 0.069])]);
        assert!(without.starts_with("**The baseline shows no attention sink**") && without.contains("(0.040, 0.069)"), "{without}");
        assert!(finding(&[row("G1 elementwise sigmoid", vec![0.5])]).contains("no ungated baseline"));
    }
}

/// A chart of the report: its file stem, title and caption.
#[derive(Debug, Clone)]
pub struct ChartFile {
    /// `<stem>.svg`, `.png`, `.csv`.
    pub stem: String,
    /// Caption (the aggregation).
    pub caption: String,
}


/// Draws the charts of `summary` (and the curves of the runs under `sweep`) into `sweep`.
pub fn write_charts(sweep: &Path, summary: &Summary) -> Result<Vec<ChartFile>, String> {
    use crate::charts::{LineChart, Series, line_chart};
    let colour_of = |variant: &str| summary.rows.iter().position(|r| r.variant == variant).unwrap_or(0);
    let mut out = Vec::new();
    let mut chart = |stem: &str, c: LineChart| -> Result<(), String> {
        line_chart(sweep, stem, &c)?;
        out.push(ChartFile { stem: stem.into(), caption: c.aggregation.clone() });
        Ok(())
    };
    let layers = |v: &[f64]| v.iter().enumerate().map(|(l, y)| ((l + 1) as f64, *y)).collect::<Vec<_>>();
    let mut fattn: Vec<Series> = summary.rows.iter().enumerate().filter(|(_, r)| !r.first_token_attention_per_layer.is_empty())
        .map(|(i, r)| Series { label: r.variant.clone(), colour: i, points: layers(&r.first_token_attention_per_layer), dashed: false, markers: true })
        .collect();
    if let Some(chance) = summary.rows.iter().find_map(|r| r.chance) {
        let depth = summary.rows.iter().map(|r| r.first_token_attention_per_layer.len()).max().unwrap_or(1).max(1);
        fattn.push(Series { label: "chance (uniform causal)".into(), colour: 9, points: vec![(0.7, chance), (depth as f64 + 0.3, chance)], dashed: true, markers: false });
    }
    chart("first_token_attention_per_layer", LineChart {
        title: "First-token attention per layer (cf. paper Figure 2)".into(),
        x_label: "layer".into(),
        y_label: "attention on position 0 (probability)".into(),
        aggregation: "Mean over heads and queries 1..T (query 0 excluded), held-out analysis split, BOS at position 0; mean over seeds.".into(),
        series: fattn,
        integer_x: true,
    })?;
    let act = summary.rows.iter().enumerate().filter(|(_, r)| !r.max_activation_per_layer.is_empty())
        .map(|(i, r)| Series { label: r.variant.clone(), colour: i, points: layers(&r.max_activation_per_layer), dashed: false, markers: true })
        .collect();
    chart("max_activation_per_layer", LineChart {
        title: "Largest activation per layer".into(),
        x_label: "layer".into(),
        y_label: "max |h| of the block output (units of h)".into(),
        aggregation: "Largest |h| over all positions and dimensions of the analysed sequences; mean over seeds.".into(),
        series: act,
        integer_x: true,
    })?;
    let gates: Vec<Series> = summary.rows.iter().enumerate().filter(|(_, r)| !r.gate_histogram.is_empty())
        .map(|(i, r)| {
            let bins = r.gate_histogram.len() as f64;
            Series { label: r.variant.clone(), colour: i, points: r.gate_histogram.iter().enumerate().map(|(b, s)| ((b as f64 + 0.5) / bins, *s)).collect(), dashed: false, markers: true }
        })
        .collect();
    if !gates.is_empty() {
        chart("gate_scores", LineChart {
            title: "Gate-score distribution (cf. paper Figure 3)".into(),
            x_label: "gate score (bin centre)".into(),
            y_label: "share of scores in the bin".into(),
            aggregation: "All gate scores of every layer and position of the analysed sequences, in bins of equal width over [0, 1]; summed over seeds.".into(),
            series: gates,
            integer_x: false,
        })?;
    }
    let (mut loss, mut dynamics, mut gate_dyn, mut act_dyn) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for dir in runs_under(sweep)? {
        let RunInfo { variant, seed, .. } = read_run(&dir)?;
        let label = format!("{variant} (seed {seed})");
        let points: Vec<(f64, f64)> = read_jsonl(&dir.join("metrics.jsonl")).iter().filter_map(|v| Some((v["step"].as_f64()?, v["loss"].as_f64()?))).collect();
        let records = read_jsonl(&dir.join("dynamics.jsonl"));
        loss.push(Series { label: label.clone(), colour: colour_of(&variant), points, dashed: false, markers: false });
        let points = records.iter().filter_map(|v| {
            let layers = v["layers"].as_array()?;
            let f: Vec<f64> = layers.iter().filter_map(|l| l["first_token_attention"].as_f64()).collect();
            Some((v["step"].as_f64()?, f.iter().sum::<f64>() / f.len().max(1) as f64))
        }).collect();
        dynamics.push(Series { label: label.clone(), colour: colour_of(&variant), points, dashed: false, markers: true });
        // Gate mean and max activation over training, averaged over layers.
        let per_step = |key: &str| -> Vec<(f64, f64)> {
            records.iter().filter_map(|v| {
                let f: Vec<f64> = v["layers"].as_array()?.iter().filter_map(|l| l[key].as_f64()).collect();
                (!f.is_empty()).then(|| Some((v["step"].as_f64()?, f.iter().sum::<f64>() / f.len() as f64)))?
            }).collect()
        };
        let gates = per_step("gate_mean");
        if !gates.is_empty() {
            gate_dyn.push(Series { label: label.clone(), colour: colour_of(&variant), points: gates, dashed: false, markers: true });
        }
        act_dyn.push(Series { label, colour: colour_of(&variant), points: per_step("max_activation"), dashed: false, markers: true });
    }
    chart("loss_curves", LineChart {
        title: "Training loss".into(),
        x_label: "optimiser step".into(),
        y_label: "cross-entropy (nats per token)".into(),
        aggregation: "Loss of the training batch at each logged step (every train.log_every steps), one line per run.".into(),
        series: loss,
        integer_x: false,
    })?;
    chart("first_token_attention_over_training", LineChart {
        title: "First-token attention during training".into(),
        x_label: "optimiser step".into(),
        y_label: "attention on position 0 (probability)".into(),
        aggregation: "Mean over layers, heads and queries 1..T on a fixed held-out batch (train.dynamics_batch sequences), one line per run.".into(),
        series: dynamics,
        integer_x: false,
    })?;
    if !gate_dyn.is_empty() {
        chart("gate_mean_over_training", LineChart {
            title: "Mean gate score during training".into(),
            x_label: "optimiser step".into(),
            y_label: "mean gate score".into(),
            aggregation: "Mean over layers, positions and gate elements on a fixed held-out batch, one line per gated run.".into(),
            series: gate_dyn,
            integer_x: false,
        })?;
    }
    chart("max_activation_over_training", LineChart {
        title: "Largest activation during training".into(),
        x_label: "optimiser step".into(),
        y_label: "max |h| of the block output (units of h)".into(),
        aggregation: "Largest |h| of each block's output on a fixed held-out batch, mean over layers; one line per run.".into(),
        series: act_dyn,
        integer_x: false,
    })?;
    // Length generalisation, where `gatelab eval-length` has measured it.
    out.extend(crate::length::write_report(sweep, &crate::length::read_evals(sweep))?);
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Writes `report.html`: the finding, the table and every chart inline (one file, no links
/// needed to view it).
pub fn write_html(sweep: &Path, summary: &Summary, charts: &[ChartFile], title: &str) -> Result<(), String> {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}table{{border-collapse:collapse;font-size:14px}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}figure{{margin:2em 0}}figcaption{{color:#555;font-size:14px}}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    let finding = escape(&summary.finding).replace("**", "");
    let _ = writeln!(html, "<p><strong>{finding}</strong></p>");
    html.push_str("<table><tr><th>variant</th><th>paper</th><th>params</th><th>val loss</th><th>val ppl</th><th>F-Attn</th><th>Sink</th><th>max act</th><th>gate mean</th><th>diverged</th></tr>\n");
    for r in &summary.rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
            escape(&r.variant), escape(&r.paper), r.params, Spread::show(r.valid_loss, 4), Spread::show(r.perplexity, 2), Spread::show(r.first_token_attention, 3),
            Spread::show(r.sink, 3), Spread::show(r.max_activation, 2), Spread::show(r.gate_mean, 3), r.diverged, r.runs
        );
    }
    html.push_str("</table>\n");
    for c in charts {
        let svg = std::fs::read_to_string(sweep.join(format!("{}.svg", c.stem))).map_err(|e| format!("{}.svg: {e}", c.stem))?;
        let svg = svg.trim_start_matches(|ch| ch != '<').to_string();
        let _ = writeln!(html, "<figure>{svg}<figcaption>{} Data: <a href=\"{s}.csv\">{s}.csv</a>, image: <a href=\"{s}.png\">{s}.png</a>.</figcaption></figure>", escape(&c.caption), s = c.stem);
    }
    // One sequence's attention maps of each variant (its first run).
    let mut shown = std::collections::HashSet::new();
    for dir in runs_under(sweep)? {
        let Ok(RunInfo { variant, .. }) = read_run(&dir) else { continue };
        let Ok(svg) = std::fs::read_to_string(dir.join("attention_maps.svg")) else { continue };
        if shown.insert(variant.clone()) {
            let svg = svg.trim_start_matches(|ch| ch != '<');
            let rel = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let _ = writeln!(html, "<figure>{svg}<figcaption>{}: attention probabilities of one held-out sequence (query × key). Data: <a href=\"{rel}/attention_maps.csv\">{rel}/attention_maps.csv</a>.</figcaption></figure>", escape(&variant));
        }
    }
    html.push_str("</body></html>\n");
    crate::write_atomic(&sweep.join("report.html"), &html)
}

/// Two sweeps side by side (two backends, seeds or presets): one row per variant found in either,
/// with each side's loss and sink numbers and their difference (B − A).
pub fn compare(a: &Summary, b: &Summary, name_a: &str, name_b: &str) -> String {
    let mut md = format!("# {name_a} vs {name_b}\n\nA: {}\n\nB: {}\n\n", a.finding, b.finding);
    md.push_str("| variant | val loss A | val loss B | Δ loss | F-Attn A | F-Attn B | Δ F-Attn | gate mean A | gate mean B |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut variants: Vec<&str> = a.rows.iter().map(|r| r.variant.as_str()).collect();
    variants.extend(b.rows.iter().map(|r| r.variant.as_str()).filter(|v| !a.rows.iter().any(|r| r.variant == *v)));
    let diff = |x: Option<Spread>, y: Option<Spread>, d: usize| match (x, y) {
        (Some(x), Some(y)) => format!("{:+.d$}", y.mean - x.mean, d = d),
        _ => "-".into(),
    };
    for v in variants {
        let (ra, rb) = (a.rows.iter().find(|r| r.variant == v), b.rows.iter().find(|r| r.variant == v));
        let get = |r: Option<&VariantRow>, f: fn(&VariantRow) -> Option<Spread>| r.and_then(f);
        let (la, lb) = (get(ra, |r| r.valid_loss), get(rb, |r| r.valid_loss));
        let (fa, fb) = (get(ra, |r| r.first_token_attention), get(rb, |r| r.first_token_attention));
        let (ga, gb) = (get(ra, |r| r.gate_mean), get(rb, |r| r.gate_mean));
        let _ = writeln!(
            md,
            "| {v} | {} | {} | {} | {} | {} | {} | {} | {} |",
            Spread::show(la, 4), Spread::show(lb, 4), diff(la, lb, 4),
            Spread::show(fa, 3), Spread::show(fb, 3), diff(fa, fb, 3),
            Spread::show(ga, 3), Spread::show(gb, 3)
        );
    }
    md
}
