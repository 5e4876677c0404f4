//! The report's charts, each as SVG and PNG with a CSV sidecar of the plotted numbers and its
//! aggregation written on the chart. One colour per variant, the same in every chart.
//!
//! Text is laid out with a TrueType font read at run time: `$GATELAB_FONT`, else DejaVu Sans
//! (Debian's `fonts-dejavu-core`).

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

/// Tableau 10: distinct, colour-blind-aware.
const PALETTE: [(u8, u8, u8); 10] = [
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
];

/// The colour of variant number `i` (in the report's variant order).
pub fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Registers the font once; the error says how to provide one.
pub fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = std::env::var("GATELAB_FONT").unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
        let bytes = std::fs::read(&path).map_err(|e| format!("charts need a TrueType font: {path}: {e} (install fonts-dejavu-core or set GATELAB_FONT)"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| format!("{path}: not a TrueType font"))
    })
    .clone()
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Colour index (the variant's).
    pub colour: usize,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Dashed (reference lines such as the chance level).
    pub dashed: bool,
    /// Draw a marker at each point (few points, e.g. layers).
    pub markers: bool,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// X axis label, with its unit.
    pub x_label: String,
    /// Y axis label, with its unit.
    pub y_label: String,
    /// What the numbers aggregate (written under the plot).
    pub aggregation: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Integer ticks on x (layers).
    pub integer_x: bool,
}

const SIZE: (u32, u32) = (960, 600);

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &LineChart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", chart.title);
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plot, caption) = root.split_vertically(SIZE.1 - 36);
    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    // Headroom above the data so the legend (upper right) never covers a line.
    let span = (y1 - y0).max(1e-3);
    let legend_rows = chart.series.len() as f64;
    let (y0, y1) = (if y0 >= 0.0 { 0.0f64.max(y0 - 0.05 * span) } else { y0 - 0.05 * span }, y1 + span * (0.1 + 0.055 * legend_rows));
    let (x0, x1) = if chart.integer_x { (x0 - 0.3, x1 + 0.3) } else if x1 > x0 { (x0, x1) } else { (x0 - 1.0, x1 + 1.0) };
    let mut ctx = ChartBuilder::on(&plot)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;
    let mut mesh = ctx.configure_mesh();
    mesh.x_desc(&chart.x_label).y_desc(&chart.y_label).label_style(("sans-serif", 14)).axis_desc_style(("sans-serif", 16));
    let tick = |v: &f64| if v.abs() >= 10.0 || *v == v.round() { format!("{}", v.round() as i64) } else { format!("{v:.2}") };
    let fine = |v: &f64| if v.abs() >= 100.0 { format!("{}", v.round() as i64) } else { format!("{v:.2}") };
    mesh.y_label_formatter(&fine);
    if chart.integer_x {
        mesh.x_labels((x1 - x0).round() as usize + 1).x_label_formatter(&tick);
    } else {
        mesh.x_label_formatter(&tick);
    }
    mesh.draw().map_err(|e| err(&e))?;
    for s in &chart.series {
        let c = colour(s.colour);
        let style = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: 2 };
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let drawn = if s.dashed {
            ctx.draw_series(DashedLineSeries::new(pts.clone(), 8, 6, style)).map_err(|e| err(&e))?
        } else {
            ctx.draw_series(LineSeries::new(pts.clone(), style)).map_err(|e| err(&e))?
        };
        drawn.label(&s.label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if s.markers {
            ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(|e| err(&e))?;
        }
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    caption.draw(&Text::new(chart.aggregation.clone(), (16, 8), ("sans-serif", 13).into_font().color(&BLACK.mix(0.75)))).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// Writes `<stem>.svg`, `<stem>.png` and `<stem>.csv` (series, x, y) into `dir`.
pub fn line_chart(dir: &Path, stem: &str, chart: &LineChart) -> Result<(), String> {
    ensure_font()?;
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), chart)?;
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), chart)?;
    let mut csv = format!("# {}: {}\nseries,{},{}\n", chart.title, chart.aggregation, chart.x_label, chart.y_label);
    for s in chart.series.iter().filter(|s| !s.dashed) {
        for (x, y) in &s.points {
            let _ = writeln!(csv, "{},{x},{y}", s.label);
        }
    }
    std::fs::write(dir.join(format!("{stem}.csv")), csv).map_err(|e| format!("{stem}.csv: {e}"))
}

