//! The report's charts: each drawn once as SVG and once as PNG at twice the size (for slides),
//! with a CSV of the plotted numbers beside them and what they aggregate written on the chart.
//! One look per variant, the same in every chart ([`look`]: a colour and, once the palette's ten
//! come round, a line pattern and marker shape of their own); legends sit beside the plot,
//! never over the data; tick labels carry as many decimals as the axis needs to tell them apart.
//!
//! - [`line`]: values against a continuous x (steps, layers, lengths), with bands or error bars.
//! - [`dots`]: one value per variant, with its interval and each seed's value.
//! - [`heat`]: heat-map grids and attention maps.
//!
//! Text is laid out with DejaVu Sans, compiled in (`analysis/fonts/`), or the TrueType font
//! named by `$GATELAB_FONT`.

pub mod dots;
pub mod heat;
pub mod line;

pub use dots::{Dot, DotChart, dot_chart};
pub use heat::{AttentionMaps, HeatGrid, HeatPanel, attention_maps, heat_grid};
pub use line::{LineChart, Point, Series, SeriesStyle, line_chart};

use crate::error::{AnalysisError, Result};
use gatelab_rundir::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// A chart written into a report folder: `<stem>.svg`, `.png`, `.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartFile {
    /// The file stem.
    pub stem: String,
    /// Its title.
    pub title: String,
    /// What it aggregates (also written on the chart).
    pub caption: String,
}

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

/// A line's pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Unbroken.
    Solid,
    /// Long dashes.
    Dashed,
    /// Short dots.
    Dotted,
}

/// A marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A disc (or ring).
    Circle,
    /// A square.
    Square,
    /// A triangle, point up.
    Triangle,
}

/// How variant number `i` is drawn in line charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// Its colour ([`colour`]).
    pub colour: RGBColor,
    /// Its line.
    pub pattern: Pattern,
    /// Its markers.
    pub shape: Shape,
}

/// The look of variant number `i`: the palette's colour, with a solid line and discs for the
/// first ten, dashes and squares for the next ten, dots and triangles for the ten after, and
/// so on through every pairing of the three patterns and shapes: no two of ninety variants look
/// alike.
pub fn look(i: usize) -> Look {
    let round = (i / PALETTE.len()) % 9;
    Look {
        colour: colour(i),
        pattern: [Pattern::Solid, Pattern::Dashed, Pattern::Dotted][round % 3],
        shape: [Shape::Circle, Shape::Square, Shape::Triangle][(round + round / 3) % 3],
    }
}

/// A marker of `shape` centred on its point, `size` pixels from centre to edge: drawn in a
/// chart's coordinates or, on a plain drawing area, in pixels (legends).
pub struct Mark<C> {
    /// Where.
    pub at: C,
    /// Its shape.
    pub shape: Shape,
    /// Half its width, in pixels.
    pub size: i32,
    /// Colour, stroke and whether it is filled.
    pub style: ShapeStyle,
}

impl<'a, C: 'a> plotters::element::PointCollection<'a, C> for &'a Mark<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> std::iter::Once<&'a C> {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> plotters::element::Drawable<DB> for Mark<C> {
    fn draw<I: Iterator<Item = plotters_backend::BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> std::result::Result<(), plotters_backend::DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = points.next() else { return Ok(()) };
        let (d, style) = (self.size, &self.style);
        match self.shape {
            Shape::Circle => backend.draw_circle((x, y), d.max(1) as u32, style, style.filled),
            Shape::Square => backend.draw_rect((x - d, y - d), (x + d, y + d), style, style.filled),
            Shape::Triangle => {
                let corners = [(x, y - d - 1), (x - d - 1, y + d), (x + d + 1, y + d)];
                if style.filled {
                    backend.fill_polygon(corners, style)
                } else {
                    backend.draw_path(corners.into_iter().chain([corners[0]]), style)
                }
            }
        }
    }
}

/// Grey, for reference lines (chance levels).
pub const REFERENCE: RGBColor = RGBColor(110, 110, 110);

