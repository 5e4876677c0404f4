//! The report's figures, defined as data: per-configuration values (dot charts with intervals),
//! paired differences to the baseline, per-layer profiles, and curves over training with bands
//! over seeds. Each configuration keeps one colour in every figure.

use super::Section;
use crate::charts::{
    ChartFile, Dot, DotChart, HeatGrid, HeatPanel, LineChart, Point, Series, SeriesStyle, YAxis, dot_chart, heat_grid,
    line_chart,
};
use crate::error::Result;
use crate::summary::{Estimate, Group, Metric, Summary};
use gatelab_rundir::RunDir;
use std::path::Path;

/// A value per configuration, drawn as a dot chart.
struct ValueFigure {
    stem: &'static str,
    title: &'static str,
    metric: Metric,
    label: &'static str,
    axis: YAxis,
    /// Draw the chance level of F-Attn.
    chance: bool,
}

/// `(step, value)` points of one run's log.
type Curve = Vec<(f64, f64)>;

/// A curve over training, from each run's logs, with a band over seeds.
struct CurveFigure {
    stem: &'static str,
    title: &'static str,
    label: &'static str,
    caption: &'static str,
    axis: YAxis,
    read: fn(&RunDir) -> Result<Curve>,
}

/// A per-layer profile over seeds: a line over layers, or a dot chart for one-layer models.
#[derive(Clone, Copy)]
struct LayerFigure {
    stem: &'static str,
    title: &'static str,
    label: &'static str,
    axis: YAxis,
    of: fn(&Group) -> &Vec<Estimate>,
    /// Draw the chance level of F-Attn.
    chance: bool,
}

const SINK_LAYERS: LayerFigure = LayerFigure {
    stem: "first_token_attention_per_layer",
    title: "First-token attention per layer (cf. paper Figure 2)",
    label: "attention on position 0 (probability)",
    axis: YAxis::Probability,
    of: |g| &g.first_token_attention_per_layer,
    chance: true,
};

const MAX_ACT_LAYERS: LayerFigure = LayerFigure {
    stem: "max_activation_per_layer",
    title: "Largest activation per layer",
    label: "max |h| of the block output",
    axis: YAxis::FromZero,
    of: |g| &g.max_activation_per_layer,
    chance: false,
};

const SINK_VALUE: ValueFigure = ValueFigure {
    stem: "first_token_attention",
    title: "First-token attention (cf. paper Figure 2)",
    metric: Metric::FirstTokenAttention,
    label: "F-Attn: attention on position 0 (probability)",
    axis: YAxis::Probability,
    chance: true,
};

const MAX_ACT_VALUE: ValueFigure = ValueFigure {
    stem: "max_activation",
    title: "Largest activation (M-Act), mean over layers",
    metric: Metric::MaxActivation,
    label: "max |h| of a block's output, mean over layers",
    axis: YAxis::FromZero,
    chance: false,
};

const VAL_LOSS: ValueFigure = ValueFigure {
    stem: "val_loss",
    title: "Validation loss",
    metric: Metric::ValLoss,
    label: "val loss (nats per token)",
    axis: YAxis::Fit,
    chance: false,
};

const GATE_MEAN: ValueFigure = ValueFigure {
    stem: "gate_mean",
    title: "Mean gate score",
    metric: Metric::GateMean,
    label: "gate mean (probability)",
    axis: YAxis::Probability,
    chance: false,
};

const SHARE: ValueFigure = ValueFigure {
    stem: "first_token_share",
    title: "First-token attention as a share of the row",
    metric: Metric::FirstTokenShare,
    label: "A[i, 0] / Σ_k A[i, k] (probability)",
    axis: YAxis::Probability,
    chance: true,
};

const SLOT: ValueFigure = ValueFigure {
    stem: "slot_weight",
    title: "Weight on the slot (where the sink went)",
    metric: Metric::Slot,
    label: "weight on the extra slot (probability)",
    axis: YAxis::Probability,
    chance: false,
};

const STREAMING: ValueFigure = ValueFigure {
    stem: "streaming_ratio",
    title: "Streaming probe: first token evicted over kept",
    metric: Metric::StreamingRatio,
    label: "perplexity ratio (evicted / kept)",
    axis: YAxis::Fit,
    chance: false,
};

