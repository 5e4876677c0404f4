//! Heat maps: grids of panels on one 0–1 colour scale (retrieval by length and depth) and one
//! sequence's attention maps (layer × head).

use super::{caption, font, px, save, wrap};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write as _;
use std::path::Path;

/// One sequence's attention maps: `maps[layer][head]` is a `t × t` row-major probability matrix.
#[derive(Debug, Clone)]
pub struct AttentionMaps {
    /// Title.
    pub title: String,
    /// The maps.
    pub maps: Vec<Vec<Vec<f32>>>,
    /// Sequence length.
    pub t: usize,
    /// For the slot cures, the slot's weight per layer, head and query: drawn as a column of its
    /// own right of the keys (it takes weight that no key gets).
    pub slot: Option<Vec<Vec<Vec<f32>>>>,
}

/// At most this many positions, layers and heads are drawn.
const MAX_POSITIONS: usize = 64;
const MAX_PANELS: usize = 8;

/// Evenly spaced indices, at most `max` of `0..n` (first and last kept).
fn pick(n: usize, max: usize) -> Vec<usize> {
    if n <= max { (0..n).collect() } else { (0..max).map(|i| i * (n - 1) / (max - 1)).collect() }
}

/// White to dark blue, linear in the probability.
fn heat(p: f32) -> RGBColor {
    let p = p.clamp(0.0, 1.0) as f64;
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * p).round() as u8;
    RGBColor(lerp(255, 8), lerp(255, 48), lerp(255, 107))
}

/// The frame of a heat-map figure: white background, `title` on top, a colour bar on the right
/// (0 white to 1 dark blue, labelled `value`) and `caption` at the foot. Returns the area left
/// for the panels.
fn heat_frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    value: &str,
    caption_text: &str,
    s: f64,
) -> std::result::Result<DrawingArea<DB, Shift>, String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{title}: {e}");
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (w, h) = root.dim_in_pixel();
    let foot_h = px(14.0 + 17.0 * wrap(caption_text, 150).len() as f64, s) as u32;
    let (top, rest) = root.split_vertically(px(44.0, s));
    top.draw(&Text::new(title.to_string(), (px(16.0, s), px(10.0, s)), font(20.0, s).color(&BLACK)))
        .map_err(|e| err(&e))?;
    let (body, foot) = rest.split_vertically(h - px(44.0, s) as u32 - foot_h);
    let (grid, bar) = body.split_horizontally(w - px(120.0, s) as u32);
    let steps = 50;
    let mut bar_ctx = ChartBuilder::on(&bar)
        .margin(px(20.0, s))
        .margin_right(px(30.0, s))
        .y_label_area_size(px(56.0, s))
        .build_cartesian_2d(0..1, 0.0..1.0)
        .map_err(|e| err(&e))?;
    let fmt = |v: &f64| format!("{v:.1}");
    bar_ctx
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&fmt)
        .label_style(font(11.0, s))
        .y_desc(value)
        .axis_desc_style(font(11.0, s))
        .draw()
        .map_err(|e| err(&e))?;
    bar_ctx
        .draw_series((0..steps).map(|i| {
            let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
            Rectangle::new([(0, a), (1, b)], heat(((a + b) / 2.0) as f32).filled())
        }))
        .map_err(|e| err(&e))?;
    caption(&foot, caption_text, s)?;
    Ok(grid)
}

