//! `gatelab eval-length`: perplexity, first-token attention and needle retrieval beyond the
//! training length, per RoPE scaling method.

use super::DeviceArgs;
use gatelab::{ExperimentError, Result};
use gatelab_rundir::RunDir;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalLengthArgs {
    /// A run folder, or a sweep folder holding run folders.
    path: PathBuf,
    /// Evaluation lengths as multiples of the training length T.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    factors: Vec<usize>,
    /// Evaluation lengths in tokens instead of --factors: each run at those that are multiples of
    /// its own T, so runs trained at different lengths are compared at the same lengths.
    #[arg(long, value_delimiter = ',', conflicts_with = "factors")]
    lengths: Vec<usize>,
    /// RoPE scaling methods: none, linear, ntk, yarn.
    #[arg(long, value_delimiter = ',', default_value = "none,linear,ntk,yarn")]
    methods: Vec<String>,
    /// RoPE base at evaluation (default: the run's).
    #[arg(long)]
    rope_theta: Option<f64>,
    /// At most this many held-out sequences per length for perplexity (`--sequences` is the same
    /// flag).
    #[arg(long = "max-sequences", visible_alias = "sequences", default_value_t = 64)]
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
    /// Seed of the needles (not a training seed: `--seeds` of sweep names those).
    #[arg(long, alias = "seed", default_value_t = 0)]
    needle_seed: u64,
    /// Needles of uniformly random tokens instead of spans of held-out text.
    #[arg(long)]
    random_needles: bool,
    /// Sequences per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print each run's length.json as JSON (an array) instead of length_summary.md; the files are
    /// written either way.
    #[arg(long)]
    json: bool,
}

/// `gatelab eval-length <run|sweep>`: perplexity, first-token attention and needle retrieval at
/// multiples of the training length under each RoPE scaling method, beside each run; for a sweep,
/// its charts and `length_summary.md`.
pub fn eval_length(args: EvalLengthArgs) -> Result<()> {
    use gatelab_analysis::length::{self, LengthOptions, ScalingMethod};
    use gatelab_data::retrieval::NeedleConfig;
    let methods = args.methods.iter().map(|m| ScalingMethod::parse(m)).collect::<Result<Vec<_>, _>>()?;
    if args.factors.is_empty() || args.factors.contains(&0) {
        return Err(ExperimentError::option("--factors", "each factor must be at least 1"));
    }
    if args.lengths.contains(&0) {
        return Err(ExperimentError::option("--lengths", "each length must be at least 1 token"));
    }
    if let Some(theta) = args.rope_theta
        && !(theta > 1.0 && theta.is_finite())
    {
        return Err(ExperimentError::option("--rope-theta", format!("must be a number above 1, got {theta}")));
    }
    let needle = NeedleConfig {
        depths: args.depths,
        samples: args.needle_samples,
        seed: args.needle_seed,
        from_text: !args.random_needles,
        ..NeedleConfig::default()
    };
    needle.validate(usize::MAX).map_err(|e| {
        ExperimentError::option(
            match e.field.unwrap_or_default().strip_prefix("needle.").unwrap_or_default() {
                // The one needle setting whose flag has no `needle-` in front.
                "depths" => "--depths".to_string(),
                other => format!("--needle-{}", other.replace('_', "-")),
            },
            e.message,
        )
    })?;
    let options = LengthOptions {
        factors: args.factors,
        lengths: args.lengths,
        methods,
        rope_theta: args.rope_theta,
        sequences: args.sequences.max(1),
        sink_sequences: args.sink_sequences.max(1),
        batch_size: args.batch_size.max(1),
        needle,
        ..LengthOptions::default()
    };
    let runs = super::finished_runs(&args.path, "evaluate")?;
    if !options.lengths.is_empty() {
        fit_lengths(&runs, &options)?;
    }
    let device = args.device.open()?;
    let mut evaluated = Vec::new();
    for run in &runs {
        gatelab::interrupt::check("gatelab eval-length")?;
        let result = length::eval_length(run, &device, &options, |line| eprintln!("  {line}"))?;
        eprintln!("wrote {}/length.json, length.csv, retrieval.csv", run.path.display());
        evaluated.push(serde_json::json!({ "run": run.path, "length": result }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluated).expect("json"));
    }
    if !RunDir::is_run(&args.path) {
        let summary = gatelab_analysis::summary::summarize(&args.path)?;
        let section = gatelab_analysis::report::length::write(&args.path, &args.path, &summary)?;
        let md = args.path.join("length_summary.md");
        if !args.json {
            print!("{}", std::fs::read_to_string(&md).map_err(|e| ExperimentError::file(&md, e))?);
        }
        eprintln!(
            "wrote {0}/length_summary.md, length_summary.csv and {1} figures (SVG, PNG, CSV); `gatelab report {0}` puts them in report.html",
            args.path.display(),
            section.map_or(0, |s| s.charts.len())
        );
    }
    Ok(())
}

/// Checks `--lengths` against every run before anything is written: a run that none of them fits
/// (none a multiple of its T) and a length that fits no run are refused; a run that some do not
/// fit is named and evaluated at the others.
fn fit_lengths(runs: &[RunDir], options: &gatelab_analysis::length::LengthOptions) -> Result<()> {
    let mut fits = Vec::new();
    for run in runs {
        let t = run.read_file()?.config.data.seq_len;
        fits.push((run, t, options.factors_for(t).iter().map(|k| k * t).collect::<Vec<usize>>()));
    }
    if let Some(l) = options.lengths.iter().find(|l| !fits.iter().any(|(_, _, f)| f.contains(*l))) {
        return Err(ExperimentError::option("--lengths", format!("{l} is a multiple of no run's training length")));
    }
    for (run, t, fit) in &fits {
        if fit.is_empty() {
            return Err(ExperimentError::option(
                "--lengths",
                format!("{}: trained at T = {t}, and none of the lengths is a multiple of it", run.name()),
            ));
        }
        let left: Vec<String> = options.lengths.iter().filter(|l| !fit.contains(l)).map(usize::to_string).collect();
        if !left.is_empty() {
            eprintln!("{}: trained at T = {t}; not evaluated at {} (not a multiple of T)", run.name(), left.join(", "));
        }
    }
    Ok(())
}