const CURVES: [CurveFigure; 6] = [
    CurveFigure {
        stem: "loss_curves",
        title: "Training loss",
        label: "cross-entropy of the training batch (nats per token)",
        caption: "Loss of the training batch at each logged step (train.log_every).",
        axis: YAxis::Fit,
        read: |r| Ok(r.metrics()?.iter().map(|m| (m.step as f64, m.loss)).collect()),
    },
    CurveFigure {
        stem: "first_token_attention_over_training",
        title: "First-token attention during training",
        label: "attention on position 0 (probability)",
        caption: "Mean over layers, heads and queries ≥ 1 of a fixed held-out batch (train.dynamics_batch sequences; not the analysis split).",
        axis: YAxis::Probability,
        read: |r| {
            Ok(r.dynamics()?.iter().map(|d| (d.step as f64, d.mean_over_layers(|l| l.first_token_attention))).collect())
        },
    },
    CurveFigure {
        stem: "max_activation_over_training",
        title: "Largest activation during training",
        label: "max |h| of a block's output, mean over layers",
        caption: "Largest |h| of each block's output on the fixed held-out batch, mean over layers.",
        axis: YAxis::FromZero,
        read: |r| Ok(r.dynamics()?.iter().map(|d| (d.step as f64, d.mean_over_layers(|l| l.max_activation))).collect()),
    },
    CurveFigure {
        stem: "gate_mean_over_training",
        title: "Mean gate score during training",
        label: "gate mean (probability)",
        caption: "Mean over layers, positions and channels of the fixed held-out batch; gated configurations only.",
        axis: YAxis::Probability,
        read: |r| {
            Ok(r.dynamics()?
                .iter()
                .map(|d| (d.step as f64, d.mean_over_layers(|l| l.gate_mean.unwrap_or(f64::NAN))))
                .filter(|(_, v)| v.is_finite())
                .collect())
        },
    },
    CurveFigure {
        stem: "gate_saturation_over_training",
        title: "Gate saturation during training",
        label: "share of gate scores below 0.01",
        caption: "Share of the gate scores of the fixed held-out batch below 0.01 (gates shut), mean over layers; gated configurations only. A rising share with rising |logit| warns of a saturating gate.",
        axis: YAxis::Probability,
        read: |r| {
            Ok(r.dynamics()?
                .iter()
                .filter_map(|d| Some((d.step as f64, mean_of(d.layers.iter().map(|l| l.gate_saturation))?)))
                .collect())
        },
    },
    CurveFigure {
        stem: "gate_logit_over_training",
        title: "Mean |gate logit| during training",
        label: "mean |ln(s / (1 − s))| of the gate scores",
        caption: "Mean absolute logit of the sigmoid gate scores of the fixed held-out batch, mean over layers; sigmoid-gated configurations only.",
        axis: YAxis::FromZero,
        read: |r| {
            Ok(r.dynamics()?
                .iter()
                .filter_map(|d| Some((d.step as f64, mean_of(d.layers.iter().map(|l| l.gate_logit))?)))
                .collect())
        },
    },
];

/// The mean of the values that are there, `None` when none is.
fn mean_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// `n` seeds as words.
fn seeds_word(groups: &[&Group]) -> String {
    let ns: std::collections::BTreeSet<usize> = groups.iter().map(|g| g.done()).collect();
    let list: Vec<String> = ns.iter().map(usize::to_string).collect();
    format!("{} seed{} per configuration", list.join(" or "), if ns.iter().all(|&n| n == 1) { "" } else { "s" })
}

const INTERVALS: &str = "Dots: means over seeds; bars: 95% Student-t intervals; rings: each seed.";

/// A dot chart's row for an estimate over seeds.
fn dot(label: String, colour: usize, e: &Estimate) -> Dot {
    Dot { label, colour, mean: e.mean, interval: e.interval(), values: e.values.iter().map(|(_, v)| *v).collect() }
}

