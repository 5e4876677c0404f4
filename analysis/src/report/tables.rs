//! `summary.md` and `summary.csv`: one row per configuration, each metric with its mean and 95%
//! interval over seeds, and a second table of paired differences to the baseline.

use super::setup::Setup;
use crate::summary::{Estimate, Group, Metric, Summary, status_words};
use std::fmt::Write as _;

/// The metrics of the first table.
pub const TABLE_METRICS: [Metric; 6] = [
    Metric::ValLoss,
    Metric::BestValLoss,
    Metric::FirstTokenAttention,
    Metric::Sink,
    Metric::MaxActivation,
    Metric::GateMean,
];

/// The metrics compared with the baseline.
pub const PAIRED_METRICS: [Metric; 4] =
    [Metric::ValLoss, Metric::BestValLoss, Metric::FirstTokenAttention, Metric::MaxActivation];

fn cell(e: Option<&Estimate>, digits: usize, signed: bool) -> String {
    match e {
        None => "-".into(),
        Some(e) if signed => e.show_signed(digits),
        Some(e) => e.show(digits),
    }
}

/// The first table's rows as cells: configuration, paper, params, runs, then [`TABLE_METRICS`].
pub fn group_cells(g: &Group) -> Vec<String> {
    let mut cells = vec![g.name(), g.paper.clone(), g.params.to_string(), format!("{}/{}", g.done(), g.runs.len())];
    cells.extend(TABLE_METRICS.iter().map(|m| cell(g.estimates.get(m), m.digits(), false)));
    cells
}

/// The paired table's rows as cells: configuration, its baseline, pairs, then [`PAIRED_METRICS`].
pub fn paired_cells(g: &Group, summary: &Summary) -> Option<Vec<String>> {
    let b = &summary.groups[g.baseline?];
    let pairs = g.versus_baseline.values().map(|e| e.n).max().unwrap_or(0);
    let mut cells = vec![g.name(), b.name(), pairs.to_string()];
    cells.extend(PAIRED_METRICS.iter().map(|m| {
        let c = cell(g.versus_baseline.get(m), m.digits(), true);
        match g.verdicts.get(m) {
            Some(v) => format!("{c} · {}", v.words()),
            None => c,
        }
    }));
    Some(cells)
}

/// A table shown only when the sweep has what it reports: its section title, header, rows and
/// the note that defines its columns.
pub struct NoteTable {
    /// Section title.
    pub title: &'static str,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, one row per configuration.
    pub rows: Vec<Vec<String>>,
    /// What the columns mean.
    pub note: &'static str,
}

/// `configuration`, the `leading` columns, then `metrics`' names.
fn header_of(leading: &[&str], metrics: &[Metric]) -> Vec<String> {
    let mut h: Vec<String> =
        std::iter::once("configuration").chain(leading.iter().copied()).map(String::from).collect();
    h.extend(metrics.iter().map(|m| m.name().to_string()));
    h
}

/// The group's name, the `leading` cells, then its estimates of `metrics`.
fn cells_of(g: &Group, leading: Vec<String>, metrics: &[Metric]) -> Vec<String> {
    let mut cells = vec![g.name()];
    cells.extend(leading);
    cells.extend(metrics.iter().map(|m| cell(g.estimates.get(m), m.digits(), false)));
    cells
}