/// One sequence's attention maps: `maps[layer][head]` is a `t × t` row-major probability matrix.
#[derive(Debug, Clone)]
pub struct AttentionMaps {
    /// Title.
    pub title: String,
    /// The maps.
    pub maps: Vec<Vec<Vec<f32>>>,
    /// Sequence length.
    pub t: usize,
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
fn heat_frame<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, value: &str, caption: &str) -> Result<DrawingArea<DB, Shift>, String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{title}: {e}");
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (w, h) = root.dim_in_pixel();
    let (top, rest) = root.split_vertically(44);
    top.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let (body, foot) = rest.split_vertically(h - 44 - 40);
    let (grid, bar) = body.split_horizontally(w - 120);
    let steps = 50;
    let mut bar_ctx = ChartBuilder::on(&bar).margin(20).margin_right(30).y_label_area_size(56).build_cartesian_2d(0..1, 0.0..1.0).map_err(|e| err(&e))?;
    bar_ctx.configure_mesh().disable_mesh().disable_x_axis().y_labels(5).label_style(("sans-serif", 11)).y_desc(value).axis_desc_style(("sans-serif", 11)).draw().map_err(|e| err(&e))?;
    bar_ctx
        .draw_series((0..steps).map(|i| {
            let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
            Rectangle::new([(0, a), (1, b)], heat(((a + b) / 2.0) as f32).filled())
        }))
        .map_err(|e| err(&e))?;
    foot.draw(&Text::new(caption.to_string(), (12, 12), ("sans-serif", 12).into_font().color(&BLACK.mix(0.75)))).map_err(|e| err(&e))?;
    Ok(grid)
}

