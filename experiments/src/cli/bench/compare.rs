//! What a bench run's measurements say side by side: each case's best round, the gates' step
//! time against the first variant, each gatelab backend against PyTorch in the same precision,
//! bf16 against f32, and the markdown report of them.

use super::BenchArgs;
use gatelab::bench::{self, Measurement};
use std::fmt::Write as _;

fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Each (implementation, variant)'s best round — the least disturbed by the machine — in the
/// order first measured (peak memory: the largest).
pub(super) fn best_of(every: &[(usize, Measurement)]) -> Vec<Measurement> {
    let mut best: Vec<Measurement> = Vec::new();
    for (_, m) in every {
        match best.iter_mut().find(|b| b.implementation == m.implementation && b.variant == m.variant) {
            Some(b) => {
                b.train_tokens_per_s = b.train_tokens_per_s.max(m.train_tokens_per_s);
                b.forward_tokens_per_s = b.forward_tokens_per_s.max(m.forward_tokens_per_s);
                b.analysis_tokens_per_s = larger(b.analysis_tokens_per_s, m.analysis_tokens_per_s);
                b.peak_rss_mib = larger(b.peak_rss_mib, m.peak_rss_mib);
            }
            // Its steps' times stay with their round (`rounds_measured`).
            None => best.push(Measurement { step_seconds: Vec::new(), ..m.clone() }),
        }
    }
    best
}

/// One variant's training step time against the reference variant's on one implementation.
///
/// Without `--interleave`, from the rounds in which both were measured: each round's ratio is
/// taken between two processes that ran minutes apart at most, so a slow hour of the machine
/// cancels out; the median of those is the figure, and the spread says how far to trust it.
/// With it, from every timed step: the two variants' step `i` ran back to back in one process,
/// so each ratio is taken seconds apart; the median of all of them (over every round) is the
/// figure, with a distribution-free 95% confidence interval of that median.
#[derive(serde::Serialize, Debug, Clone)]
pub(super) struct Overhead {
    implementation: String,
    variant: String,
    median: f64,
    min: f64,
    max: f64,
    /// Rounds in which both variants were measured.
    rounds: usize,
    /// Paired ratios the median is taken over: one per round, or one per interleaved step.
    pairs: usize,
    /// 95% confidence interval of the median (interleaved only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ci95: Option<[f64; 2]>,
}

/// The median of `sorted` (ascending, non-empty).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) }
}

/// A distribution-free 95% confidence interval of the median of `sorted` (ascending): the order
/// statistics `k` in from either end, `k = ⌊(n − 1.96·√n) / 2⌋` (the normal approximation of the
/// binomial count below the median); the whole range below six samples.
fn median_ci95(sorted: &[f64]) -> [f64; 2] {
    let n = sorted.len();
    let k = ((n as f64 - 1.96 * (n as f64).sqrt()) / 2.0).floor().max(0.0) as usize;
    [sorted[k.min(n - 1)], sorted[(n - 1).saturating_sub(k)]]
}

/// The measurement of `(implementation, variant)` in `round`.
fn measured<'a>(
    every: &'a [(usize, Measurement)],
    round: usize,
    implementation: &str,
    variant: &str,
) -> Option<&'a Measurement> {
    every
        .iter()
        .find(|(r, m)| *r == round && m.implementation == implementation && m.variant == variant)
        .map(|(_, m)| m)
}

/// `(a, b)` for every round in which both `(imp_a, variant_a)` and `(imp_b, variant_b)` were
/// measured, in the order `b`'s rounds were.
fn same_rounds<'a>(
    every: &'a [(usize, Measurement)],
    (imp_a, variant_a): (&str, &str),
    (imp_b, variant_b): (&str, &str),
) -> Vec<(&'a Measurement, &'a Measurement)> {
    every
        .iter()
        .filter(|(_, m)| m.implementation == imp_b && m.variant == variant_b)
        .filter_map(|(r, b)| Some((measured(every, *r, imp_a, variant_a)?, b)))
        .collect()
}

pub(super) fn overheads(every: &[(usize, Measurement)], variants: &[String], interleaved: bool) -> Vec<Overhead> {
    let Some(reference) = variants.first() else { return vec![] };
    let imps: std::collections::BTreeSet<&str> = every.iter().map(|(_, m)| m.implementation.as_str()).collect();
    let mut out = Vec::new();
    for imp in imps {
        for v in &variants[1..] {
            let both = same_rounds(every, (imp, reference), (imp, v));
            let mut ratios: Vec<f64> = if interleaved {
                both.iter()
                    .flat_map(|(a, b)| b.step_seconds.iter().zip(&a.step_seconds).map(|(tb, ta)| tb / ta))
                    .collect()
            } else {
                both.iter().map(|(a, b)| a.train_tokens_per_s / b.train_tokens_per_s).collect()
            };
            if ratios.is_empty() {
                continue;
            }
            ratios.sort_by(f64::total_cmp);
            let n = ratios.len();
            out.push(Overhead {
                implementation: imp.into(),
                variant: v.clone(),
                median: median(&ratios),
                min: ratios[0],
                max: ratios[n - 1],
                rounds: both.len(),
                pairs: n,
                ci95: interleaved.then(|| median_ci95(&ratios)),
            });
        }
    }
    out
}