/// The tables beside the two main ones: where the attention goes (when any run uses a sink cure)
/// and the interventions on the first token's peak (for the configurations analysed with them).
pub fn extra_tables(summary: &Summary) -> Vec<NoteTable> {
    let mut tables = Vec::new();
    if summary.groups.iter().any(|g| g.runs.iter().any(|r| !r.file.config.model.cure.is_softmax())) {
        let rows = summary
            .groups
            .iter()
            .map(|g| cells_of(g, vec![g.runs[0].file.config.model.cure.describe()], &CURE_METRICS))
            .collect();
        tables.push(NoteTable {
            title: "Where the attention goes",
            header: header_of(&["attention weights"], &CURE_METRICS),
            rows,
            note: CURES_NOTE,
        });
    }
    tables.extend(metric_table(
        summary,
        Metric::FirstTokenNorm,
        &ACTIVATION_COLUMNS,
        "Massive activations: the channel peak and the token-norm peak",
        ACTIVATIONS_NOTE,
    ));
    tables.extend(metric_table(
        summary,
        Metric::AnalysisLoss,
        &INTERVENTION_COLUMNS,
        "Interventions on the first token's peak activation",
        INTERVENTIONS_NOTE,
    ));
    let continued: Vec<Vec<String>> = summary.groups.iter().filter_map(parent_cells).collect();
    if !continued.is_empty() {
        let mut header: Vec<String> = ["configuration", "started from", "pairs"].map(String::from).to_vec();
        header.extend(PARENT_METRICS.iter().map(|m| format!("{} (parent → Δ)", m.name())));
        tables.push(NoteTable {
            title: "Against the run each started from (paired by seed)",
            header,
            rows: continued,
            note: PARENT_NOTE,
        });
    }
    if let Some(t) = left_out(summary) {
        tables.push(t);
    }
    let routed: Vec<Vec<String>> = summary.groups.iter().filter_map(routing_cells).collect();
    if !routed.is_empty() {
        tables.push(NoteTable {
            title: "Mixture-of-experts routing",
            header: [
                "configuration",
                "experts",
                "busiest / idlest expert",
                "router entropy / ln E",
                "balance loss",
                "z-loss",
                "dropped",
            ]
            .map(String::from)
            .to_vec(),
            rows: routed,
            note: ROUTING_NOTE,
        });
    }
    tables
}

/// A table of `columns`, one row per configuration that has `present` (None when none has it).
fn metric_table(
    summary: &Summary,
    present: Metric,
    columns: &[Metric],
    title: &'static str,
    note: &'static str,
) -> Option<NoteTable> {
    let rows: Vec<Vec<String>> = summary
        .groups
        .iter()
        .filter(|g| g.estimates.contains_key(&present))
        .map(|g| cells_of(g, vec![], columns))
        .collect();
    (!rows.is_empty()).then(|| NoteTable { title, header: header_of(&[], columns), rows, note })
}

/// The metrics compared with a continued run's parent.
const PARENT_METRICS: [Metric; 4] =
    [Metric::ValLoss, Metric::FirstTokenAttention, Metric::MaxActivation, Metric::GateMean];

const PARENT_NOTE: &str = "Runs that started from another run's final weights (retrofit, extend: config.json's meta.parent), against that run, seed by seed: each cell is the parents' mean, then the paired difference Δ = run − its parent with its 95% interval. Each run is measured at its own sequence length (a child at 2T against a parent at T compares two lengths). The parents' own report is in their sweep folder.";

/// A continued configuration's row against its parents: configuration, parent, pairs, then per
/// [`PARENT_METRICS`] the parents' mean and the paired difference. None without parents.
fn parent_cells(g: &Group) -> Option<Vec<String>> {
    if g.versus_parent.is_empty() {
        return None;
    }
    let pairs = g.versus_parent.values().map(|e| e.n).max().unwrap_or(0);
    let mut cells = vec![g.name(), g.parent.clone(), pairs.to_string()];
    cells.extend(PARENT_METRICS.iter().map(|m| match (g.parent_estimates.get(m), g.versus_parent.get(m)) {
        (Some(p), Some(d)) => format!("{:.*} → {}", m.digits(), p.mean, d.show_signed(m.digits())),
        _ => "-".into(),
    }));
    Some(cells)
}

/// The runs whose numbers cannot be trusted (a done run whose weights are missing or damaged, or
/// whose files do not read) and the folders that cannot be read at all: each named, with its
/// last validation loss struck out. None when there are none.
fn left_out(summary: &Summary) -> Option<NoteTable> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for g in &summary.groups {
        for r in g.runs.iter().filter(|r| r.status.is_done() && r.problem.is_some()) {
            let loss = r.run.last_eval().ok().flatten().map_or("-".into(), |e| format!("~~{:.4}~~", e.loss));
            rows.push(vec![r.run.name(), g.name(), r.problem.clone().unwrap_or_default(), loss]);
        }
    }
    for (name, why) in &summary.unreadable {
        rows.push(vec![name.clone(), "-".into(), format!("unreadable: {why}"), "-".into()]);
    }
    (!rows.is_empty()).then(|| NoteTable {
        title: "Runs left out of the means",
        header: ["run", "configuration", "why", "val loss"].map(String::from).to_vec(),
        rows,
        note: LEFT_OUT_NOTE,
    })
}

