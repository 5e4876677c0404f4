//! Two sweeps side by side (two backends, two presets, two builds): what differs between them,
//! each sweep's finding, and per configuration each side's numbers with the difference B − A.

use crate::summary::{Estimate, Metric, Summary, finding, show_value};
use std::fmt::Write as _;

const METRICS: [Metric; 4] = [Metric::ValLoss, Metric::FirstTokenAttention, Metric::MaxActivation, Metric::GateMean];

/// What differs between the sweeps: resolved-config keys (of their first configurations) and the
/// backend, preset and commit they ran with.
fn differences(a: &Summary, b: &Summary) -> Vec<String> {
    let (Some(ga), Some(gb)) = (a.groups.first(), b.groups.first()) else { return vec![] };
    let (fa, fb) = (&ga.runs[0].file, &gb.runs[0].file);
    let mut out: Vec<String> = fa
        .config_without_seed()
        .differences(&fb.config_without_seed())
        .into_iter()
        .map(|(k, x, y)| format!("`{k}`: {} → {}", show_value(&x), show_value(&y)))
        .collect();
    for (name, x, y) in [
        ("backend", &fa.meta.backend, &fb.meta.backend),
        ("preset", &fa.meta.preset, &fb.meta.preset),
        ("commit", &fa.meta.git_commit, &fb.meta.git_commit),
    ] {
        if x != y {
            out.push(format!("{name}: {x} → {y}"));
        }
    }
    out
}

/// B − A: paired by seed where both have the same seeds (at least two), else the difference of
/// the means without an interval.
fn difference(x: &Estimate, y: &Estimate) -> (Estimate, &'static str) {
    match y.paired_minus(x) {
        Some(d) if d.n >= 2 => (d, "paired"),
        _ => (
            Estimate { mean: y.mean - x.mean, lo: None, hi: None, sd: None, n: 1, values: vec![], non_finite: 0 },
            "means",
        ),
    }
}

/// The comparison as markdown.
pub fn compare(a: &Summary, b: &Summary, name_a: &str, name_b: &str) -> String {
    let mut md = format!("# {name_a} vs {name_b}\n\n");
    let diffs = differences(a, b);
    if diffs.is_empty() {
        md.push_str("The two sweeps' first configurations are identical (same resolved config, backend, preset and commit).\n\n");
    } else {
        let _ = writeln!(
            md,
            "What differs (A → B):\n\n{}\n",
            diffs.iter().map(|d| format!("- {d}")).collect::<Vec<_>>().join("\n")
        );
    }
    let _ = writeln!(md, "A: {}\n\nB: {}\n", finding(a), finding(b));
    let mut head = vec!["configuration".to_string()];
    for m in METRICS {
        head.extend([format!("{} A", m.name()), format!("{} B", m.name()), format!("Δ {}", m.name())]);
    }
    let _ = writeln!(md, "| {} |\n|{}", head.join(" | "), "---|".repeat(head.len()));
    let mut names: Vec<String> = a.groups.iter().map(|g| g.name()).collect();
    names.extend(b.groups.iter().map(|g| g.name()).filter(|n| !a.groups.iter().any(|g| g.name() == *n)));
    for name in names {
        let (ga, gb) = (a.groups.iter().find(|g| g.name() == name), b.groups.iter().find(|g| g.name() == name));
        let mut cells = vec![name.clone()];
        for m in METRICS {
            let (x, y) = (ga.and_then(|g| g.estimates.get(&m)), gb.and_then(|g| g.estimates.get(&m)));
            let show = |e: Option<&Estimate>| e.map_or("-".to_string(), |e| e.show(m.digits()));
            let delta = match (x, y) {
                (Some(x), Some(y)) => {
                    let (d, how) = difference(x, y);
                    format!("{} ({how})", d.show_signed(m.digits()))
                }
                _ => "-".into(),
            };
            cells.extend([show(x), show(y), delta]);
        }
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push_str("\nΔ = B − A. Paired: seed by seed over the seeds both sweeps ran (same seed, same data order), with a 95% Student-t interval; means: the difference of the two means, without an interval (fewer than two common seeds).\n");
    md
}
