//! One value per variant (or per configuration): a dot at the mean, a bar across its 95%
//! interval, and a small ring at each seed's value, one row per variant, so that a chart with
//! one value per variant is never drawn as a line.

use super::{ChartFile, REFERENCE, YAxis, colour, font, frame, px, save, tick_decimals, tick_label, wrap};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One row of a dot chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    /// Row label (the variant, with what tells its configuration apart).
    pub label: String,
    /// Colour index (the variant's).
    pub colour: usize,
    /// The mean over seeds.
    pub mean: f64,
    /// Its 95% interval, when there are at least two seeds.
    pub interval: Option<(f64, f64)>,
    /// Each seed's value.
    pub values: Vec<f64>,
}

/// A dot chart.
#[derive(Debug, Clone, PartialEq)]
pub struct DotChart {
    /// Title.
    pub title: String,
    /// What the values are, with their unit (the x axis).
    pub value_label: String,
    /// What the numbers aggregate (written under the plot).
    pub caption: String,
    /// The rows, top to bottom.
    pub rows: Vec<Dot>,
    /// How the value axis spans the values.
    pub axis: YAxis,
    /// A reference value drawn as a dashed line (a chance level), with its name.
    pub reference: Option<(String, f64)>,
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &DotChart, s: f64) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let plot = frame(&root, &chart.title, &chart.caption, s)?;
    let n = chart.rows.len().max(1);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in &chart.rows {
        for v in r.values.iter().chain([r.mean].iter()).chain(r.interval.iter().flat_map(|(a, b)| [a, b])) {
            if v.is_finite() {
                (lo, hi) = (lo.min(*v), hi.max(*v));
            }
        }
    }
    if let Some((_, v)) = chart.reference {
        (lo, hi) = (lo.min(v), hi.max(v));
    }
    let (x0, x1) = chart.axis.range(lo, hi);
    let longest = chart.rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(8) as f64;
    let mut ctx = ChartBuilder::on(&plot)
        .margin(px(12.0, s))
        .margin_right(px(28.0, s))
        .x_label_area_size(px(46.0, s))
        .y_label_area_size(px((longest * 7.6 + 16.0).clamp(90.0, 420.0), s))
        .build_cartesian_2d(x0..x1, (0..n - 1).into_segmented())
        .map_err(|x| e(&x))?;
    let labels: Vec<String> = chart.rows.iter().map(|r| r.label.clone()).collect();
    // Row 0 at the top.
    let row_name = move |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < labels.len() => labels[labels.len() - 1 - *i].clone(),
        _ => String::new(),
    };
    let xd = tick_decimals(x1 - x0, 10);
    let x_fmt = move |v: &f64| tick_label(*v, xd);
    ctx.configure_mesh()
        .x_labels(10)
        .y_labels(n)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&row_name)
        .x_desc(format!("{}{}", chart.value_label, chart.axis.note()))
        .label_style(font(13.0, s))
        .axis_desc_style(font(14.0, s))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(|x| e(&x))?;
    let row = |i: usize| SegmentValue::CenterOf(n - 1 - i);
    if let Some((name, v)) = &chart.reference {
        let style = ShapeStyle { color: REFERENCE.to_rgba(), filled: false, stroke_width: (1.5 * s).max(1.0) as u32 };
        ctx.draw_series(DashedLineSeries::new(
            vec![(*v, SegmentValue::Exact(0)), (*v, SegmentValue::Exact(n))],
            px(6.0, s) as u32,
            px(5.0, s) as u32,
            style,
        ))
        .map_err(|x| e(&x))?;
        ctx.draw_series(std::iter::once(Text::new(
            format!("{name} {}", tick_label(*v, (xd + 1).max(3))),
            (*v, SegmentValue::Exact(n)),
            font(12.0, s).color(&REFERENCE),
        )))
        .map_err(|x| e(&x))?;
    }
    for (i, r) in chart.rows.iter().enumerate() {
        let c = colour(r.colour);
        let stroke = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: (2.5 * s).max(1.0) as u32 };
        if let Some((a, b)) = r.interval {
            let (a, b) = (a.clamp(x0, x1), b.clamp(x0, x1));
            ctx.draw_series(std::iter::once(PathElement::new(vec![(a, row(i)), (b, row(i))], stroke)))
                .map_err(|x| e(&x))?;
        }
        let ring = ShapeStyle { color: c.mix(0.8), filled: false, stroke_width: (1.0 * s).max(1.0) as u32 };
        ctx.draw_series(r.values.iter().filter(|v| v.is_finite()).map(|&v| Circle::new((v, row(i)), px(4.5, s), ring)))
            .map_err(|x| e(&x))?;
        if r.mean.is_finite() {
            ctx.draw_series(std::iter::once(Circle::new((r.mean, row(i)), px(5.5, s), c.filled())))
                .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))
}

/// Writes `<stem>.svg`, `.png` (twice the size) and `.csv` (row, mean, lo, hi, n, values).
pub fn dot_chart(dir: &Path, stem: &str, chart: &DotChart) -> Result<ChartFile> {
    let mut csv = format!("# {}: {}\nrow,mean,lo,hi,n,values\n", chart.title, chart.caption);
    for r in &chart.rows {
        let (lo, hi) = r.interval.map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or_default();
        let values: Vec<String> = r.values.iter().map(f64::to_string).collect();
        let _ = writeln!(csv, "\"{}\",{},{lo},{hi},{},{}", r.label, r.mean, r.values.len(), values.join(" "));
    }
    let height = (130 + 34 * chart.rows.len() as u32 + 17 * wrap(&chart.caption, 150).len() as u32).max(360);
    save(dir, stem, (1000, height), |a| draw(a, chart, 1.0), |a| draw(a, chart, 2.0), &csv)?;
    Ok(ChartFile { stem: stem.into(), title: chart.title.clone(), caption: chart.caption.clone() })
}
