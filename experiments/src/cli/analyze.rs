//! `gatelab analyze <run|sweep>`.

use gatelab::backend::{self, Backend};
use gatelab_analysis::report;
use gatelab_analysis::run::{AnalyzeOptions, analyze_run, is_done, runs_under};
use gatelab_data::DataConfig;
use std::path::PathBuf;

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
    if let Some(checkpoint) = &args.hf {
        return analyze_hf(&args, checkpoint);
    }
    let Some(path) = &args.path else { return Err("analyze: give a run or sweep folder, or --hf DIR --text FILE".into()) };
    let runs = runs_under(path)?;
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

/// `gatelab analyze --hf DIR --text FILE [OUT]`: an imported checkpoint analysed into a folder the
/// report reads like a finished run (default `results/hf/<name>`).
fn analyze_hf(args: &AnalyzeArgs, checkpoint: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let text = args.text.as_ref().expect("clap requires --text with --hf");
    let name = args.name.clone().unwrap_or_else(|| checkpoint.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "imported".into()));
    let out = args.path.clone().unwrap_or_else(|| PathBuf::from("results/hf").join(&name));
    if args.seq_len < 2 {
        return Err("--seq-len: must be at least 2".into());
    }
    let device = backend::open(args.backend, args.device_index)?;
    let options = AnalyzeOptions { batch_size: args.batch_size.max(1), max_sequences: args.max_sequences, ..AnalyzeOptions::default() };
    let started = std::time::Instant::now();
    let a = gatelab_analysis::imported::analyze_checkpoint(checkpoint, text, &out, &name, args.seq_len, &device, &options, |done, all| {
        let rate = (done * args.seq_len) as f64 / started.elapsed().as_secs_f64();
        let eta = started.elapsed().as_secs_f64() / done as f64 * (all - done) as f64;
        eprint!("\ranalysing {name}: {done}/{all} sequences, {rate:.0} tokens/s, ETA {eta:.0} s   ");
        let _ = std::io::stderr().flush();
    })?;
    eprintln!();
    let s = &a.stats;
    let per_layer: Vec<String> = s.layers.iter().map(|l| format!("{:.3}", l.first_token_attention[1])).collect();
    println!("{name}: {} sequences of {}: F-Attn {:.3} (chance {:.3}), Sink {:.3}, M-Act {:.1}, gate mean {}", s.sequences, s.seq_len, s.first_token_attention(), s.chance_first_token_attention[1], s.sink(), s.max_activation(), s.gate_mean().map_or("-".into(), |g| format!("{g:.3}")));
    println!("per-layer F-Attn: {}", per_layer.join(" "));
    eprintln!("wrote {} (gatelab report {} puts it beside other runs)", out.display(), out.parent().map_or(".".into(), |p| p.display().to_string()));
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A finished run folder (baseline, G1 headwise or G1 elementwise).
    run: PathBuf,
    /// The checkpoint directory to write (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    out: PathBuf,
}