fn value_figure(dir: &Path, summary: &Summary, f: &ValueFigure) -> Result<Option<ChartFile>> {
    let with: Vec<(usize, &Group, &Estimate)> =
        summary.groups.iter().enumerate().filter_map(|(i, g)| Some((i, g, g.estimates.get(&f.metric)?))).collect();
    if with.is_empty() {
        return Ok(None);
    }
    let rows = with.iter().map(|(i, g, e)| dot(g.name(), *i, e)).collect();
    let chance = f.chance.then(|| summary.groups.iter().find_map(|g| g.chance)).flatten();
    let groups: Vec<&Group> = with.iter().map(|(_, g, _)| *g).collect();
    let (mut caption, mut reference) = (
        format!("{} (from {}); {}. {INTERVALS}", f.metric.name(), f.metric.source(), seeds_word(&groups)),
        chance.map(|c| ("chance".to_string(), c)),
    );
    if f.metric == Metric::StreamingRatio {
        // The window the probe ran with, and the ratio of a model that does not lean on its first token.
        let windows: std::collections::BTreeSet<usize> = groups
            .iter()
            .flat_map(|g| g.runs.iter().filter(|r| r.counts()))
            .filter_map(|r| crate::eval::read_eval(&r.run).ok().flatten()?.streaming.map(|s| s.window))
            .collect();
        let w: Vec<String> = windows.iter().map(usize::to_string).collect();
        caption = format!(
            "Window W = {} keys (gatelab eval --window). {caption} At 1 (dashed) evicting the first token costs nothing.",
            w.join(" or ")
        );
        reference = Some(("no change".to_string(), 1.0));
    }
    let chart = DotChart { title: f.title.into(), value_label: f.label.into(), caption, rows, axis: f.axis, reference };
    Ok(Some(dot_chart(dir, f.stem, &chart)?))
}

fn paired_figure(dir: &Path, summary: &Summary, metric: Metric, stem: &str) -> Result<Option<ChartFile>> {
    let with: Vec<(usize, &Group, &Estimate)> =
        summary.groups.iter().enumerate().filter_map(|(i, g)| Some((i, g, g.versus_baseline.get(&metric)?))).collect();
    if with.is_empty() {
        return Ok(None);
    }
    let rows = with.iter().map(|(i, g, e)| dot(g.name(), *i, e)).collect();
    let chart = DotChart {
        title: format!("{} against the baseline, paired by seed", metric.name()),
        value_label: format!("Δ {} (configuration − its baseline)", metric.name()),
        caption: format!(
            "Seed by seed difference to the baseline of the same configuration (same initialisation stream and batches). {INTERVALS} An interval that excludes 0 is a difference at this scale."
        ),
        rows,
        axis: YAxis::Fit,
        reference: Some(("no difference".into(), 0.0)),
    };
    Ok(Some(dot_chart(dir, stem, &chart)?))
}

/// A per-layer profile: a dot chart for one-layer models, else a line over layers with error bars.
fn layer_figure(dir: &Path, summary: &Summary, f: &LayerFigure) -> Result<Option<ChartFile>> {
    let LayerFigure { stem, title, label, axis, of, chance } = *f;
    let depth = summary.groups.iter().map(|g| of(g).len()).max().unwrap_or(0);
    if depth == 0 {
        return Ok(None);
    }
    let groups: Vec<&Group> = summary.groups.iter().filter(|g| !of(g).is_empty()).collect();
    let caption = format!(
        "Per layer, mean over heads (and queries ≥ 1 for attention), over the held-out analysis split; {}.",
        seeds_word(&groups)
    );
    let chance_level = chance.then(|| summary.groups.iter().find_map(|g| g.chance)).flatten();
    if depth == 1 {
        let rows = summary
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let e = of(g).first()?;
                Some(dot(g.name(), i, e))
            })
            .collect();
        let chart = DotChart {
            title: title.replace(" per layer", " (one layer)"),
            value_label: label.into(),
            caption: format!("{caption} {INTERVALS}"),
            rows,
            axis,
            reference: chance_level.map(|c| ("chance".to_string(), c)),
        };
        return Ok(Some(dot_chart(dir, stem, &chart)?));
    }
    let mut series: Vec<Series> = summary
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !of(g).is_empty())
        .map(|(i, g)| Series {
            label: g.name(),
            colour: i,
            points: of(g)
                .iter()
                .enumerate()
                .map(|(l, e)| Point { x: (l + 1) as f64, y: e.mean, lo: e.lo, hi: e.hi })
                .collect(),
            style: SeriesStyle::Markers,
        })
        .collect();
    if let Some(c) = chance_level {
        series.push(Series {
            label: "chance (uniform causal)".into(),
            colour: 0,
            points: vec![Point::at(0.7, c), Point::at(depth as f64 + 0.3, c)],
            style: SeriesStyle::Reference,
        });
    }
    let chart = LineChart {
        title: title.into(),
        x_label: "layer".into(),
        y_label: label.into(),
        caption: format!("{caption} Error bars: 95% Student-t intervals over seeds."),
        series,
        integer_x: true,
        y: axis,
    };
    Ok(Some(line_chart(dir, stem, &chart)?))
}

