//! Values against a continuous x (training steps, layers, lengths), one line per series, with
//! the interval of each point drawn as a shaded band or as error bars.

use super::{
    ChartFile, Entry, Look, Mark, Pattern, REFERENCE, SIZE, YAxis, font, frame, legend, look, px, save, tick_decimals,
    tick_label,
};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One point, with its interval when it has one (a mean over seeds: its 95% interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// Lower end of the interval.
    pub lo: Option<f64>,
    /// Upper end of the interval.
    pub hi: Option<f64>,
}

impl Point {
    /// A point without an interval.
    pub fn at(x: f64, y: f64) -> Self {
        Self { x, y, lo: None, hi: None }
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStyle {
    /// A line; intervals as a shaded band (curves over training).
    Band,
    /// A line with a marker at each point; intervals as error bars (few points: layers, lengths).
    Markers,
    /// A broken line in the series' colour with hollow markers; intervals as error bars (a
    /// secondary quantity beside a [`SeriesStyle::Markers`] series of the same colour).
    Dashed,
    /// A dashed grey reference line (a chance level); no interval.
    Reference,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The variant's index: its [`look`] (ignored for references).
    pub colour: usize,
    /// Points, in x order.
    pub points: Vec<Point>,
    /// How it is drawn.
    pub style: SeriesStyle,
}

/// A line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// X axis label, with its unit.
    pub x_label: String,
    /// Y axis label, with its unit.
    pub y_label: String,
    /// What the numbers aggregate (written under the plot).
    pub caption: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Integer ticks on x (layers).
    pub integer_x: bool,
    /// How the y axis spans the values.
    pub y: YAxis,
}

/// How a series is drawn: its variant's look, a reference's grey dashes, a secondary quantity's
/// line broken otherwise than its primary's.
fn look_of(s: &Series) -> Look {
    let own = look(s.colour);
    match s.style {
        SeriesStyle::Reference => Look { colour: REFERENCE, pattern: Pattern::Dashed, ..own },
        SeriesStyle::Dashed => {
            Look { pattern: if own.pattern == Pattern::Dotted { Pattern::Dashed } else { Pattern::Dotted }, ..own }
        }
        SeriesStyle::Band | SeriesStyle::Markers => own,
    }
}

/// Draws `xy` as a line of `pattern`.
fn polyline<DB: DrawingBackend>(
    ctx: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    xy: Vec<(f64, f64)>,
    pattern: Pattern,
    style: ShapeStyle,
    s: f64,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match pattern {
        Pattern::Solid => ctx.draw_series(LineSeries::new(xy, style)).map(|_| ()),
        Pattern::Dashed => {
            ctx.draw_series(DashedLineSeries::new(xy, px(8.0, s) as u32, px(6.0, s) as u32, style)).map(|_| ())
        }
        Pattern::Dotted => {
            ctx.draw_series(DashedLineSeries::new(xy, px(2.5, s) as u32, px(4.0, s) as u32, style)).map(|_| ())
        }
    }
    .map_err(|x| e(&x))
}

/// Past this many series (references aside), a chart of lines without markers (curves over
/// training) is drawn as small multiples: one panel per series, the first series in every
/// panel in light grey for comparison, all on one scale.
pub const MAX_SERIES: usize = 8;

/// Panels per row of small multiples.
const PANEL_COLUMNS: usize = 4;

/// Whether `chart` is drawn as small multiples ([`MAX_SERIES`]).
pub fn small_multiples(chart: &LineChart) -> bool {
    let own = chart.series.iter().filter(|s| s.style != SeriesStyle::Reference);
    own.clone().count() > MAX_SERIES && own.into_iter().all(|s| s.style == SeriesStyle::Band)
}

/// The x and y ranges of every series of `chart`.
fn ranges(chart: &LineChart) -> ((f64, f64), (f64, f64)) {
    let finite = chart.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.x.is_finite() && p.y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for p in finite {
        (x0, x1) = (x0.min(p.x), x1.max(p.x));
        (y0, y1) = (y0.min(p.lo.unwrap_or(p.y).min(p.y)), y1.max(p.hi.unwrap_or(p.y).max(p.y)));
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    let (y0, y1) = chart.y.range(y0, y1);
    // Points at the ends keep their markers and error bars inside the plot.
    let pad = if chart.series.iter().any(|s| s.style != SeriesStyle::Band) { 0.03 * (x1 - x0) } else { 0.0 };
    let (x0, x1) = if chart.integer_x {
        (x0 - 0.3, x1 + 0.3)
    } else if x1 > x0 {
        (x0 - pad, x1 + pad)
    } else {
        (x0 - 1.0, x1 + 1.0)
    };
    ((x0, x1), (y0, y1))
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &LineChart, s: f64) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let (w, _) = root.dim_in_pixel();
    let body = frame(&root, &chart.title, &chart.caption, s)?;
    let range = ranges(chart);
    if small_multiples(chart) {
        let (own, references): (Vec<&Series>, Vec<&Series>) =
            chart.series.iter().partition(|s| s.style != SeriesStyle::Reference);
        let rows = own.len().div_ceil(PANEL_COLUMNS);
        let panels = body.split_evenly((rows, PANEL_COLUMNS));
        for (k, (panel, series)) in panels.iter().zip(&own).enumerate() {
            // The first series, in grey, behind every other panel's own.
            let first = Series { style: SeriesStyle::Reference, ..own[0].clone() };
            let mut shown: Vec<&Series> = references.clone();
            if k > 0 {
                shown.insert(0, &first);
            }
            shown.push(series);
            plot(panel, chart, &shown, range, s, Some(&series.label))?;
        }
    } else {
        let (plot_area, legend_area) = body.split_horizontally(w - px(250.0, s) as u32);
        let shown: Vec<&Series> = chart.series.iter().collect();
        plot(&plot_area, chart, &shown, range, s, None)?;
        let entries: Vec<Entry> = chart
            .series
            .iter()
            .map(|s| {
                let look = look_of(s);
                let marker = match s.style {
                    SeriesStyle::Band | SeriesStyle::Reference => None,
                    SeriesStyle::Markers => Some((look.shape, true)),
                    SeriesStyle::Dashed => Some((look.shape, false)),
                };
                Entry { label: s.label.clone(), colour: look.colour, pattern: look.pattern, marker }
            })
            .collect();
        legend(&legend_area, &entries, s)?;
    }
    root.present().map_err(|x| e(&x))
}

/// Draws `series` on `area` over the ranges `((x0, x1), (y0, y1))`; a panel of small multiples
/// has its title and smaller axes.
fn plot<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &LineChart,
    series: &[&Series],
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
    s: f64,
    panel: Option<&str>,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut builder = ChartBuilder::on(area);
    builder.margin(px(if panel.is_some() { 6.0 } else { 12.0 }, s));
    if let Some(title) = panel {
        let short: String = title.chars().take(44).collect();
        builder.caption(short, font(12.0, s));
    }
    let (xa, ya) = if panel.is_some() { (30.0, 48.0) } else { (46.0, 76.0) };
    let mut ctx = builder
        .x_label_area_size(px(xa, s))
        .y_label_area_size(px(ya, s))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|x| e(&x))?;
    let (x_labels, y_labels) = match panel {
        Some(_) => (4, 5),
        None => (if chart.integer_x { ((x1 - x0).round() as usize + 1).min(24) } else { 10 }, 8),
    };
    let (xd, yd) =
        (if chart.integer_x { 0 } else { tick_decimals(x1 - x0, x_labels) }, tick_decimals(y1 - y0, y_labels));
    let x_fmt = move |v: &f64| tick_label(*v, xd);
    let y_fmt = move |v: &f64| tick_label(*v, yd);
    let mut mesh = ctx.configure_mesh();
    mesh.x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(font(if panel.is_some() { 11.0 } else { 13.0 }, s))
        .axis_desc_style(font(14.0, s))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08));
    if panel.is_none() {
        mesh.x_desc(&chart.x_label).y_desc(format!("{}{}", chart.y_label, chart.y.note()));
    }
    mesh.draw().map_err(|x| e(&x))?;
    let clip = |v: f64| v.clamp(y0, y1);
    for series in series {
        let look = look_of(series);
        let c = look.colour;
        let pts: Vec<Point> = series.points.iter().copied().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
        let line = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: (2.0 * s).max(1.0) as u32 };
        let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.y)).collect();
        match series.style {
            SeriesStyle::Reference => polyline(&mut ctx, xy, look.pattern, line, s)?,
            SeriesStyle::Band => {
                let band: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|p| Some((p.x, clip(p.hi?))))
                    .chain(pts.iter().rev().filter_map(|p| Some((p.x, clip(p.lo?)))))
                    .collect();
                if band.len() >= 4 {
                    ctx.draw_series(std::iter::once(Polygon::new(band, c.mix(0.13).filled()))).map_err(|x| e(&x))?;
                }
                polyline(&mut ctx, xy, look.pattern, line, s)?;
            }
            SeriesStyle::Markers | SeriesStyle::Dashed => {
                for p in pts.iter().filter(|p| p.lo.is_some() && p.hi.is_some()) {
                    let (lo, hi) = (clip(p.lo.unwrap_or(p.y)), clip(p.hi.unwrap_or(p.y)));
                    let cap = (x1 - x0) * 0.006;
                    ctx.draw_series([
                        PathElement::new(vec![(p.x, lo), (p.x, hi)], line),
                        PathElement::new(vec![(p.x - cap, lo), (p.x + cap, lo)], line),
                        PathElement::new(vec![(p.x - cap, hi), (p.x + cap, hi)], line),
                    ])
                    .map_err(|x| e(&x))?;
                }
                polyline(&mut ctx, xy.clone(), look.pattern, line, s)?;
                // A secondary quantity's markers are hollow.
                let style = if series.style == SeriesStyle::Dashed { line } else { c.filled() };
                ctx.draw_series(xy.iter().map(|&at| Mark { at, shape: look.shape, size: px(4.0, s), style }))
                    .map_err(|x| e(&x))?;
            }
        }
    }
    Ok(())
}

