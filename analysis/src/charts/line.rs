//! Values against a continuous x (training steps, layers, lengths), one line per series, with
//! the interval of each point drawn as a shaded band or as error bars.

use super::{ChartFile, REFERENCE, SIZE, YAxis, colour, font, frame, legend, px, save, tick_decimals, tick_label};
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
    /// A dashed line in the series' colour with markers; intervals as error bars (a secondary
    /// quantity beside a [`SeriesStyle::Markers`] series of the same colour).
    Dashed,
    /// A dashed grey reference line (a chance level); no interval.
    Reference,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Colour index (the variant's; ignored for references).
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

fn colour_of(s: &Series) -> RGBColor {
    if s.style == SeriesStyle::Reference { REFERENCE } else { colour(s.colour) }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &LineChart, s: f64) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let (w, _) = root.dim_in_pixel();
    let body = frame(&root, &chart.title, &chart.caption, s)?;
    let (plot, legend_area) = body.split_horizontally(w - px(250.0, s) as u32);
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
    let mut ctx = ChartBuilder::on(&plot)
        .margin(px(12.0, s))
        .x_label_area_size(px(46.0, s))
        .y_label_area_size(px(76.0, s))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|x| e(&x))?;
    let (x_labels, y_labels) = (if chart.integer_x { ((x1 - x0).round() as usize + 1).min(24) } else { 10 }, 8);
    let (xd, yd) =
        (if chart.integer_x { 0 } else { tick_decimals(x1 - x0, x_labels) }, tick_decimals(y1 - y0, y_labels));
    let x_fmt = move |v: &f64| tick_label(*v, xd);
    let y_fmt = move |v: &f64| tick_label(*v, yd);
    ctx.configure_mesh()
        .x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(&chart.x_label)
        .y_desc(format!("{}{}", chart.y_label, chart.y.note()))
        .label_style(font(13.0, s))
        .axis_desc_style(font(14.0, s))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(|x| e(&x))?;
    let clip = |v: f64| v.clamp(y0, y1);
    for series in &chart.series {
        let c = colour_of(series);
        let pts: Vec<Point> = series.points.iter().copied().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
        let line = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: (2.0 * s).max(1.0) as u32 };
        let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.y)).collect();
        match series.style {
            SeriesStyle::Reference => {
                ctx.draw_series(DashedLineSeries::new(xy, px(8.0, s) as u32, px(6.0, s) as u32, line))
                    .map_err(|x| e(&x))?;
            }
            SeriesStyle::Band => {
                let band: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|p| Some((p.x, clip(p.hi?))))
                    .chain(pts.iter().rev().filter_map(|p| Some((p.x, clip(p.lo?)))))
                    .collect();
                if band.len() >= 4 {
                    ctx.draw_series(std::iter::once(Polygon::new(band, c.mix(0.13).filled()))).map_err(|x| e(&x))?;
                }
                ctx.draw_series(LineSeries::new(xy, line)).map_err(|x| e(&x))?;
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
                if series.style == SeriesStyle::Dashed {
                    ctx.draw_series(DashedLineSeries::new(xy.clone(), px(7.0, s) as u32, px(5.0, s) as u32, line))
                        .map_err(|x| e(&x))?;
                    ctx.draw_series(xy.iter().map(|&p| Circle::new(p, px(3.0, s), line))).map_err(|x| e(&x))?;
                } else {
                    ctx.draw_series(LineSeries::new(xy.clone(), line)).map_err(|x| e(&x))?;
                    ctx.draw_series(xy.iter().map(|&p| Circle::new(p, px(4.0, s), c.filled()))).map_err(|x| e(&x))?;
                }
            }
        }
    }
    let entries: Vec<(String, RGBColor, bool)> = chart
        .series
        .iter()
        .map(|s| (s.label.clone(), colour_of(s), matches!(s.style, SeriesStyle::Reference | SeriesStyle::Dashed)))
        .collect();
    legend(&legend_area, &entries, s)?;
    root.present().map_err(|x| e(&x))
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
    save(dir, stem, SIZE, |a| draw(a, chart, 1.0), |a| draw(a, chart, 2.0), &csv)?;
    Ok(ChartFile { stem: stem.into(), title: chart.title.clone(), caption: chart.caption.clone() })
}