/// The three largest activations over the median, per layer (Sun et al. 2024): top-1 solid, top-2
/// and top-3 dashed in the configuration's colour; a dot chart for one-layer models.
fn top_activation_figure(dir: &Path, summary: &Summary) -> Result<Option<ChartFile>> {
    let with: Vec<(usize, &Group)> =
        summary.groups.iter().enumerate().filter(|(_, g)| !g.top_activation_ratios_per_layer[0].is_empty()).collect();
    if with.is_empty() {
        return Ok(None);
    }
    let depth = with.iter().map(|(_, g)| g.top_activation_ratios_per_layer[0].len()).max().unwrap_or(0);
    let title = "The largest activations over the median |h| (cf. Sun et al. 2024)";
    let caption = format!(
        "Per layer: the k-th largest |h| of a block's output over the median |h| of the same batch, mean over batches of the held-out analysis split; {}. Massive activations are ratios in the hundreds or thousands.",
        seeds_word(&with.iter().map(|(_, g)| *g).collect::<Vec<_>>())
    );
    if depth == 1 {
        let rows = with
            .iter()
            .flat_map(|(i, g)| {
                (0..3).filter_map(move |k| {
                    let e = g.top_activation_ratios_per_layer[k].first()?;
                    Some(dot(format!("{} · top-{}", g.name(), k + 1), *i, e))
                })
            })
            .collect();
        let chart = DotChart {
            title: title.into(),
            value_label: "|h| over the median |h|".into(),
            caption: format!("{caption} {INTERVALS}"),
            rows,
            axis: YAxis::FromZero,
            reference: None,
        };
        return Ok(Some(dot_chart(dir, "top_activations_per_layer", &chart)?));
    }
    let series = with
        .iter()
        .flat_map(|(i, g)| {
            (0..3).map(move |k| Series {
                label: format!("{} · top-{}", g.name(), k + 1),
                colour: *i,
                points: g.top_activation_ratios_per_layer[k]
                    .iter()
                    .enumerate()
                    .map(|(l, e)| Point { x: (l + 1) as f64, y: e.mean, lo: e.lo, hi: e.hi })
                    .collect(),
                style: if k == 0 { SeriesStyle::Markers } else { SeriesStyle::Dashed },
            })
        })
        .collect();
    let chart = LineChart {
        title: title.into(),
        x_label: "layer".into(),
        y_label: "|h| over the median |h|".into(),
        caption: format!("{caption} Error bars: 95% Student-t intervals over seeds."),
        series,
        integer_x: true,
        y: YAxis::FromZero,
    };
    Ok(Some(line_chart(dir, "top_activations_per_layer", &chart)?))
}

/// Mean and interval over a group's runs at each step every run logged.
fn curve_points(g: &Group, read: fn(&RunDir) -> Result<Curve>) -> Result<Vec<Point>> {
    let runs: Vec<(u64, Curve)> =
        g.runs.iter().filter(|r| r.counts()).map(|r| Ok((r.file.meta.seed, read(&r.run)?))).collect::<Result<_>>()?;
    let Some((_, first)) = runs.first() else { return Ok(vec![]) };
    Ok(first
        .iter()
        .filter_map(|&(x, _)| {
            let values: Vec<(u64, f64)> =
                runs.iter().filter_map(|(s, pts)| pts.iter().find(|(px, _)| *px == x).map(|(_, y)| (*s, *y))).collect();
            let e = Estimate::of(&values)?;
            (e.n == runs.len()).then_some(Point { x, y: e.mean, lo: e.lo, hi: e.hi })
        })
        .collect())
}

