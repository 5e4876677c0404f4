//! A sweep's summary: one row per variant (mean ± spread over its seeds) from the run folders'
//! `config.json`, `status.json`, `eval.jsonl` and `analysis.json`, written as `summary.csv` and
//! `summary.md`. The markdown opens with what the baseline shows: when it has no sink (F-Attn
//! within twice the chance level in every layer) it says so, instead of crediting the gate.

use crate::run::{Analysis, runs_under};
use gatelab_model::ModelConfig;
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
    let text = std::fs::read_to_string(dir.join("eval.jsonl")).ok()?;
    let v: serde_json::Value = text.lines().rev().find_map(|l| serde_json::from_str(l).ok())?;
    Some((v["loss"].as_f64()?, v["perplexity"].as_f64()?))
}

/// Reads every run folder under `sweep`.
pub fn summarize(sweep: &Path) -> Result<Summary, String> {
    let mut rows: Vec<VariantRow> = Vec::new();
    let mut values: Vec<[Vec<f64>; 6]> = Vec::new();
    let mut per_layer: Vec<Vec<Vec<f64>>> = Vec::new();
    for dir in runs_under(sweep)? {
        let path = dir.join("config.json");
        let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?).map_err(|e| format!("{}: {e}", path.display()))?;
        let model: ModelConfig = serde_json::from_value(run["config"]["model"].clone()).map_err(|e| format!("{}: {e}", path.display()))?;
        let variant = run["meta"]["variant"].as_str().unwrap_or("?").to_string();
        let status = std::fs::read_to_string(dir.join("status.json")).unwrap_or_default();
        let k = match rows.iter().position(|r| r.variant == variant) {
            Some(k) => k,
            None => {
                rows.push(VariantRow {
                    variant: variant.clone(),
                    paper: run["meta"]["paper"].as_str().unwrap_or("").to_string(),
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
                    chance: None,
                });
                values.push(Default::default());
                per_layer.push(vec![]);
                rows.len() - 1
            }
        };
        let row = &mut rows[k];
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
            values[k][0].push(loss);
            values[k][1].push(ppl);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("analysis.json")) {
            let a: Analysis = serde_json::from_str(&text).map_err(|e| format!("{}: analysis.json: {e}", dir.display()))?;
            let s = &a.stats;
            values[k][2].push(s.first_token_attention());
            values[k][3].push(s.sink());
            values[k][4].push(s.max_activation());
            if let Some(g) = s.gate_mean() {
                values[k][5].push(g);
            }
            per_layer[k].push(s.layers.iter().map(|l| l.first_token_attention[1]).collect());
            row.chance = Some(s.chance_first_token_attention[1]);
        }
    }
    for (k, row) in rows.iter_mut().enumerate() {
        let v = &values[k];
        (row.valid_loss, row.perplexity, row.first_token_attention) = (Spread::of(&v[0]), Spread::of(&v[1]), Spread::of(&v[2]));
        (row.sink, row.max_activation, row.gate_mean) = (Spread::of(&v[3]), Spread::of(&v[4]), Spread::of(&v[5]));
        if let Some(first) = per_layer[k].first() {
            row.first_token_attention_per_layer = (0..first.len()).map(|l| per_layer[k].iter().map(|r| r[l]).sum::<f64>() / per_layer[k].len() as f64).collect();
        }
    }
    let finding = finding(&rows);
    Ok(Summary { rows, finding })
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
    for (name, text) in [("summary.csv", csv), ("summary.md", md)] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gate: &str, per_layer: Vec<f64>) -> VariantRow {
        VariantRow {
            variant: gate.into(), paper: String::new(), gate: gate.into(), params: 0, runs: 1, diverged: 0, unfinished: 0,
            valid_loss: None, perplexity: None, first_token_attention: None, sink: None, max_activation: None, gate_mean: None,
            first_token_attention_per_layer: per_layer, chance: Some(0.035),
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
