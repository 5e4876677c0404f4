//! `gatelab analyze` (a run, a sweep, or an imported checkpoint) and `gatelab analyze-bench`.

use super::DeviceArgs;
use gatelab::{ExperimentError, Result};
use gatelab_analysis::run::{AnalyzeOptions, analyze_run};
use gatelab_data::DataConfig;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// A run folder, or a sweep folder holding run folders (or, with --hf, where to write).
    path: Option<PathBuf>,
    /// Analyse an imported Hugging Face Qwen3-format checkpoint directory instead of a run.
    #[arg(long, requires = "text")]
    hf: Option<PathBuf>,
    /// With --hf: the text to analyse on (a file, a directory of .txt, or JSONL).
    #[arg(long)]
    text: Option<PathBuf>,
    /// With --hf: the name of the variant in reports (default: the checkpoint folder's name).
    #[arg(long)]
    name: Option<String>,
    /// With --hf: tokens per window (after BOS).
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    #[command(flatten)]
    device: DeviceArgs,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// At most this many analysis sequences per run (`--sequences` is the same flag).
    #[arg(long, visible_alias = "sequences", default_value_t = 512)]
    max_sequences: usize,
    /// Skip the interventions on the first token's peak activation (three passes fewer).
    #[arg(long)]
    no_interventions: bool,
    /// Print each run's numbers as JSON (an array) instead of the table; analysis.json is written
    /// into each run folder either way.
    #[arg(long)]
    json: bool,
}

impl AnalyzeArgs {
    fn options(&self) -> AnalyzeOptions {
        AnalyzeOptions {
            batch_size: self.batch_size.max(1),
            max_sequences: self.max_sequences,
            interventions: !self.no_interventions,
            ..AnalyzeOptions::default()
        }
    }
}