/// Writes `<stem>.svg`, `.png` (twice the size) and `.csv` (series, x, y, lo, hi) into `dir`.
pub fn line_chart(dir: &Path, stem: &str, chart: &LineChart) -> Result<ChartFile> {
    let mut csv = format!("# {}: {}\nseries,{},{},lo,hi\n", chart.title, chart.caption, chart.x_label, chart.y_label);
    for s in &chart.series {
        for p in &s.points {
            let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = writeln!(csv, "{},{},{},{},{}", s.label, p.x, p.y, opt(p.lo), opt(p.hi));
        }
    }
    let (size, chart) = if small_multiples(chart) {
        let own: Vec<&Series> = chart.series.iter().filter(|s| s.style != SeriesStyle::Reference).collect();
        let caption = format!(
            "{} One panel per configuration ({} of them, too many for one plot), on one scale; grey: {}, for comparison.",
            chart.caption,
            own.len(),
            own[0].label
        );
        let rows = own.len().div_ceil(PANEL_COLUMNS) as u32;
        let height = 110 + 210 * rows + 17 * super::wrap(&caption, 150).len() as u32;
        ((SIZE.0, height), LineChart { caption, ..chart.clone() })
    } else {
        (SIZE, chart.clone())
    };
    let chart = &chart;
    save(dir, stem, size, |a| draw(a, chart, 1.0), |a| draw(a, chart, 2.0), &csv)?;
    Ok(ChartFile { stem: stem.into(), title: chart.title.clone(), caption: chart.caption.clone() })
}