/// `gatelab export RUN --out DIR`: a run as a Hugging Face Qwen3 checkpoint (gated runs in the
/// paper's released layout).
pub fn export(args: ExportArgs) -> Result<(), String> {
    if !is_done(&args.run) {
        return Err(format!("{}: not a finished run (status.json is not done)", args.run.display()));
    }
    let info = gatelab_analysis::run::read_run(&args.run)?;
    gatelab_model::hf::export_layout(&info.model)?;
    let device = burn::tensor::Device::flex();
    let model = gatelab_analysis::run::load_model(&args.run, &info.model, &device)?;
    let tokenizer = args.run.join("tokenizer.json");
    let ids = if tokenizer.is_file() {
        let t = gatelab_data::Tokenizer::load(&tokenizer).map_err(|e| e.to_string())?;
        Some((tokenizer.as_path(), [t.bos, t.eos, t.pad]))
    } else {
        None
    };
    gatelab_model::hf::export(&model, &info.model, &args.out, ids)?;
    eprintln!("wrote {} ({})", args.out.display(), if ids.is_some() { "config.json, model.safetensors, tokenizer.json" } else { "config.json, model.safetensors; the run's data has no tokenizer.json" });
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

#[derive(clap::Args, Debug)]
pub struct EvalLengthArgs {
    /// A run folder, or a sweep folder holding run folders.
    path: PathBuf,
    /// Evaluation lengths as multiples of the training length T.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    factors: Vec<usize>,
    /// RoPE scaling methods: none, linear, ntk, yarn.
    #[arg(long, value_delimiter = ',', default_value = "none,linear,ntk,yarn")]
    methods: Vec<String>,
    /// RoPE base at evaluation (default: the run's).
    #[arg(long)]
    rope_theta: Option<f64>,
    /// Held-out sequences per length for perplexity.
    #[arg(long, default_value_t = 64)]
    sequences: usize,
    /// Held-out sequences per length for first-token attention.
    #[arg(long, default_value_t = 16)]
    sink_sequences: usize,
    /// Needle probes per (length, depth).
    #[arg(long, default_value_t = 16)]
    needle_samples: usize,
    /// Needle depths in [0, 1].
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    depths: Vec<f64>,
    /// Seed of the needles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Needles of uniformly random tokens instead of spans of held-out text.
    #[arg(long)]
    random_needles: bool,
    /// Sequences per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Device index.
    #[arg(long, default_value_t = 0)]
    device_index: usize,
}

/// `gatelab eval-length <run|sweep>`: perplexity, first-token attention and needle retrieval at
/// multiples of the training length under each RoPE scaling method, beside each run; for a sweep,
/// its charts and `length_summary.md`.
pub fn eval_length(args: EvalLengthArgs) -> Result<(), String> {
    use gatelab_analysis::length::{self, LengthOptions, ScalingMethod};
    use gatelab_data::retrieval::NeedleConfig;
    let methods = args.methods.iter().map(|m| ScalingMethod::parse(m).map_err(|e| format!("--methods: {e}"))).collect::<Result<Vec<_>, _>>()?;
    if args.factors.is_empty() || args.factors.contains(&0) {
        return Err("--factors: each factor must be at least 1".into());
    }
    if let Some(theta) = args.rope_theta {
        if !(theta > 1.0 && theta.is_finite()) {
            return Err(format!("--rope-theta: must be a number above 1, got {theta}"));
        }
    }
    let needle = NeedleConfig { depths: args.depths, samples: args.needle_samples, seed: args.seed, from_text: !args.random_needles, ..NeedleConfig::default() };
    needle.validate(usize::MAX).map_err(|e| format!("--{}", e.replace("needle.", "needle-")))?;
    let options = LengthOptions {
        factors: args.factors,
        methods,
        rope_theta: args.rope_theta,
        sequences: args.sequences.max(1),
        sink_sequences: args.sink_sequences.max(1),
        batch_size: args.batch_size.max(1),
        needle,
        ..LengthOptions::default()
    };
    let runs = runs_under(&args.path)?;
    let device = backend::open(args.backend, args.device_index)?;
    for dir in &runs {
        if !is_done(dir) {
            eprintln!("{}: not finished, skipped", dir.display());
            continue;
        }
        length::eval_length(dir, &device, &options, |line| eprintln!("  {line}"))?;
        eprintln!("wrote {}/length.json, length.csv, retrieval.csv", dir.display());
    }
    if !args.path.join("config.json").is_file() {
        let charts = length::write_report(&args.path, &length::read_evals(&args.path))?;
        print!("{}", std::fs::read_to_string(args.path.join("length_summary.md")).map_err(|e| e.to_string())?);
        eprintln!("wrote {0}/length_summary.md, length_summary.csv and {1} charts (SVG, PNG, CSV); `gatelab report {0}` puts them in report.html", args.path.display(), charts.len());
    }
    Ok(())
}