/// DejaVu Sans (Bitstream Vera licence, `analysis/fonts/LICENSE-DejaVu.txt`), compiled in so
/// that charts draw on a machine without fonts.
const BUILT_IN_FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// Registers the font once: `$GATELAB_FONT` (a TrueType file) when set, else the built-in one.
pub fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let bytes: &'static [u8] = match std::env::var("GATELAB_FONT") {
            Ok(path) => {
                let bytes = std::fs::read(&path).map_err(|e| format!("GATELAB_FONT={path}: {e}"))?;
                Box::leak(bytes.into_boxed_slice())
            }
            Err(_) => BUILT_IN_FONT,
        };
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "GATELAB_FONT: not a TrueType font".to_string())
    })
    .clone()
    .map_err(|e| AnalysisError::chart("font", e))
}

/// How a y axis spans its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YAxis {
    /// A probability or share: always [0, 1].
    Probability,
    /// From 0 (or below, for negative data) to a little above the largest value.
    FromZero,
    /// Around the data, with a margin.
    Fit,
}

impl YAxis {
    /// The axis range for values in `[lo, hi]`.
    pub fn range(self, lo: f64, hi: f64) -> (f64, f64) {
        let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        // Values all alike get a span of their own size (or 1), not a degenerate axis.
        let span = if hi - lo > 1e-9 * hi.abs().max(1.0) { hi - lo } else { 0.1 * hi.abs().max(1.0) };
        match self {
            YAxis::Probability => (0.0, 1.0),
            YAxis::FromZero if hi <= 0.0 && lo >= 0.0 => (0.0, 1.0),
            YAxis::FromZero => (lo.min(0.0), hi + 0.08 * span),
            YAxis::Fit => (lo - 0.08 * span, hi + 0.08 * span),
        }
    }

    /// A line under the axis label saying how it is scaled (probabilities need none).
    pub fn note(self) -> &'static str {
        match self {
            YAxis::Probability => "",
            YAxis::FromZero => "",
            YAxis::Fit => " (axis fitted to the data)",
        }
    }
}

/// The decimals a tick label needs on an axis spanning `range` with about `labels` ticks, so
/// that neighbouring ticks never print alike. Plotters places ticks 1, 2 or 5 × 10^k apart with
/// at most `labels` of them, so the step is at least `range / labels`.
pub fn tick_decimals(range: f64, labels: usize) -> usize {
    let step = (range.abs() / labels.max(1) as f64).max(1e-12);
    (-step.log10().floor()).clamp(0.0, 9.0) as usize
}

/// A tick label with `decimals` decimals (large values without).
pub fn tick_label(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_string()
    } else {
        text
    }
}

/// Size of a chart's SVG in pixels; the PNG is twice as large.
pub const SIZE: (u32, u32) = (1000, 560);

/// Pixels of `n` at drawing scale `s` (1 for SVG, 2 for PNG).
pub(crate) fn px(n: f64, s: f64) -> i32 {
    (n * s).round() as i32
}

/// A font of `size` points at scale `s`.
pub(crate) fn font(size: f64, s: f64) -> FontDesc<'static> {
    ("sans-serif", size * s).into_font()
}

/// Draws a chart with `draw` into `<stem>.svg` (at scale 1) and `<stem>.png` (at scale 2), and
/// writes `csv` as `<stem>.csv`, each file atomically.
pub(crate) fn save<F, G>(dir: &Path, stem: &str, size: (u32, u32), svg: F, png: G, csv: &str) -> Result<()>
where
    F: FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
    G: FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
{
    ensure_font()?;
    let mut text = String::new();
    svg(SVGBackend::with_string(&mut text, size).into_drawing_area()).map_err(|e| AnalysisError::chart(stem, e))?;
    let (w, h) = (size.0 * 2, size.1 * 2);
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    png(BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area())
        .map_err(|e| AnalysisError::chart(stem, e))?;
    let mut encoded = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut encoded),
        &pixels,
        w,
        h,
        image::ColorType::Rgb8,
    )
    .map_err(|e| AnalysisError::chart(stem, e))?;
    write_atomic(&dir.join(format!("{stem}.svg")), text.as_bytes())?;
    write_atomic(&dir.join(format!("{stem}.png")), &encoded)?;
    write_atomic(&dir.join(format!("{stem}.csv")), csv.as_bytes())?;
    Ok(())
}

/// One entry of a legend: what its swatch shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The label.
    pub label: String,
    /// The line's colour and pattern.
    pub colour: RGBColor,
    /// Its pattern.
    pub pattern: Pattern,
    /// The marker on it, filled or not, if the series has markers.
    pub marker: Option<(Shape, bool)>,
}