const LEFT_OUT_NOTE: &str = "These runs are in no mean, interval or verdict above. A done run whose model.safetensors is missing or no longer matches the checksum in its weights.json is retrained by rerunning its sweep (training is deterministic, so it ends with the same weights); its old validation loss is struck out, not used.";

const ROUTING_NOTE: &str = "Over the analysed sequences, every layer, mean over seeds. Load: an expert's share of the routing slots (1/E each when balanced); busiest / idlest: the largest share over the smallest, worst layer. Router entropy: the mean entropy of a token's router distribution over its largest value, ln E (1: the router is uniform). Balance loss: E·Σ f_e·P_e, unweighted (1 when balanced). Dropped: tokens no expert took (gatelab's experts have no capacity limit).";

/// A mixture-of-experts configuration's routing row (None for a dense one).
fn routing_cells(g: &crate::summary::Group) -> Option<Vec<String>> {
    let layers = g.routing();
    let first = layers.first()?.first()?;
    let all = || layers.iter().flatten();
    let n = all().count() as f64;
    let mean = |f: &dyn Fn(&crate::stats::RoutingStats) -> f64| all().map(|r| f(r)).sum::<f64>() / n;
    let spread = all()
        .map(|r| {
            let (hi, lo) = r.load.iter().fold((0.0f64, f64::INFINITY), |(h, l), &x| (h.max(x), l.min(x)));
            hi / lo.max(1e-12)
        })
        .fold(0.0f64, f64::max);
    Some(vec![
        g.name(),
        first.load.len().to_string(),
        if spread.is_finite() && spread < 1e6 { format!("{spread:.2}") } else { "∞ (an expert idle)".into() },
        format!("{:.3}", mean(&|r| r.entropy / r.max_entropy.max(1e-12))),
        format!("{:.3}", mean(&|r| r.balance_loss)),
        format!("{:.3}", mean(&|r| r.z_loss)),
        format!("{:.3}", mean(&|r| r.dropped)),
    ])
}

/// The interventions table's columns: F-Attn as trained, the peak's size, then the loss and F-Attn
/// as trained and with the peak edited.
const INTERVENTION_COLUMNS: [Metric; 7] = [
    Metric::FirstTokenAttention,
    Metric::PeakRatio,
    Metric::AnalysisLoss,
    Metric::LossPeakZeroed,
    Metric::LossPeakMeaned,
    Metric::FirstTokenAttentionPeakZeroed,
    Metric::FirstTokenAttentionPeakMeaned,
];

/// The activations table's columns: Sun et al.'s channel peak beside Guo et al.'s token-norm peak.
const ACTIVATION_COLUMNS: [Metric; 6] = [
    Metric::MaxActivation,
    Metric::Top1Median,
    Metric::Top1MedianPeakLayer,
    Metric::FirstTokenNorm,
    Metric::MaxTokenNorm,
    Metric::MaxTokenNormFirst,
];

/// What the activations table shows.
pub const ACTIVATIONS_NOTE: &str = "Two definitions of a massive activation (docs/metrics.md), each per block output and then the mean over layers. Sun et al. 2024, one channel: max act is the largest |h| over every position and dimension; top1/median is it over the median |h| of the batch (peak layer: in the layer where that ratio is largest; a massive activation is one of about 100× or more there). Guo et al. 2024, one token's whole state: ‖h₀‖/median is the first token's hidden-state norm over the median token norm of its sequence; max ‖h‖/median the same for the sequence's largest token norm; max ‖h‖ at first the share of sequences whose largest token norm is the first token's. A residual-state peak shows as ‖h₀‖/median far above 1 with max ‖h‖ at first near 1.";

/// The metrics of the cures table: where each configuration's attention mass goes.
pub const CURE_METRICS: [Metric; 5] =
    [Metric::FirstTokenAttention, Metric::FirstTokenShare, Metric::Slot, Metric::RowMass, Metric::StreamingRatio];