fn draw_maps<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, m: &AttentionMaps, layers: &[usize], heads: &[usize], n: usize, caption: &str) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", m.title);
    let grid = heat_frame(&root, &m.title, "probability", caption)?;
    for (cell, (li, hi)) in grid.split_evenly((layers.len(), heads.len())).iter().zip(layers.iter().flat_map(|l| heads.iter().map(move |h| (*l, *h)))) {
        let map = &m.maps[li][hi];
        let mut ctx = ChartBuilder::on(cell)
            .caption(format!("layer {}, head {}", li + 1, hi + 1), ("sans-serif", 13))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(28)
            .build_cartesian_2d(0usize..n, n..0usize)
            .map_err(|e| err(&e))?;
        ctx.configure_mesh().disable_mesh().x_labels(3).y_labels(3).label_style(("sans-serif", 10)).x_desc("key").y_desc("query").axis_desc_style(("sans-serif", 10)).draw().map_err(|e| err(&e))?;
        ctx.draw_series((0..n).flat_map(|q| (0..n).map(move |k| (q, k))).filter(|(q, k)| k <= q).map(|(q, k)| {
            Rectangle::new([(k, q), (k + 1, q + 1)], heat(map[q * m.t + k]).filled())
        }))
        .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// Writes `<stem>.svg`, `.png` and `.csv` (layer, head, query, key, probability) of one
/// sequence's attention maps: the first 64 positions, at most 8 layers × 8 heads (evenly spaced).
pub fn attention_maps(dir: &Path, stem: &str, m: &AttentionMaps) -> Result<String, String> {
    ensure_font()?;
    let (layers, heads) = (pick(m.maps.len(), MAX_PANELS), pick(m.maps.first().map_or(0, |h| h.len()), MAX_PANELS));
    let n = m.t.min(MAX_POSITIONS);
    let caption = format!(
        "One held-out sequence, BOS at 0: positions 0..{n} of {}; {} of {} layers, {} of {} heads.",
        m.t, layers.len(), m.maps.len(), heads.len(), m.maps.first().map_or(0, |h| h.len())
    );
    let size = (((heads.len() as u32) * 230 + 140).max(820), ((layers.len() as u32) * 230 + 90).max(440));
    draw_maps(SVGBackend::new(&dir.join(format!("{stem}.svg")), size).into_drawing_area(), m, &layers, &heads, n, &caption)?;
    draw_maps(BitMapBackend::new(&dir.join(format!("{stem}.png")), size).into_drawing_area(), m, &layers, &heads, n, &caption)?;
    let mut csv = format!("# {}: {caption}\nlayer,head,query,key,probability\n", m.title);
    for &l in &layers {
        for &h in &heads {
            for q in 0..n {
                for k in 0..=q {
                    let _ = writeln!(csv, "{},{},{q},{k},{}", l + 1, h + 1, m.maps[l][h][q * m.t + k]);
                }
            }
        }
    }
    std::fs::write(dir.join(format!("{stem}.csv")), csv).map_err(|e| format!("{stem}.csv: {e}"))?;
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

fn draw_heat_grid<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, g: &HeatGrid) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", g.title);
    let grid = heat_frame(&root, &g.title, &g.value_label, &g.aggregation)?;
    let columns = g.columns.max(1);
    let rows = g.panels.len().div_ceil(columns);
    for (cell, panel) in grid.split_evenly((rows, columns)).iter().zip(&g.panels) {
        let (nr, nc) = (panel.rows.len(), panel.cols.len());
        // Segmented axes put each label at the centre of its cell; row 0 is drawn at the top.
        let mut ctx = ChartBuilder::on(cell)
            .caption(&panel.title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((0..nc.max(1) - 1).into_segmented(), (0..nr.max(1) - 1).into_segmented())
            .map_err(|e| err(&e))?;
        let (rl, cl) = (panel.rows.clone(), panel.cols.clone());
        let col_name = move |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => cl.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let row_name = move |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < nr => rl[nr - 1 - *i].clone(),
            _ => String::new(),
        };
        ctx.configure_mesh()
            .disable_mesh()
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&col_name)
            .y_label_formatter(&row_name)
            .x_desc(&g.col_label)
            .y_desc(&g.row_label)
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 11))
            .draw()
            .map_err(|e| err(&e))?;
        let cells: Vec<(usize, usize, f64)> = (0..nr).flat_map(|r| (0..nc).map(move |c| (r, c))).map(|(r, c)| (r, c, panel.values[r][c])).collect();
        ctx.draw_series(cells.iter().map(|&(r, c, v)| {
            let colour = if v.is_finite() { heat(v as f32) } else { RGBColor(200, 200, 200) };
            let y = nr - 1 - r;
            Rectangle::new([(SegmentValue::Exact(c), SegmentValue::Exact(y)), (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1))], colour.filled())
        }))
        .map_err(|e| err(&e))?;
        // The value in each cell, dark on light, light on dark.
        ctx.draw_series(cells.iter().filter(|(_, _, v)| v.is_finite()).map(|&(r, c, v)| {
            let ink = if v > 0.55 { WHITE } else { BLACK };
            Text::new(format!("{v:.2}"), (SegmentValue::CenterOf(c), SegmentValue::CenterOf(nr - 1 - r)), ("sans-serif", 11).into_font().color(&ink).pos(Pos::new(HPos::Center, VPos::Center)))
        }))
        .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// Writes `<stem>.svg`, `.png` and `.csv` (panel, row, column, value) of a heat-map grid.
pub fn heat_grid(dir: &Path, stem: &str, g: &HeatGrid) -> Result<(), String> {
    ensure_font()?;
    let columns = g.columns.max(1);
    let rows = g.panels.len().div_ceil(columns).max(1) as u32;
    let size = ((columns.min(g.panels.len().max(1)) as u32 * 300 + 140).max(820), (rows * 280 + 90).max(440));
    draw_heat_grid(SVGBackend::new(&dir.join(format!("{stem}.svg")), size).into_drawing_area(), g)?;
    draw_heat_grid(BitMapBackend::new(&dir.join(format!("{stem}.png")), size).into_drawing_area(), g)?;
    let mut csv = format!("# {}: {}\npanel,{},{},{}\n", g.title, g.aggregation, g.row_label, g.col_label, g.value_label);
    for p in &g.panels {
        for (r, row) in p.rows.iter().enumerate() {
            for (c, col) in p.cols.iter().enumerate() {
                let _ = writeln!(csv, "{},{row},{col},{}", p.title, p.values[r][c]);
            }
        }
    }
    std::fs::write(dir.join(format!("{stem}.csv")), csv).map_err(|e| format!("{stem}.csv: {e}"))
}