/// A legend beside the plot: a swatch (the series' line pattern and marker) and a label per
/// entry, top to bottom.
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    s: f64,
) -> std::result::Result<(), String> {
    let style = font(13.0, s).color(&BLACK);
    for (k, entry) in entries.iter().enumerate() {
        let y = px(24.0 + 22.0 * k as f64, s);
        let stroke = ShapeStyle { color: entry.colour.to_rgba(), filled: false, stroke_width: (2.0 * s) as u32 };
        // The swatch's pieces of line, 8 to 34 px: whole, two dashes, or five dots.
        let pieces: &[(f64, f64)] = match entry.pattern {
            Pattern::Solid => &[(8.0, 34.0)],
            Pattern::Dashed => &[(8.0, 16.0), (24.0, 34.0)],
            Pattern::Dotted => &[(8.0, 10.0), (14.0, 16.0), (20.0, 22.0), (26.0, 28.0), (32.0, 34.0)],
        };
        for &(a, b) in pieces {
            area.draw(&PathElement::new(vec![(px(a, s), y), (px(b, s), y)], stroke)).map_err(|e| e.to_string())?;
        }
        if let Some((shape, filled)) = entry.marker {
            let style = ShapeStyle { filled, ..stroke };
            area.draw(&Mark { at: (px(21.0, s), y), shape, size: px(4.0, s), style }).map_err(|e| e.to_string())?;
        }
        let short: String = entry.label.chars().take(34).collect();
        area.draw(&Text::new(short, (px(42.0, s), y - px(8.0, s)), style.clone())).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A chart's frame: a white page with `title` on top and `caption` (what the chart aggregates)
/// at the foot, drawn; returns the area between them.
pub(crate) fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    caption_text: &str,
    s: f64,
) -> std::result::Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (_, h) = root.dim_in_pixel();
    let foot = px(14.0 + 17.0 * wrap(caption_text, 150).len() as f64, s) as u32;
    let (top, rest) = root.split_vertically(px(40.0, s));
    top.draw(&Text::new(title.to_string(), (px(16.0, s), px(10.0, s)), font(20.0, s).color(&BLACK)))
        .map_err(|e| e.to_string())?;
    let (body, foot_area) = rest.split_vertically(h - px(40.0, s) as u32 - foot);
    caption(&foot_area, caption_text, s)?;
    Ok(body)
}

/// The caption at the foot of a chart: what it aggregates, wrapped to the width.
pub(crate) fn caption<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    s: f64,
) -> std::result::Result<(), String> {
    let style = font(12.5, s).color(&BLACK.mix(0.75));
    for (k, line) in wrap(text, 150).iter().enumerate() {
        area.draw(&Text::new(line.clone(), (px(14.0, s), px(4.0 + 17.0 * k as f64, s)), style.clone()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Words of `text` in lines of at most `width` characters.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_differ_on_narrow_axes() {
        // Ticks 0.1005, 0.1010, … on an axis from 0.1 to 0.105 with 10 labels: 4 decimals.
        let d = tick_decimals(0.005, 10);
        let labels: Vec<String> = (0..10).map(|k| tick_label(0.1 + 0.0005 * k as f64, d)).collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
        assert_eq!(tick_decimals(100.0, 10), 0);
        assert_eq!(tick_label(-0.0, 2), "0.00");
    }

    #[test]
    fn axes_of_values_all_alike_have_a_span() {
        assert_eq!(YAxis::FromZero.range(0.0, 0.0), (0.0, 1.0));
        let (a, b) = YAxis::Fit.range(3.0, 3.0);
        assert!(a < 3.0 && b > 3.0, "{a}..{b}");
        assert!(tick_decimals(b - a, 10) <= 3);
    }

    #[test]
    fn ninety_variants_have_ninety_looks() {
        let looks: Vec<Look> = (0..90).map(look).collect();
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[..i] {
                assert!(a.colour != b.colour || a.pattern != b.pattern || a.shape != b.shape, "{i}");
            }
        }
        // The palette comes round at ten: the colour repeats, the line and marker do not.
        assert_eq!(look(10).colour, look(0).colour);
        assert_ne!((look(10).pattern, look(10).shape), (look(0).pattern, look(0).shape));
    }

    #[test]
    fn captions_wrap_at_word_boundaries() {
        let lines = wrap("one two three four", 9);
        assert_eq!(lines, vec!["one two", "three", "four"]);
    }
}