/// A gatelab implementation's training speed over PyTorch's on one variant, from the rounds in
/// which both were measured (minutes apart at most): the median of those rounds' ratios, and
/// their range.
#[derive(serde::Serialize, Debug, Clone)]
pub(super) struct PeerRatio {
    implementation: String,
    variant: String,
    /// `pytorch-eager` or `pytorch-compile`.
    peer: String,
    median: f64,
    min: f64,
    max: f64,
    rounds: usize,
}

pub(super) fn against_peers(every: &[(usize, Measurement)]) -> Vec<PeerRatio> {
    // Each gatelab (implementation, variant), in the order first measured.
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for (_, m) in every.iter().filter(|(_, m)| m.implementation.starts_with("gatelab-")) {
        if !cases.contains(&(m.implementation.as_str(), m.variant.as_str())) {
            cases.push((m.implementation.as_str(), m.variant.as_str()));
        }
    }
    let mut out = Vec::new();
    for (imp, variant) in cases {
        // Each precision against PyTorch in the same precision (bf16: autocast).
        let suffix = if imp.ends_with("-bf16") { "-bf16" } else { "" };
        for peer in ["pytorch-eager", "pytorch-compile"].map(|p| format!("{p}{suffix}")) {
            let peer = peer.as_str();
            let mut ratios: Vec<f64> = same_rounds(every, (peer, variant), (imp, variant))
                .iter()
                .map(|(p, a)| a.train_tokens_per_s / p.train_tokens_per_s)
                .collect();
            if ratios.is_empty() {
                continue;
            }
            ratios.sort_by(f64::total_cmp);
            out.push(PeerRatio {
                implementation: imp.into(),
                variant: variant.into(),
                peer: peer.into(),
                median: median(&ratios),
                min: ratios[0],
                max: ratios[ratios.len() - 1],
                rounds: ratios.len(),
            });
        }
    }
    out
}

/// A bf16 implementation's training speed over its f32 self (`gatelab-tch-bf16` over
/// `gatelab-tch`, `pytorch-eager-bf16` over `pytorch-eager`), round by round.
#[derive(serde::Serialize, Debug, Clone)]
pub(super) struct PrecisionRatio {
    /// The f32 implementation.
    of: String,
    variant: String,
    median: f64,
    min: f64,
    max: f64,
    rounds: usize,
}

/// Every implementation measured in both precisions, bf16 tokens/s over f32 in the same round.
pub(super) fn bf16_over_f32(every: &[(usize, Measurement)]) -> Vec<PrecisionRatio> {
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for (_, m) in every {
        if let Some(base) = m.implementation.strip_suffix("-bf16")
            && !cases.contains(&(base, m.variant.as_str()))
        {
            cases.push((base, m.variant.as_str()));
        }
    }
    let mut out = Vec::new();
    for (base, variant) in cases {
        let bf16 = format!("{base}-bf16");
        let mut ratios: Vec<f64> = same_rounds(every, (base, variant), (&bf16, variant))
            .iter()
            .map(|(f, b)| b.train_tokens_per_s / f.train_tokens_per_s)
            .collect();
        if ratios.is_empty() {
            continue;
        }
        ratios.sort_by(f64::total_cmp);
        out.push(PrecisionRatio {
            of: base.into(),
            variant: variant.into(),
            median: median(&ratios),
            min: ratios[0],
            max: ratios[ratios.len() - 1],
            rounds: ratios.len(),
        });
    }
    out
}

