//! The length section of a report, from the runs' `length.json` (`gatelab eval-length`):
//! perplexity and first-token attention against length per configuration (one chart per RoPE
//! scaling method, means over seeds with 95% intervals), retrieval heat maps with the no-needle
//! control beside each, and `length_summary.md` / `length_summary.csv`.

use super::Section;
use crate::charts::{
    ChartFile, HeatGrid, HeatPanel, LineChart, Point, Series, SeriesStyle, YAxis, heat_grid, line_chart,
};
use crate::error::Result;
use crate::length::{LengthEval, LengthPoint, ScalingMethod, read_evals};
use crate::summary::{Estimate, Summary};
use gatelab_rundir::write_atomic;
use std::fmt::Write as _;
use std::path::Path;

/// Each configuration (by its index in the summary) with its runs' evaluations.
fn by_group<'a>(summary: &Summary, evals: &'a [LengthEval]) -> Vec<(usize, Vec<&'a LengthEval>)> {
    summary
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (i, evals.iter().filter(|e| g.runs.iter().any(|r| r.run.path == e.run)).collect::<Vec<_>>()))
        .filter(|(_, e)| !e.is_empty())
        .collect()
}

/// The training lengths of the evaluations, in words (`32`, or `32 or 128` in a folder of mixed
/// lengths), and the one length when they share it.
fn train_lengths<'a>(evals: impl Iterator<Item = &'a LengthEval>) -> (String, Option<usize>) {
    let set: std::collections::BTreeSet<usize> = evals.map(|e| e.train_length).collect();
    let words = set.iter().map(usize::to_string).collect::<Vec<_>>().join(" or ");
    (words, if set.len() == 1 { set.first().copied() } else { None })
}

/// `f` at (method, length in tokens) over a configuration's seeds.
fn over_seeds(
    runs: &[&LengthEval],
    method: ScalingMethod,
    length: usize,
    f: &dyn Fn(&LengthPoint) -> f64,
) -> Option<Estimate> {
    Estimate::of(&runs.iter().filter_map(|e| Some((e.seed, f(e.point_at(method, length)?)))).collect::<Vec<_>>())
}

/// A column's name: `kT` where every run shares `T` (and the length is a multiple of it), else the
/// length in tokens.
fn column(length: usize, one_t: Option<usize>) -> String {
    match one_t {
        Some(t) if length.is_multiple_of(t) => format!("{}T", length / t),
        _ => length.to_string(),
    }
}

