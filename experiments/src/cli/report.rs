//! `gatelab report` and `gatelab compare`.

use super::DeviceArgs;
use gatelab::{ExperimentError, Result};
use gatelab_analysis::report;
use gatelab_analysis::run::{AnalyzeOptions, analyze_run, read_analysis};
use gatelab_rundir::{runs_under, write_atomic};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A sweep folder (e.g. results/core).
    pub sweep: PathBuf,
    /// Where finished runs without analysis.json are analysed.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `gatelab report <sweep>`: analyses finished runs that lack `analysis.json`, then writes
/// `summary.csv`, `summary.md`, the figures and `report.html` into the sweep folder and prints
/// the tables.
pub fn report(args: ReportArgs) -> Result<()> {
    let runs = runs_under(&args.sweep)?;
    let mut missing = Vec::new();
    for run in runs.iter().filter(|r| r.is_done()) {
        if read_analysis(run)?.is_none() {
            missing.push(run);
        }
    }
    if !missing.is_empty() {
        let device = args.device.open()?;
        for run in missing {
            eprintln!("analysing {}", run.path.display());
            analyze_run(run, &device, &AnalyzeOptions::default())?;
        }
    }
    let written = report::write(&args.sweep)?;
    print!(
        "{}",
        std::fs::read_to_string(args.sweep.join("summary.md"))
            .map_err(|e| ExperimentError::file(args.sweep.join("summary.md"), e))?
    );
    eprintln!(
        "wrote {0}/report.html, summary.md, summary.csv and {1} figures (SVG, PNG, CSV)",
        args.sweep.display(),
        written.charts().count()
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The first sweep folder.
    a: PathBuf,
    /// The second.
    b: PathBuf,
    /// Where to write the comparison (markdown).
    #[arg(long, default_value = "compare.md")]
    out: PathBuf,
}

/// `gatelab compare A B`: two sweeps side by side (each analysed with `gatelab report` first).
pub fn compare(args: CompareArgs) -> Result<()> {
    let (a, b) = (gatelab_analysis::summary::summarize(&args.a)?, gatelab_analysis::summary::summarize(&args.b)?);
    let md = report::compare(&a, &b, &args.a.display().to_string(), &args.b.display().to_string());
    write_atomic(&args.out, md.as_bytes())?;
    print!("{md}");
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