fn draw_maps<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    m: &AttentionMaps,
    layers: &[usize],
    heads: &[usize],
    n: usize,
    caption_text: &str,
    s: f64,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", m.title);
    let grid = heat_frame(&root, &m.title, "probability", caption_text, s)?;
    for (cell, (li, hi)) in grid
        .split_evenly((layers.len(), heads.len()))
        .iter()
        .zip(layers.iter().flat_map(|l| heads.iter().map(move |h| (*l, *h))))
    {
        let map = &m.maps[li][hi];
        // The slot, where there is one, two columns right of the last key.
        let width = if m.slot.is_some() { n + 2 } else { n };
        let mut ctx = ChartBuilder::on(cell)
            .caption(format!("layer {}, head {}", li + 1, hi + 1), font(13.0, s))
            .margin(px(6.0, s))
            .x_label_area_size(px(22.0, s))
            .y_label_area_size(px(28.0, s))
            .build_cartesian_2d(0usize..width, n..0usize)
            .map_err(|e| err(&e))?;
        let x_fmt = |k: &usize| if *k >= n { String::new() } else { k.to_string() };
        ctx.configure_mesh()
            .disable_mesh()
            .x_labels(3)
            .y_labels(3)
            .x_label_formatter(&x_fmt)
            .label_style(font(10.0, s))
            .x_desc(if m.slot.is_some() { "key · slot" } else { "key" })
            .y_desc("query")
            .axis_desc_style(font(10.0, s))
            .draw()
            .map_err(|e| err(&e))?;
        ctx.draw_series(
            (0..n)
                .flat_map(|q| (0..n).map(move |k| (q, k)))
                .filter(|(q, k)| k <= q)
                .map(|(q, k)| Rectangle::new([(k, q), (k + 1, q + 1)], heat(map[q * m.t + k]).filled())),
        )
        .map_err(|e| err(&e))?;
        if let Some(slot) = &m.slot {
            let weights = &slot[li][hi];
            ctx.draw_series((0..n).map(|q| Rectangle::new([(n + 1, q), (n + 2, q + 1)], heat(weights[q]).filled())))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}

/// Writes `<stem>.svg`, `.png` and `.csv` (layer, head, query, key, probability) of one
/// sequence's attention maps: the first 64 positions, at most 8 layers × 8 heads (evenly spaced).
pub fn attention_maps(dir: &Path, stem: &str, m: &AttentionMaps) -> Result<String> {
    let (layers, heads) = (pick(m.maps.len(), MAX_PANELS), pick(m.maps.first().map_or(0, |h| h.len()), MAX_PANELS));
    let n = m.t.min(MAX_POSITIONS);
    let caption = format!(
        "One held-out sequence, BOS at 0: positions 0..{n} of {}; {} of {} layers, {} of {} heads.{}",
        m.t,
        layers.len(),
        m.maps.len(),
        heads.len(),
        m.maps.first().map_or(0, |h| h.len()),
        if m.slot.is_some() { " The column right of the keys is the slot's weight (the cure's null key)." } else { "" }
    );
    let size = (((heads.len() as u32) * 230 + 140).max(820), ((layers.len() as u32) * 230 + 90).max(440));
    let mut csv = format!("# {}: {caption}\nlayer,head,query,key,probability\n", m.title);
    for &l in &layers {
        for &h in &heads {
            for q in 0..n {
                for k in 0..=q {
                    let _ = writeln!(csv, "{},{},{q},{k},{}", l + 1, h + 1, m.maps[l][h][q * m.t + k]);
                }
                if let Some(slot) = &m.slot {
                    let _ = writeln!(csv, "{},{},{q},slot,{}", l + 1, h + 1, slot[l][h][q]);
                }
            }
        }
    }
    save(
        dir,
        stem,
        size,
        |a| draw_maps(a, m, &layers, &heads, n, &caption, 1.0),
        |a| draw_maps(a, m, &layers, &heads, n, &caption, 2.0),
        &csv,
    )?;
    Ok(caption)
}

/// One panel of a heat-map grid: `values[row][col]` in [0, 1].
#[derive(Debug, Clone)]
pub struct HeatPanel {
    /// Panel title.
    pub title: String,
    /// Row labels (drawn top to bottom).
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// The values (NaN: not measured, drawn grey).
    pub values: Vec<Vec<f64>>,
}

/// A grid of heat maps sharing one 0–1 colour scale.
#[derive(Debug, Clone)]
pub struct HeatGrid {
    /// Title.
    pub title: String,
    /// What the rows are.
    pub row_label: String,
    /// What the columns are.
    pub col_label: String,
    /// What the colour is.
    pub value_label: String,
    /// What the numbers aggregate (written under the plot).
    pub aggregation: String,
    /// Panels, `columns` to a row of the grid.
    pub panels: Vec<HeatPanel>,
    /// Panels per row of the grid.
    pub columns: usize,
}

/// An axis of `n` unit cells on `[0, n]` whose key points are the cells' centres, so each label
/// sits under (or beside) its cell, however few cells there are.
#[derive(Clone)]
struct Cells(usize);

impl Ranged for Cells {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.0.max(1) as f64;
        limit.0 + (value / span * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0.max(1) as f64
    }
}

fn draw_heat_grid<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    g: &HeatGrid,
    s: f64,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", g.title);
    let grid = heat_frame(&root, &g.title, &g.value_label, &g.aggregation, s)?;
    let columns = g.columns.max(1);
    let rows = g.panels.len().div_ceil(columns);
    for (cell, panel) in grid.split_evenly((rows, columns)).iter().zip(&g.panels) {
        let (nr, nc) = (panel.rows.len(), panel.cols.len());
        // Cell (r, c) spans [c, c + 1] × [y, y + 1] with y = nr − 1 − r (row 0 at the top); the
        // axes' key points are the cells' centres, so every label sits under its cell (one row or
        // one column too).
        let mut ctx = ChartBuilder::on(cell)
            .caption(&panel.title, font(14.0, s))
            .margin(px(8.0, s))
            .x_label_area_size(px(36.0, s))
            .y_label_area_size(px(56.0, s))
            .build_cartesian_2d(Cells(nc), Cells(nr))
            .map_err(|e| err(&e))?;
        let (rl, cl) = (panel.rows.clone(), panel.cols.clone());
        let col_name = move |v: &f64| cl.get(v.floor() as usize).cloned().unwrap_or_default();
        let row_name = move |v: &f64| {
            let i = v.floor() as usize;
            if i < nr { rl[nr - 1 - i].clone() } else { String::new() }
        };
        ctx.configure_mesh()
            .disable_mesh()
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&col_name)
            .y_label_formatter(&row_name)
            .x_desc(&g.col_label)
            .y_desc(&g.row_label)
            .label_style(font(11.0, s))
            .axis_desc_style(font(11.0, s))
            .draw()
            .map_err(|e| err(&e))?;
        let cells: Vec<(usize, usize, f64)> =
            (0..nr).flat_map(|r| (0..nc).map(move |c| (r, c))).map(|(r, c)| (r, c, panel.values[r][c])).collect();
        ctx.draw_series(cells.iter().map(|&(r, c, v)| {
            let colour = if v.is_finite() { heat(v as f32) } else { RGBColor(200, 200, 200) };
            let y = (nr - 1 - r) as f64;
            Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], colour.filled())
        }))
        .map_err(|e| err(&e))?;
        // The value in each cell, dark on light, light on dark.
        ctx.draw_series(cells.iter().filter(|(_, _, v)| v.is_finite()).map(|&(r, c, v)| {
            let ink = if v > 0.55 { WHITE } else { BLACK };
            Text::new(
                format!("{v:.2}"),
                (c as f64 + 0.5, (nr - 1 - r) as f64 + 0.5),
                font(11.0, s).color(&ink).pos(Pos::new(HPos::Center, VPos::Center)),
            )
        }))
        .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// Writes `<stem>.svg`, `.png` and `.csv` (panel, row, column, value) of a heat-map grid.
pub fn heat_grid(dir: &Path, stem: &str, g: &HeatGrid) -> Result<()> {
    let columns = g.columns.max(1);
    let rows = g.panels.len().div_ceil(columns).max(1) as u32;
    let size = ((columns.min(g.panels.len().max(1)) as u32 * 300 + 140).max(820), (rows * 280 + 90).max(440));
    let mut csv =
        format!("# {}: {}\npanel,{},{},{}\n", g.title, g.aggregation, g.row_label, g.col_label, g.value_label);
    for p in &g.panels {
        for (r, row) in p.rows.iter().enumerate() {
            for (c, col) in p.cols.iter().enumerate() {
                let _ = writeln!(csv, "{},{row},{col},{}", p.title, p.values[r][c]);
            }
        }
    }
    save(dir, stem, size, |a| draw_heat_grid(a, g, 1.0), |a| draw_heat_grid(a, g, 2.0), &csv)
}