/// Writes the length charts and tables of the runs under `sweep` into `dir`; no section when no
/// run has `length.json`.
pub fn write(sweep: &Path, dir: &Path, summary: &Summary) -> Result<Option<Section>> {
    let evals = read_evals(sweep)?;
    let Some(first) = evals.first() else { return Ok(None) };
    let groups = by_group(summary, &evals);
    let methods: Vec<ScalingMethod> = ScalingMethod::ALL
        .into_iter()
        .filter(|m| evals.iter().any(|e| e.points.iter().any(|p| p.method == *m)))
        .collect();
    // Keyed by length in tokens: runs trained at different lengths meet at the same ones.
    let mut lengths: Vec<usize> = evals.iter().flat_map(|e| e.points.iter().map(|p| p.length)).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let (t, _) = train_lengths(evals.iter());
    let clean = if evals.iter().all(|e| e.held_out_clean) {
        ""
    } else {
        " Held-out windows beyond T may overlap training text (one packed file)."
    };
    let mut charts: Vec<ChartFile> = Vec::new();
    for &m in &methods {
        let series = |f: &dyn Fn(&LengthPoint) -> f64| -> Vec<Series> {
            groups
                .iter()
                .map(|(i, runs)| Series {
                    label: summary.groups[*i].name(),
                    colour: *i,
                    points: lengths
                        .iter()
                        .filter_map(|&l| {
                            over_seeds(runs, m, l, f).map(|e| Point { x: l as f64, y: e.mean, lo: e.lo, hi: e.hi })
                        })
                        .collect(),
                    style: SeriesStyle::Markers,
                })
                .collect()
        };
        let chart = LineChart {
            title: format!("Perplexity beyond the training length (RoPE scaling: {})", m.name()),
            x_label: format!("evaluation length (tokens; trained at {t})"),
            y_label: "held-out perplexity (eval-length)".into(),
            caption: format!(
                "{} held-out validation sequences per length, every target position; factor = length / T (T = {t}). Means over seeds, 95% Student-t error bars.{clean}",
                first.options.sequences
            ),
            series: series(&|p| p.perplexity),
            integer_x: false,
            y: YAxis::Fit,
        };
        charts.push(line_chart(dir, &format!("length_perplexity_{}", m.name()), &chart)?);
        // Recall against length: the length study's headline on a recall corpus.
        if let Some(chance) = first.recall_chance
            && evals.iter().all(|e| e.points.iter().all(|p| p.accuracy.is_some()))
        {
            let mut recall = series(&|p| p.accuracy.unwrap_or(f64::NAN));
            recall.push(Series {
                label: "chance (1 / values)".into(),
                colour: 0,
                points: lengths.iter().map(|&l| Point::at(l as f64, chance)).collect(),
                style: SeriesStyle::Reference,
            });
            let chart = LineChart {
                title: format!("Associative recall against context length (RoPE scaling: {})", m.name()),
                x_label: format!("evaluation length (tokens; trained at {t})"),
                y_label: "answers recalled (argmax)".into(),
                caption: format!(
                    "Share of the queries' answers predicted, over {} held-out recall sequences per length (the same pairs and queries spread over more noise as the length grows). Means over seeds, 95% Student-t error bars.",
                    first.options.sequences
                ),
                series: recall,
                integer_x: false,
                y: YAxis::Probability,
            };
            charts.push(line_chart(dir, &format!("length_recall_{}", m.name()), &chart)?);
        }
        let mut fattn = series(&|p| p.mean_first_token_attention());
        let chance: Vec<Point> = lengths
            .iter()
            .filter_map(|&l| evals.iter().find_map(|e| e.point_at(m, l)).map(|p| Point::at(p.length as f64, p.chance)))
            .collect();
        fattn.push(Series {
            label: "chance (uniform causal)".into(),
            colour: 0,
            points: chance,
            style: SeriesStyle::Reference,
        });
        let chart = LineChart {
            title: format!("First-token attention against context length (RoPE scaling: {})", m.name()),
            x_label: format!("evaluation length (tokens; trained at {t})"),
            y_label: "attention on position 0 (probability)".into(),
            caption: format!(
                "Mean over layers, heads and queries ≥ 1 of {} held-out sequences per length. Means over seeds, 95% Student-t error bars.",
                first.options.sink_sequences
            ),
            series: fattn,
            integer_x: false,
            y: YAxis::Probability,
        };
        charts.push(line_chart(dir, &format!("length_first_token_{}", m.name()), &chart)?);
    }
    charts.push(retrieval_grid(dir, summary, &groups, &methods, &lengths, first)?);
    write_tables(dir, summary, &groups, &methods, &lengths, first, clean)?;
    Ok(Some(Section { title: "Length generalisation".into(), charts }))
}

/// Retrieval accuracy by length and depth: for each configuration and method, the needle's panel
/// and, beside it, the control's (the same sequences without the needle: what the model gets
/// without retrieving).
fn retrieval_grid(
    dir: &Path,
    summary: &Summary,
    groups: &[(usize, Vec<&LengthEval>)],
    methods: &[ScalingMethod],
    lengths: &[usize],
    first: &LengthEval,
) -> Result<ChartFile> {
    let depths = first.options.needle.depths.clone();
    let panel = |title: String, runs: &[&LengthEval], m: ScalingMethod, control: bool| HeatPanel {
        title,
        rows: lengths.iter().map(usize::to_string).collect(),
        cols: depths.iter().map(|d| format!("{d}")).collect(),
        values: lengths
            .iter()
            .map(|&l| {
                depths
                    .iter()
                    .map(|&d| {
                        let at = |p: &LengthPoint| {
                            p.retrieval
                                .iter()
                                .find(|r| r.depth == d)
                                .map_or(f64::NAN, |r| if control { r.control } else { r.accuracy })
                        };
                        over_seeds(runs, m, l, &at).map_or(f64::NAN, |e| e.mean)
                    })
                    .collect()
            })
            .collect(),
    };
    let panels = groups
        .iter()
        .flat_map(|(i, runs)| {
            let name = summary.groups[*i].name();
            methods.iter().flat_map(move |&m| {
                [
                    panel(format!("{name} · {} · needle", m.name()), runs, m, false),
                    panel(format!("{name} · {} · control", m.name()), runs, m, true),
                ]
            })
        })
        .collect();
    let n = &first.options.needle;
    let grid = HeatGrid {
        title: "Needle retrieval by length and depth, beside its no-needle control".into(),
        row_label: "length (tokens)".into(),
        col_label: "needle depth".into(),
        value_label: "value tokens right".into(),
        aggregation: format!(
            "{} probes per cell: a {}-token key and {}-token value ({}) planted in held-out text, queried at the end; argmax, teacher-forced; mean over seeds. Each control panel scores the same sequences without the needle: retrieval shows only as needle above control.",
            n.samples,
            n.key_len,
            n.value_len,
            if first.recall_chance.is_some() {
                "a key the sequence does not hold and a value, of the recall corpus"
            } else if n.from_text {
                "spans of held-out text"
            } else {
                "random tokens"
            }
        ),
        panels,
        columns: 2,
    };
    heat_grid(dir, "length_retrieval", &grid)?;
    Ok(ChartFile { stem: "length_retrieval".into(), title: grid.title, caption: grid.aggregation })
}

