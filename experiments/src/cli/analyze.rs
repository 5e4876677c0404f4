//! `gatelab analyze <run|sweep>`.

use gatelab::backend::{self, Backend};
use gatelab_analysis::report;
use gatelab_analysis::run::{AnalyzeOptions, analyze_run, is_done, runs_under};
use gatelab_data::DataConfig;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// A run folder, or a sweep folder holding run folders.
    path: PathBuf,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Device index.
    #[arg(long, default_value_t = 0)]
    device_index: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// At most this many analysis sequences per run.
    #[arg(long, default_value_t = 512)]
    max_sequences: usize,
}

pub fn analyze(args: AnalyzeArgs) -> Result<(), String> {
    let runs = runs_under(&args.path)?;
    let device = backend::open(args.backend, args.device_index)?;
    let options = AnalyzeOptions { batch_size: args.batch_size.max(1), max_sequences: args.max_sequences, ..AnalyzeOptions::default() };
    println!("{:<40} {:>6} {:>9} {:>7} {:>9} {:>9}  per-layer F-Attn", "run", "seqs", "F-Attn", "Sink", "M-Act", "gate");
    for dir in runs {
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if !is_done(&dir) {
            eprintln!("{name}: not finished, skipped");
            continue;
        }
        let a = analyze_run(&dir, &device, &options)?;
        let s = &a.stats;
        let per_layer: Vec<String> = s.layers.iter().map(|l| format!("{:.3}", l.first_token_attention[1])).collect();
        let gate = s.gate_mean().map(|g| format!("{g:.3}")).unwrap_or_else(|| "-".into());
        println!("{name:<40} {:>6} {:>9.3} {:>7.3} {:>9.2} {gate:>9}  {}", s.sequences, s.first_token_attention(), s.sink(), s.max_activation(), per_layer.join(" "));
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A sweep folder (e.g. results/core).
    pub sweep: PathBuf,
    /// Backend for analysing runs that have no analysis.json yet.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// Device index.
    #[arg(long, default_value_t = 0)]
    pub device_index: usize,
}

/// `gatelab report <sweep>`: analyses finished runs that lack analysis.json, then writes
/// summary.csv and summary.md into the sweep folder and prints the markdown.
pub fn report(args: ReportArgs) -> Result<(), String> {
    let runs = runs_under(&args.sweep)?;
    let missing: Vec<_> = runs.iter().filter(|d| is_done(d) && !d.join("analysis.json").exists()).collect();
    if !missing.is_empty() {
        let device = backend::open(args.backend, args.device_index)?;
        for dir in missing {
            eprintln!("analysing {}", dir.display());
            analyze_run(dir, &device, &AnalyzeOptions::default())?;
        }
    }
    let summary = report::summarize(&args.sweep)?;
    let title = format!("gatelab report: {}", args.sweep.display());
    report::write(&summary, &args.sweep, &title)?;
    let charts = report::write_charts(&args.sweep, &summary)?;
    report::write_html(&args.sweep, &summary, &charts, &title)?;
    print!("{}", std::fs::read_to_string(args.sweep.join("summary.md")).map_err(|e| e.to_string())?);
    eprintln!("wrote {0}/summary.csv, summary.md, report.html and {1} charts (SVG, PNG, CSV)", args.sweep.display(), charts.len());
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
pub fn compare(args: CompareArgs) -> Result<(), String> {
    let (a, b) = (report::summarize(&args.a)?, report::summarize(&args.b)?);
    let md = report::compare(&a, &b, &args.a.display().to_string(), &args.b.display().to_string());
    std::fs::write(&args.out, &md).map_err(|e| format!("{}: {e}", args.out.display()))?;
    print!("{md}");
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct AnalyzeBenchArgs {
    /// Preset whose model and data to time (weights are random: cost does not depend on them).
    #[arg(long, default_value = "small")]
    preset: String,
    /// Tokens to push through each.
    #[arg(long, default_value_t = 1_000_000)]
    tokens: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
}

/// `gatelab analyze-bench`: the cost of the analysis (probed forward + statistics) against a plain
/// forward over the same tokens, measured side by side, alternating, in one process.
pub fn analyze_bench(args: AnalyzeBenchArgs) -> Result<(), String> {
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::Dataset;
    use gatelab_analysis::stats::{Accumulator, StatsConfig};
    let config = gatelab::config::RunConfig::preset(&args.preset)?.resolve()?;
    let device = backend::open(args.backend, 0)?;
    let data = DataConfig { synthetic_examples: [1, 1, 4096], ..config.data.clone() }.prepare().map_err(|e| e.to_string())?;
    let batcher = gatelab_data::LmBatcher { pad: data.vocab.pad };
    let seq = config.data.seq_len;
    let batches = args.tokens.div_ceil(seq * args.batch_size);
    let inputs: Vec<_> = (0..batches.min(64))
        .map(|b| {
            let items = (0..args.batch_size).map(|i| data.analysis.get((b * args.batch_size + i) % data.analysis.len()).expect("example")).collect();
            batcher.batch(items, &device).inputs
        })
        .collect();
    let model = config.model.init(&device).map_err(|e| format!("model.{e}"))?;
    let (mut forward_s, mut analysis_s) = (0.0, 0.0);
    let mut acc = Accumulator::new(StatsConfig::default());
    for b in 0..batches {
        let x = inputs[b % inputs.len()].clone();
        let t = std::time::Instant::now();
        let logits = model.forward(x.clone());
        let _ = logits.sum().into_scalar::<f32>(); // wait for the device
        forward_s += t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let (logits, probes) = model.forward_probed(x);
        acc.add(&probes);
        let _ = logits.sum().into_scalar::<f32>();
        analysis_s += t.elapsed().as_secs_f64();
    }
    let tokens = batches * args.batch_size * seq;
    let report = serde_json::json!({
        "preset": args.preset, "backend": args.backend.name(), "tokens": tokens,
        "forward_seconds": forward_s, "analysis_seconds": analysis_s,
        "forward_tokens_per_s": tokens as f64 / forward_s, "analysis_tokens_per_s": tokens as f64 / analysis_s,
        "analysis_over_forward": analysis_s / forward_s,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    Ok(())
}