/// What the cures table shows.
pub const CURES_NOTE: &str = "How each configuration spends its attention (docs/metrics.md, \"Attention that does not sum to 1\"): \
F-Attn is the absolute weight on position 0; F-Attn share is that weight over the row's total weight on real keys; slot is the weight \
the slot cures (softmax+1, sink logit, key/value bias) put on their extra slot, where a sink can go instead of position 0; row mass is the \
total weight on real keys (1 under softmax; less with a slot or softpick; anything under sigmoid attention). Queries ≥ 1, mean over heads \
and layers. streaming ratio (after gatelab eval --window W): held-out perplexity under a sliding window of W keys with the first token \
evicted over that with it kept, at positions ≥ W; well above 1 means the model leans on its first token. In the paired table a cure \
without a gate is compared with softmax (the cure's cost or gain), and a cure with G1 with the same cure without it (the gate on top).";

/// What the interventions table shows.
pub const INTERVENTIONS_NOTE: &str = "The first token's peak activation edited at analysis time (Sun et al. 2024): in the first block whose largest first-token channel (mean |h| over the analysed sequences) reaches half the largest of any block, that channel of position 0 is set to 0 (peak → 0) or to its mean over the sequences (peak → mean), and the loss over the analysis split (nats per real target) and F-Attn are measured again. peak/median: that channel's mean |h| over the median channel's. A massive activation that serves as a fixed bias leaves the model unchanged at its mean and breaks it at 0; an ordinary channel does neither.";

/// The header of the first table.
pub fn group_header() -> Vec<String> {
    let mut h: Vec<String> = ["configuration", "paper", "params", "runs done"].map(String::from).to_vec();
    h.extend(TABLE_METRICS.iter().map(|m| m.name().to_string()));
    h
}

/// The header of the paired table.
pub fn paired_header() -> Vec<String> {
    let mut h: Vec<String> = ["configuration", "baseline", "seed pairs"].map(String::from).to_vec();
    h.extend(PAIRED_METRICS.iter().map(|m| format!("Δ {}", m.name())));
    h
}

fn md_row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// How the numbers are computed, for every table.
pub const DEFINITIONS: &str = "Each cell is the mean over seeds with its 95% Student-t interval in brackets \
(mean ± t(0.975, n−1)·s/√n, clipped to the range the quantity cannot leave, e.g. [0, 1] for a probability; none for one seed). Δ is the paired difference to the baseline of the same configuration, seed by seed \
(the same seed gives the same initialisation stream and the same batches), averaged, with its own t interval: an interval that excludes 0 \
is a difference at this scale, one that straddles 0 is not shown to be one. val loss: the last validation pass; best val loss: the lowest \
validation pass during training (nats per token). F-Attn: attention on position 0 (BOS), mean over heads, layers and queries ≥ 1, over the \
held-out analysis split. Sink: share of (sequence, head) pairs with α(0) > 0.3 (Gu et al. 2024), mean over layers. max act: largest |h| of \
a block's output, mean over layers. gate mean: mean gate score over layers, positions and channels. Definitions: docs/metrics.md.";

