//! A sweep's report: `summary.md`, `summary.csv`, the figures (SVG, PNG, CSV) and
//! `report.html`, from the run folders alone.
//!
//! - [`crate::summary`] groups the runs by configuration and computes each metric's mean,
//!   interval and paired difference to the baseline;
//! - [`setup`] says what was run; [`tables`] writes the tables; [`figures`] draws the figures of
//!   the summary and [`length`] those of `gatelab eval-length`; [`html`] puts everything in one
//!   file; [`compare`] sets two sweeps side by side.

pub mod compare;
pub mod figures;
pub mod html;
pub mod length;
pub mod setup;
pub mod tables;

pub use compare::compare;
pub use setup::Setup;

use crate::charts::ChartFile;
use crate::error::Result;
use crate::summary::{Summary, finding, summarize};
use gatelab_rundir::write_atomic;
use std::path::Path;

/// A numbered section of figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its title.
    pub title: String,
    /// Its figures, in order.
    pub charts: Vec<ChartFile>,
}

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// `gatelab report: grid <name>`.
    pub title: String,
    /// What was run.
    pub setup: Setup,
    /// What the baseline shows, in words.
    pub finding: String,
    /// The runs grouped by configuration, with their statistics.
    pub summary: Summary,
    /// The figures, by section.
    pub sections: Vec<Section>,
}

impl Report {
    /// Every chart written.
    pub fn charts(&self) -> impl Iterator<Item = &ChartFile> {
        self.sections.iter().flat_map(|s| s.charts.iter())
    }
}

/// Reads every run folder under `sweep` and writes its report there: `summary.md`,
/// `summary.csv`, the figures, `length_summary.*` when runs were evaluated beyond their length,
/// and `report.html`.
pub fn write(sweep: &Path) -> Result<Report> {
    write_to(sweep, sweep)
}

/// As [`write`], into the folder `out` (created if needed); `report.html` links the run folders'
/// files relative to it.
pub fn write_to(sweep: &Path, out: &Path) -> Result<Report> {
    let summary = summarize(sweep)?;
    std::fs::create_dir_all(out).map_err(|e| crate::error::AnalysisError::run(out, format!("cannot create: {e}")))?;
    let setup = Setup::of(&summary);
    let finding = finding(&summary);
    let title = format!("gatelab report: grid {}", setup.grid);
    write_atomic(&out.join("summary.md"), tables::markdown(&title, &setup, &finding, &summary).as_bytes())?;
    write_atomic(&out.join("summary.csv"), tables::csv(&summary).as_bytes())?;
    let mut sections = figures::write(out, &summary)?;
    sections.extend(length::write(sweep, out, &summary)?);
    html::write(out, &title, &setup, &finding, &summary, &sections)?;
    Ok(Report { title, setup, finding, summary, sections })
}