fn curve_figure(dir: &Path, summary: &Summary, f: &CurveFigure) -> Result<Option<ChartFile>> {
    let mut series = Vec::new();
    let mut used = Vec::new();
    for (i, g) in summary.groups.iter().enumerate() {
        let points = curve_points(g, f.read)?;
        if !points.is_empty() {
            series.push(Series { label: g.name(), colour: i, points, style: SeriesStyle::Band });
            used.push(g);
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    let chart = LineChart {
        title: f.title.into(),
        x_label: "optimiser step".into(),
        y_label: f.label.into(),
        caption: format!(
            "{} Lines: means over seeds ({}); bands: 95% Student-t intervals.",
            f.caption,
            seeds_word(&used)
        ),
        series,
        integer_x: false,
        y: f.axis,
    };
    Ok(Some(line_chart(dir, f.stem, &chart)?))
}

fn gate_histogram(dir: &Path, summary: &Summary) -> Result<Option<ChartFile>> {
    let series: Vec<Series> = summary
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.gate_histogram.is_empty())
        .map(|(i, g)| {
            let bins = g.gate_histogram.len() as f64;
            Series {
                label: g.name(),
                colour: i,
                points: g
                    .gate_histogram
                    .iter()
                    .enumerate()
                    .map(|(b, s)| Point::at((b as f64 + 0.5) / bins, *s))
                    .collect(),
                style: SeriesStyle::Markers,
            }
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let chart = LineChart {
        title: "Gate-score distribution (cf. paper Figure 3)".into(),
        x_label: "gate score (bin centre)".into(),
        y_label: "share of scores in the bin".into(),
        caption: "Every gate score of every layer and position of the analysed sequences, in 20 bins of equal width over [0, 1]; pooled over seeds.".into(),
        series,
        integer_x: false,
        y: YAxis::Probability,
    };
    Ok(Some(line_chart(dir, "gate_scores", &chart)?))
}

/// Expert load per layer for each mixture-of-experts configuration: one heat map per
/// configuration, layers down, experts across (mean over seeds).
fn expert_load(dir: &Path, summary: &Summary) -> Result<Option<ChartFile>> {
    let panels: Vec<HeatPanel> = summary
        .groups
        .iter()
        .filter_map(|g| {
            let runs = g.routing();
            let (layers, experts) = (runs.first()?.len(), runs.first()?.first()?.load.len());
            let values = (0..layers)
                .map(|l| {
                    (0..experts)
                        .map(|e| {
                            let load = runs.iter().map(|r| r[l].load[e]).sum::<f64>() / runs.len() as f64;
                            (load * experts as f64 / 2.0).min(1.0)
                        })
                        .collect()
                })
                .collect();
            Some(HeatPanel {
                title: g.name(),
                rows: (0..layers).map(|l| format!("layer {}", l + 1)).collect(),
                cols: (0..experts).map(|e| e.to_string()).collect(),
                values,
            })
        })
        .collect();
    if panels.is_empty() {
        return Ok(None);
    }
    let grid = HeatGrid {
        title: "Expert load per layer (mixture-of-experts FFN)".into(),
        row_label: "layer".into(),
        col_label: "expert".into(),
        value_label: "load × E / 2 (0.5: a balanced share; 1: twice it or more)".into(),
        aggregation: "An expert's share of the routing slots over the analysed sequences, times the number of experts and halved, so a balanced router is 0.5 everywhere; mean over seeds. The routing table gives the numbers.".into(),
        panels,
        columns: 3,
    };
    heat_grid(dir, "expert_load", &grid)?;
    Ok(Some(ChartFile { stem: "expert_load".into(), title: grid.title, caption: grid.aggregation }))
}

/// The numeric config key swept within variants, when there is exactly one (a learning-rate
/// sweep): the report then draws each metric against it, one line per variant.
fn swept_key(summary: &Summary) -> Option<&str> {
    let [key] = summary.differing_keys.as_slice() else { return None };
    let numeric = summary.groups.iter().all(|g| {
        let config = serde_json::to_value(&g.runs[0].file.config).expect("configs serialise");
        crate::summary::lookup(&config, key).is_number()
    });
    numeric.then_some(key.as_str())
}

/// A metric against the swept key, one line per variant (the stability frontier of a
/// learning-rate sweep), on a log axis; diverged and unfinished runs are left out of the points,
/// and counted in the caption.
fn frontier_figure(dir: &Path, summary: &Summary, key: &str, metric: Metric, stem: &str) -> Result<Option<ChartFile>> {
    let mut variants: Vec<&str> = Vec::new();
    for g in &summary.groups {
        if !variants.contains(&g.variant.as_str()) {
            variants.push(&g.variant);
        }
    }
    let value_of = |g: &Group| {
        let config = serde_json::to_value(&g.runs[0].file.config).expect("configs serialise");
        crate::summary::lookup(&config, key).as_f64().unwrap_or(f64::NAN)
    };
    let mut series = Vec::new();
    let mut lost = Vec::new();
    for (colour, v) in variants.iter().enumerate() {
        let mut points: Vec<Point> = summary
            .groups
            .iter()
            .filter(|g| g.variant == *v)
            .filter_map(|g| {
                let (x, e) = (value_of(g), g.estimates.get(&metric)?);
                {
                    // Variants side by side at each value, a little apart, so their error bars show.
                    let shift = 0.05 * (colour as f64 - (variants.len() as f64 - 1.0) / 2.0);
                    (x > 0.0).then(|| Point { x: x.log2() + shift, y: e.mean, lo: e.lo, hi: e.hi })
                }
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        for g in summary.groups.iter().filter(|g| g.variant == *v && g.done() < g.runs.len()) {
            lost.push(format!("{} at {key} = {}: {}", v, value_of(g), crate::summary::status_words(g)));
        }
        series.push(Series { label: v.to_string(), colour, points, style: SeriesStyle::Markers });
    }
    if series.iter().all(|s| s.points.is_empty()) {
        return Ok(None);
    }
    let lost =
        if lost.is_empty() { "Every run finished.".to_string() } else { format!("Left out: {}.", lost.join("; ")) };
    let chart = LineChart {
        title: format!("{} against {key} (the stability frontier)", metric.name()),
        x_label: format!("log2({key})"),
        y_label: format!("{} ({})", metric.name(), metric.source()),
        caption: format!(
            "One line per variant (drawn a little apart at each value); means over seeds with 95% Student-t error bars. {lost}"
        ),
        series,
        integer_x: false,
        y: if metric == Metric::Spikes { YAxis::FromZero } else { YAxis::Fit },
    };
    Ok(Some(line_chart(dir, stem, &chart)?))
}

/// Draws every figure of `summary` into `dir`, in sections.
pub fn write(dir: &Path, summary: &Summary) -> Result<Vec<Section>> {
    // Several layers: a profile per layer, and the mean over layers per configuration.
    let deep = summary.groups.iter().map(|g| g.first_token_attention_per_layer.len()).max().unwrap_or(0) > 1;
    let sink = vec![
        layer_figure(dir, summary, &SINK_LAYERS)?,
        if deep { value_figure(dir, summary, &SINK_VALUE)? } else { None },
        paired_figure(dir, summary, Metric::FirstTokenAttention, "first_token_attention_vs_baseline")?,
        curve_figure(dir, summary, &CURVES[1])?,
    ];
    let loss = vec![
        value_figure(dir, summary, &VAL_LOSS)?,
        paired_figure(dir, summary, Metric::ValLoss, "val_loss_vs_baseline")?,
        curve_figure(dir, summary, &CURVES[0])?,
    ];
    let activations = vec![
        layer_figure(dir, summary, &MAX_ACT_LAYERS)?,
        if deep { value_figure(dir, summary, &MAX_ACT_VALUE)? } else { None },
        top_activation_figure(dir, summary)?,
        curve_figure(dir, summary, &CURVES[2])?,
    ];
    let gates = vec![
        gate_histogram(dir, summary)?,
        value_figure(dir, summary, &GATE_MEAN)?,
        curve_figure(dir, summary, &CURVES[3])?,
        curve_figure(dir, summary, &CURVES[4])?,
        curve_figure(dir, summary, &CURVES[5])?,
    ];
    let cured = summary.groups.iter().any(|g| g.runs.iter().any(|r| !r.file.config.model.cure.is_softmax()));
    let cures = if cured {
        vec![
            value_figure(dir, summary, &SHARE)?,
            value_figure(dir, summary, &SLOT)?,
            value_figure(dir, summary, &STREAMING)?,
        ]
    } else {
        vec![value_figure(dir, summary, &STREAMING)?]
    };
    let routing = vec![expert_load(dir, summary)?];
    let frontier = match swept_key(summary) {
        Some(key) => vec![
            frontier_figure(dir, summary, key, Metric::BestValLoss, "frontier_best_val_loss")?,
            frontier_figure(dir, summary, key, Metric::Spikes, "frontier_spikes")?,
        ],
        None => vec![],
    };
    Ok([
        ("Attention sink", sink),
        ("Where the attention goes", cures),
        ("Loss", loss),
        ("Stability", frontier),
        ("Massive activations", activations),
        ("Gates", gates),
        ("Mixture-of-experts routing", routing),
    ]
    .into_iter()
    .map(|(title, charts)| Section { title: title.into(), charts: charts.into_iter().flatten().collect() })
    .filter(|s| !s.charts.is_empty())
    .collect())
}