fn write_tables(
    dir: &Path,
    summary: &Summary,
    groups: &[(usize, Vec<&LengthEval>)],
    methods: &[ScalingMethod],
    lengths: &[usize],
    first: &LengthEval,
    clean: &str,
) -> Result<()> {
    let (t, one_t) = train_lengths(groups.iter().flat_map(|(_, runs)| runs.iter().copied()));
    let thetas: std::collections::BTreeSet<String> =
        groups.iter().flat_map(|(_, runs)| runs.iter().map(|e| e.rope_theta.to_string())).collect();
    let mixed = if one_t.is_none() { " (columns: evaluation lengths in tokens)" } else { "" };
    let mut md = format!(
        "# Length generalisation\n\nTrained at T = {t}{mixed}; RoPE base {} at evaluation. Cells: mean [95% Student-t interval] over seeds.{clean}\n\n",
        thetas.into_iter().collect::<Vec<_>>().join(" or ")
    );
    let head: Vec<String> = lengths.iter().map(|&l| column(l, one_t)).collect();
    let _ = writeln!(
        md,
        "Held-out perplexity:\n\n| configuration | method | {} |\n|---|---|{}",
        head.join(" | "),
        "---:|".repeat(lengths.len())
    );
    let mut csv = String::from(
        "configuration,method,factor,length,perplexity,perplexity_lo,perplexity_hi,accuracy,accuracy_lo,accuracy_hi,last_segment_loss,first_token_attention,retrieval_accuracy,control_accuracy,runs\n",
    );
    let num = |e: &Option<Estimate>| e.as_ref().map_or(String::new(), |e| e.mean.to_string());
    let recalled = |p: &LengthPoint| p.accuracy.unwrap_or(f64::NAN);
    for (i, runs) in groups {
        let name = summary.groups[*i].name();
        for &m in methods {
            let cells: Vec<String> = lengths
                .iter()
                .map(|&l| over_seeds(runs, m, l, &|p| p.perplexity).map_or("-".into(), |e| e.show(3)))
                .collect();
            let _ = writeln!(md, "| {name} | {} | {} |", m.name(), cells.join(" | "));
            for &l in lengths {
                // A configuration trained at another length may not have been evaluated at l.
                let Some(k) = runs.iter().find_map(|e| e.point_at(m, l)).map(|p| p.factor) else { continue };
                let ppl = over_seeds(runs, m, l, &|p| p.perplexity);
                let acc = over_seeds(runs, m, l, &recalled);
                let bound = |e: &Option<Estimate>, f: fn(&Estimate) -> Option<f64>| {
                    e.as_ref().and_then(f).map_or(String::new(), |v| v.to_string())
                };
                let _ = writeln!(
                    csv,
                    "\"{name}\",{},{k},{},{},{},{},{},{},{},{},{},{},{},{}",
                    m.name(),
                    l,
                    num(&ppl),
                    bound(&ppl, |e| e.lo),
                    bound(&ppl, |e| e.hi),
                    num(&acc),
                    bound(&acc, |e| e.lo),
                    bound(&acc, |e| e.hi),
                    num(&over_seeds(runs, m, l, &|p| p.segment_loss.last().copied().unwrap_or(f64::NAN))),
                    num(&over_seeds(runs, m, l, &|p| p.mean_first_token_attention())),
                    num(&over_seeds(runs, m, l, &|p| p.retrieval_accuracy)),
                    num(&over_seeds(runs, m, l, &|p| p.control_accuracy)),
                    runs.len()
                );
            }
        }
    }
    // Each configuration against its baseline, seed by seed (the same seed: the same
    // initialisation stream, batches and held-out sequences).
    let paired: Vec<(usize, &Vec<&LengthEval>, &Vec<&LengthEval>)> = groups
        .iter()
        .filter_map(|(i, runs)| {
            let b = summary.groups[*i].baseline?;
            groups.iter().find(|(j, _)| *j == b).map(|(_, base)| (*i, runs, base))
        })
        .collect();
    let table = Table { summary, methods, lengths, head: &head, paired: &paired };
    table.paired(&mut md, "Held-out perplexity, paired difference to each configuration's baseline (Δ = configuration − baseline, seed by seed)", &|p| p.perplexity);
    if let Some(chance) = first.recall_chance {
        let _ = writeln!(
            md,
            "\nAnswers recalled (argmax over the held-out queries; chance {chance:.3}):\n\n| configuration | method | {} |\n|---|---|{}",
            head.join(" | "),
            "---:|".repeat(lengths.len())
        );
        for (i, runs) in groups {
            let name = summary.groups[*i].name();
            for &m in methods {
                let cells: Vec<String> = lengths
                    .iter()
                    .map(|&l| over_seeds(runs, m, l, &recalled).map_or("-".into(), |e| e.clipped((0.0, 1.0)).show(3)))
                    .collect();
                let _ = writeln!(md, "| {name} | {} | {} |", m.name(), cells.join(" | "));
            }
        }
        table.paired(&mut md, "Answers recalled, paired difference to each configuration's baseline (Δ = configuration − baseline, seed by seed; the baseline a grid or a retrofit names, else the ungated run)", &recalled);
    }
    let _ = writeln!(
        md,
        "\nFirst-token attention (mean over layers) · needle retrieval (its control without the needle):\n\n| configuration | method | {} |\n|---|---|{}",
        head.join(" | "),
        "---:|".repeat(lengths.len())
    );
    for (i, runs) in groups {
        let name = summary.groups[*i].name();
        for &m in methods {
            let mean =
                |f: &dyn Fn(&LengthPoint) -> f64, l: usize| over_seeds(runs, m, l, f).map_or(f64::NAN, |e| e.mean);
            let cells: Vec<String> = lengths
                .iter()
                .map(|&l| {
                    if !runs.iter().any(|e| e.point_at(m, l).is_some()) {
                        return "-".to_string();
                    }
                    format!(
                        "{:.3} · {:.2} ({:.2})",
                        mean(&|p| p.mean_first_token_attention(), l),
                        mean(&|p| p.retrieval_accuracy, l),
                        mean(&|p| p.control_accuracy, l)
                    )
                })
                .collect();
            let _ = writeln!(md, "| {name} | {} | {} |", m.name(), cells.join(" | "));
        }
    }
    write_atomic(&dir.join("length_summary.md"), md.as_bytes())?;
    write_atomic(&dir.join("length_summary.csv"), csv.as_bytes())?;
    Ok(())
}