/// `summary.md`.
pub fn markdown(title: &str, setup: &Setup, finding: &str, summary: &Summary) -> String {
    let mut md = format!("# {title}\n\n");
    for (k, v) in &setup.rows {
        let _ = writeln!(md, "- **{k}**: {v}");
    }
    let _ = writeln!(md, "\n{finding}\n\n## Per configuration\n");
    let header = group_header();
    let _ = writeln!(md, "{}\n|{}", md_row(&header), "---|".repeat(header.len()));
    for g in &summary.groups {
        let _ = writeln!(md, "{}", md_row(&group_cells(g)));
    }
    let unfinished: Vec<String> = summary
        .groups
        .iter()
        .filter(|g| g.done() < g.runs.len())
        .map(|g| format!("{}: {}", g.name(), status_words(g)))
        .collect();
    if !unfinished.is_empty() {
        let _ = writeln!(
            md,
            "\nNot every run finished: {}. Unfinished, diverged and failed runs are left out of the means.",
            unfinished.join("; ")
        );
    }
    let paired: Vec<Vec<String>> = summary.groups.iter().filter_map(|g| paired_cells(g, summary)).collect();
    if !paired.is_empty() {
        let header = paired_header();
        let _ = writeln!(
            md,
            "\n## Against the baseline (paired by seed)\n\n{}\n|{}",
            md_row(&header),
            "---|".repeat(header.len())
        );
        for row in &paired {
            let _ = writeln!(md, "{}", md_row(row));
        }
    }
    for t in extra_tables(summary) {
        let _ = writeln!(md, "\n## {}\n\n{}\n|{}", t.title, md_row(&t.header), "---|".repeat(t.header.len()));
        for row in &t.rows {
            let _ = writeln!(md, "{}", md_row(row));
        }
        let _ = writeln!(md, "\n{}", t.note);
    }
    if !summary.differing_keys.is_empty() {
        let _ = writeln!(md, "\nConfigurations of one variant differ in: {}.", summary.differing_keys.join(", "));
    }
    let _ = writeln!(md, "\n{DEFINITIONS}");
    if summary.groups.iter().any(|g| !g.verdicts.is_empty()) {
        let _ = writeln!(md, "\n{}", crate::summary::VERDICT_RULE);
    }
    md
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// `summary.csv`: one row per configuration; each metric's mean, interval and n, and its paired
/// difference to the baseline.
pub fn csv(summary: &Summary) -> String {
    let mut head: Vec<String> =
        ["variant", "configuration", "paper", "gate", "params", "runs", "done", "diverged", "baseline"]
            .map(String::from)
            .to_vec();
    head.extend(summary.differing_keys.iter().cloned());
    for m in Metric::ALL {
        head.extend(["mean", "lo", "hi", "n"].map(|s| format!("{}_{s}", m.key())));
    }
    for m in Metric::ALL {
        head.extend(["mean", "lo", "hi", "n"].map(|s| format!("delta_{}_{s}", m.key())));
    }
    head.extend(PAIRED_METRICS.iter().map(|m| format!("verdict_{}", m.key())));
    let mut out = head.join(",") + "\n";
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for g in &summary.groups {
        let config = serde_json::to_value(g.runs[0].file.config_without_seed()).expect("configs serialise");
        let mut row: Vec<String> = vec![
            csv_field(&g.variant),
            csv_field(&g.name()),
            csv_field(&g.paper),
            csv_field(&g.gate),
            g.params.to_string(),
            g.runs.len().to_string(),
            g.done().to_string(),
            g.diverged().to_string(),
            csv_field(&g.baseline.map(|b| summary.groups[b].name()).unwrap_or_default()),
        ];
        row.extend(
            summary
                .differing_keys
                .iter()
                .map(|k| csv_field(&crate::summary::show_value(crate::summary::lookup(&config, k)))),
        );
        for table in [&g.estimates, &g.versus_baseline] {
            for m in Metric::ALL {
                let e = table.get(&m);
                row.extend([
                    num(e.map(|e| e.mean)),
                    num(e.and_then(|e| e.lo)),
                    num(e.and_then(|e| e.hi)),
                    e.map(|e| e.n.to_string()).unwrap_or_default(),
                ]);
            }
        }
        row.extend(PAIRED_METRICS.iter().map(|m| g.verdicts.get(m).map(|v| v.words().to_string()).unwrap_or_default()));
        out += &(row.join(",") + "\n");
    }
    out
}

/// The summary as JSON (`report --json`, `compare --json`): per configuration its variant, label,
/// paper, gate, parameters, runs, every metric's estimate, the paired differences to its baseline
/// and the verdicts, with the finding and the rules that define them.
pub fn json(summary: &Summary, finding: &str) -> serde_json::Value {
    let estimates =
        |table: &std::collections::BTreeMap<Metric, Estimate>| -> serde_json::Map<String, serde_json::Value> {
            table
                .iter()
                .map(|(m, e)| (m.key().to_string(), serde_json::to_value(e).expect("estimates serialise")))
                .collect()
        };
    let groups: Vec<serde_json::Value> = summary
        .groups
        .iter()
        .map(|g| {
            serde_json::json!({
                "configuration": g.name(),
                "variant": g.variant,
                "label": g.label,
                "paper": g.paper,
                "gate": g.gate,
                "params": g.params,
                "runs": g.runs.len(),
                "done": g.done(),
                "diverged": g.diverged(),
                "baseline": g.baseline.map(|b| summary.groups[b].name()),
                "estimates": estimates(&g.estimates),
                "versus_baseline": estimates(&g.versus_baseline),
                "verdicts": g.verdicts.iter().map(|(m, v)| (m.key().to_string(), serde_json::Value::from(v.words()))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    serde_json::json!({
        "finding": finding,
        "differing_keys": summary.differing_keys,
        "configurations": groups,
        "definitions": DEFINITIONS,
        "verdict_rule": crate::summary::VERDICT_RULE,
    })
}