/// The markdown report: every measurement (its best round) with its ratio to PyTorch eager; each
/// gatelab implementation against PyTorch eager and compiled, round by round; and each variant's
/// step time against the first variant's per implementation (median over rounds).
pub(super) fn table(
    best: &[Measurement],
    overhead: &[Overhead],
    peers: &[PeerRatio],
    precision: &[PrecisionRatio],
    args: &BenchArgs,
) -> String {
    let find = |imp: &str, v: &str| best.iter().find(|m| m.implementation == imp && m.variant == v);
    let opt = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let cpu = bench::cpu_info();
    let flags: Vec<&str> = cpu["flags"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect();
    let mut s = format!(
        "CPU: {} ({}), {} threads.\n\n",
        cpu["model"].as_str().unwrap_or("unknown"),
        if flags.is_empty() { "none of avx2, avx512f, avx512_bf16, amx_bf16".to_string() } else { flags.join(", ") },
        args.threads
    );
    s.push_str(
        "| variant | implementation | train tok/s | × PyTorch eager | forward tok/s | analysis tok/s | peak MiB |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for m in best {
        let suffix = if m.implementation.ends_with("-bf16") { "-bf16" } else { "" };
        let ratio =
            find(&format!("pytorch-eager{suffix}"), &m.variant).map(|p| m.train_tokens_per_s / p.train_tokens_per_s);
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {:.0} | {} | {} |",
            m.variant,
            m.implementation,
            m.train_tokens_per_s,
            opt(ratio, 2),
            m.forward_tokens_per_s,
            opt(m.analysis_tokens_per_s, 0),
            opt(m.peak_rss_mib, 0)
        );
    }
    if !peers.is_empty() {
        let compiled = peers.iter().any(|p| p.peer.starts_with("pytorch-compile"));
        let _ = writeln!(
            s,
            "\nTraining speed against PyTorch in the same precision (bf16: autocast; same variant, same round; median of the rounds' ratios, lowest–highest in brackets):\n\n| variant | implementation | × PyTorch eager |{}\n|---|---|---:|{}",
            if compiled { " × torch.compile |" } else { "" },
            if compiled { "---:|" } else { "" }
        );
        let cell = |imp: &str, v: &str, peer: &str| match peers
            .iter()
            .find(|p| p.implementation == imp && p.variant == v && p.peer == peer)
        {
            Some(p) if p.rounds > 1 => format!("{:.2} ({:.2}–{:.2})", p.median, p.min, p.max),
            Some(p) => format!("{:.2}", p.median),
            None => "-".into(),
        };
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for p in peers {
            if !rows.contains(&(p.variant.as_str(), p.implementation.as_str())) {
                rows.push((p.variant.as_str(), p.implementation.as_str()));
            }
        }
        for (v, imp) in rows {
            let suffix = if imp.ends_with("-bf16") { "-bf16" } else { "" };
            let mut line = format!("| {v} | {imp} | {} |", cell(imp, v, &format!("pytorch-eager{suffix}")));
            if compiled {
                line += &format!(" {} |", cell(imp, v, &format!("pytorch-compile{suffix}")));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    if !precision.is_empty() {
        let _ = writeln!(
            s,
            "\nTraining speed in bf16 over f32 (`train.precision`; same variant, same round; median of the rounds' ratios, lowest–highest in brackets):\n\n| variant | implementation | bf16 ÷ f32 tokens/s |\n|---|---|---:|"
        );
        for p in precision {
            let spread = if p.rounds > 1 { format!(" ({:.2}–{:.2})", p.min, p.max) } else { String::new() };
            let _ = writeln!(s, "| {} | {} | {:.2}{spread} |", p.variant, p.of, p.median);
        }
    }
    if let (Some(reference), true) = (args.variants.first(), args.variants.len() > 1) {
        let spread = if args.interleave {
            format!(
                "median of {} interleaved step pairs ({} rounds of {} steps), its 95% confidence interval in brackets",
                args.rounds * args.steps,
                args.rounds,
                args.steps
            )
        } else if args.rounds > 1 {
            format!("median of {} rounds' paired ratios, lowest–highest in brackets", args.rounds)
        } else {
            "one round".into()
        };
        let _ = writeln!(
            s,
            "\nTraining step time against {reference} (same tokens per step; {spread}):\n\n| implementation | {} |\n|---|{}",
            args.variants[1..].join(" | "),
            "---:|".repeat(args.variants.len().saturating_sub(1))
        );
        let imps: std::collections::BTreeSet<&str> = best.iter().map(|m| m.implementation.as_str()).collect();
        for imp in imps {
            let cells: Vec<String> = args.variants[1..]
                .iter()
                .map(|v| match overhead.iter().find(|o| o.implementation == imp && &o.variant == v) {
                    Some(Overhead { median, ci95: Some([lo, hi]), .. }) => format!("{median:.2}× ({lo:.2}–{hi:.2})"),
                    Some(o) if o.rounds > 1 => format!("{:.2}× ({:.2}–{:.2})", o.median, o.min, o.max),
                    Some(o) => format!("{:.2}×", o.median),
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(s, "| {imp} | {} |", cells.join(" | "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{median, median_ci95};

    #[test]
    fn the_median_interval_leaves_out_the_order_statistics_the_binomial_allows() {
        let x: Vec<f64> = (1..=100).map(f64::from).collect();
        // n = 100: k = ⌊(100 − 19.6) / 2⌋ = 40, so the 41st and 60th values.
        assert_eq!(median_ci95(&x), [41.0, 60.0]);
        assert_eq!(median(&x), 50.5);
        // n = 10: k = ⌊(10 − 6.20) / 2⌋ = 1.
        assert_eq!(median_ci95(&x[..10]), [2.0, 9.0]);
        // Below six samples the interval is the range.
        assert_eq!(median_ci95(&x[..5]), [1.0, 5.0]);
        assert_eq!(median_ci95(&x[..1]), [1.0, 1.0]);
        assert_eq!(median(&x[..5]), 3.0);
    }
}