/// What the paired tables of `length_summary.md` share: the configurations, methods and lengths,
/// the column heads, and each configuration paired with its baseline's evaluations.
struct Table<'a> {
    summary: &'a Summary,
    methods: &'a [ScalingMethod],
    lengths: &'a [usize],
    head: &'a [String],
    paired: &'a [(usize, &'a Vec<&'a LengthEval>, &'a Vec<&'a LengthEval>)],
}

impl Table<'_> {
    /// A table of `f`'s paired difference (configuration − baseline, seed by seed) per method and
    /// length under `title`; nothing when no configuration has a baseline.
    fn paired(&self, md: &mut String, title: &str, f: &dyn Fn(&LengthPoint) -> f64) {
        if self.paired.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n{title}:\n\n| configuration | method | {} |\n|---|---|{}",
            self.head.join(" | "),
            "---:|".repeat(self.lengths.len())
        );
        for (i, runs, base) in self.paired {
            for &m in self.methods {
                let cells: Vec<String> = self
                    .lengths
                    .iter()
                    .map(|&l| {
                        over_seeds(runs, m, l, f)
                            .zip(over_seeds(base, m, l, f))
                            .and_then(|(g, b)| g.paired_minus(&b))
                            .map_or("-".into(), |d| d.show_signed(3))
                    })
                    .collect();
                let _ = writeln!(md, "| {} | {} | {} |", self.summary.groups[*i].name(), m.name(), cells.join(" | "));
            }
        }
    }
}
