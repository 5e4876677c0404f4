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
    /// Print the summary as JSON (every metric's mean, interval and n, the paired differences and
    /// verdicts) instead of summary.md. The files are written either way, into the sweep folder.
    #[arg(long)]
    pub json: bool,
    /// Write the report into this folder instead of the sweep folder (analysis.json stays in each
    /// run folder, where it belongs).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `gatelab report <sweep>`: analyses finished runs that lack `analysis.json`, then writes
/// `summary.csv`, `summary.md`, the figures and `report.html` into the sweep folder and prints
/// the tables.
pub fn report(args: ReportArgs) -> Result<()> {
    let runs = runs_under(&args.sweep)?;
    // Finished runs with intact weights and no analysis yet (an unreadable analysis.json is the
    // report's to show, not to overwrite).
    let missing: Vec<_> =
        runs.iter().filter(|r| r.is_done() && r.weights().usable() && matches!(read_analysis(r), Ok(None))).collect();
    if !missing.is_empty() {
        let device = args.device.open()?;
        for run in missing {
            gatelab::interrupt::check("gatelab report")?;
            eprintln!("analysing {}", run.path.display());
            if let Err(e) = analyze_run(run, &device, &AnalyzeOptions::default()) {
                eprintln!("{}: not analysed: {}", run.name(), gatelab_rundir::one_line(&e));
            }
        }
    }
    gatelab::interrupt::check("gatelab report")?;
    let out = args.out.clone().unwrap_or_else(|| args.sweep.clone());
    let written = report::write_to(&args.sweep, &out)?;
    if args.json {
        let json = report::tables::json(&written.summary, &written.finding);
        println!("{}", serde_json::to_string_pretty(&json).expect("json"));
    } else {
        print!(
            "{}",
            std::fs::read_to_string(out.join("summary.md"))
                .map_err(|e| ExperimentError::file(out.join("summary.md"), e))?
        );
    }
    eprintln!(
        "wrote {0}/report.html, summary.md, summary.csv and {1} figures (SVG, PNG, CSV)",
        out.display(),
        written.charts().count()
    );
    let groups = &written.summary.groups;
    if groups.iter().all(|g| g.done() == 0) {
        let diverged: usize = groups.iter().map(|g| g.diverged()).sum();
        let runs: usize = groups.iter().map(|g| g.runs.len()).sum();
        let advice = if diverged == runs {
            "every run diverged: lower train.lr (or raise train.warmup_steps) and sweep again"
        } else {
            "see each run's status in summary.md: rerun the sweep to resume unfinished runs; failed runs name their cause in status.json"
        };
        return Err(ExperimentError::file(
            &args.sweep,
            format!("no finished run ({diverged} of {runs} diverged), so nothing was measured: {advice}"),
        ));
    }
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
    /// Print both summaries as JSON (`{"a": …, "b": …}`, as `report --json`) instead of the
    /// markdown; the markdown is written to --out either way.
    #[arg(long)]
    json: bool,
}

/// `gatelab compare A B`: two sweeps side by side (each analysed with `gatelab report` first).
pub fn compare(args: CompareArgs) -> Result<()> {
    let (a, b) = (gatelab_analysis::summary::summarize(&args.a)?, gatelab_analysis::summary::summarize(&args.b)?);
    let md = report::compare(&a, &b, &args.a.display().to_string(), &args.b.display().to_string());
    write_atomic(&args.out, md.as_bytes())?;
    if args.json {
        let side = |s: &gatelab_analysis::summary::Summary, path: &PathBuf| {
            let mut v = report::tables::json(s, &gatelab_analysis::summary::finding(s));
            v["sweep"] = serde_json::Value::from(path.display().to_string());
            v
        };
        let json = serde_json::json!({ "a": side(&a, &args.a), "b": side(&b, &args.b) });
        println!("{}", serde_json::to_string_pretty(&json).expect("json"));
    } else {
        print!("{md}");
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