pub fn analyze(args: AnalyzeArgs) -> Result<()> {
    if let Some(checkpoint) = &args.hf {
        return analyze_hf(&args, checkpoint);
    }
    let Some(path) = &args.path else {
        return Err(ExperimentError::Usage("analyze: give a run or sweep folder, or --hf DIR --text FILE".into()));
    };
    let done = super::finished_runs(path, "analyse")?;
    let device = args.device.open()?;
    if !args.json {
        println!(
            "{:<40} {:>6} {:>9} {:>7} {:>9} {:>9}  per-layer F-Attn",
            "run", "seqs", "F-Attn", "Sink", "max act", "gate mean"
        );
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for run in done {
        gatelab::interrupt::check("gatelab analyze")?;
        let a = match analyze_run(&run, &device, &args.options()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{}: not analysed: {}", run.name(), gatelab_rundir::one_line(&e));
                failures.push(run.name());
                continue;
            }
        };
        let s = &a.stats;
        if args.json {
            rows.push(serde_json::json!({
                "run": run.path,
                "sequences": s.sequences,
                "first_token_attention": s.first_token_attention(),
                "first_token_attention_per_layer": s.layers.iter().map(|l| l.first_token_attention[1]).collect::<Vec<_>>(),
                "chance_first_token_attention": s.chance_first_token_attention[1],
                "sink": s.sink(),
                "max_activation": s.max_activation(),
                "top1_median_per_layer": s.layers.iter().map(|l| l.top1_median_ratio).collect::<Vec<_>>(),
                "first_token_norm_ratio_per_layer": s.layers.iter().map(|l| l.first_token_norm_ratio).collect::<Vec<_>>(),
                "max_token_norm_ratio_per_layer": s.layers.iter().map(|l| l.max_token_norm_ratio).collect::<Vec<_>>(),
                "gate_mean": s.gate_mean(),
                "interventions": a.interventions,
            }));
            continue;
        }
        let per_layer: Vec<String> = s.layers.iter().map(|l| format!("{:.3}", l.first_token_attention[1])).collect();
        let gate = s.gate_mean().map(|g| format!("{g:.3}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<40} {:>6} {:>9.3} {:>7.3} {:>9.2} {gate:>9}  {}",
            run.name(),
            s.sequences,
            s.first_token_attention(),
            s.sink(),
            s.max_activation(),
            per_layer.join(" ")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    }
    if !failures.is_empty() {
        return Err(ExperimentError::file(
            path,
            format!("{} run(s) could not be analysed (see the lines above): {}", failures.len(), failures.join(", ")),
        ));
    }
    Ok(())
}

/// `gatelab analyze --hf DIR --text FILE [OUT]`: an imported checkpoint analysed into a folder the
/// report reads like a finished run (default `results/hf/<name>`).
fn analyze_hf(args: &AnalyzeArgs, checkpoint: &Path) -> Result<()> {
    use std::io::Write;
    let text = args.text.as_ref().expect("clap requires --text with --hf");
    let name = args.name.clone().unwrap_or_else(|| {
        checkpoint.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "imported".into())
    });
    let out = args.path.clone().unwrap_or_else(|| PathBuf::from("results/hf").join(&name));
    if args.seq_len < 2 {
        return Err(ExperimentError::option("--seq-len", "must be at least 2"));
    }
    let device = args.device.open()?;
    let started = std::time::Instant::now();
    let a = gatelab_analysis::imported::analyze_checkpoint(
        &gatelab_analysis::imported::Import { checkpoint, text, name: &name, seq_len: args.seq_len },
        &out,
        &device,
        &args.options(),
        |done, all| {
            let rate = (done * args.seq_len) as f64 / started.elapsed().as_secs_f64();
            let eta = started.elapsed().as_secs_f64() / done as f64 * (all - done) as f64;
            eprint!("\ranalysing {name}: {done}/{all} sequences, {rate:.0} tokens/s, ETA {eta:.0} s   ");
            let _ = std::io::stderr().flush();
        },
    )?;
    eprintln!();
    let s = &a.stats;
    let per_layer: Vec<String> = s.layers.iter().map(|l| format!("{:.3}", l.first_token_attention[1])).collect();
    println!(
        "{name}: {} sequences of {}: F-Attn {:.3} (chance {:.3}), Sink {:.3}, max act {:.1}, gate mean {}",
        s.sequences,
        s.seq_len,
        s.first_token_attention(),
        s.chance_first_token_attention[1],
        s.sink(),
        s.max_activation(),
        s.gate_mean().map_or("-".into(), |g| format!("{g:.3}"))
    );
    println!("per-layer F-Attn: {}", per_layer.join(" "));
    eprintln!(
        "wrote {} (gatelab report {} puts it beside other runs)",
        out.display(),
        out.parent().map_or(".".into(), |p| p.display().to_string())
    );
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
    #[command(flatten)]
    device: DeviceArgs,
}

/// `gatelab analyze-bench`: the cost of the analysis (probed forward + statistics) against a plain
/// forward over the same tokens, measured side by side, alternating, in one process.
pub fn analyze_bench(args: AnalyzeBenchArgs) -> Result<()> {
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::Dataset;
    use gatelab_analysis::stats::{Accumulator, StatsConfig};
    let config = gatelab::config::preset(&args.preset)?.resolve()?;
    let device = args.device.open()?;
    let data = DataConfig { synthetic_examples: [1, 1, 4096], ..config.data.clone() }.prepare()?;
    let batcher = gatelab_data::LmBatcher { pad: data.vocab.pad };
    let seq = config.data.seq_len;
    let batches = args.tokens.div_ceil(seq * args.batch_size);
    let inputs: Vec<_> = (0..batches.min(64))
        .map(|b| {
            let items = (0..args.batch_size)
                .map(|i| data.analysis.get((b * args.batch_size + i) % data.analysis.len()).expect("example"))
                .collect();
            batcher.batch(items, &device).inputs
        })
        .collect();
    let model = config.model.init(&device)?;
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
        "preset": args.preset, "backend": args.device.backend.name(), "tokens": tokens,
        "forward_seconds": forward_s, "analysis_seconds": analysis_s,
        "forward_tokens_per_s": tokens as f64 / forward_s, "analysis_tokens_per_s": tokens as f64 / analysis_s,
        "analysis_over_forward": analysis_s / forward_s,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    Ok(())
}
