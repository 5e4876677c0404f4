//! `gatelab eval`: held-out perplexity of finished runs (their validation split, or a text file),
//! and the streaming probe.

use super::DeviceArgs;
use gatelab::{ExperimentError, Result};
use gatelab_analysis::eval::{EvalOptions, PERPLEXITY, eval_run};
use gatelab_rundir::write_json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A run folder, or a sweep folder holding run folders.
    path: PathBuf,
    /// Score this text (a file, a folder of .txt, or JSONL) with the run's tokenizer, in windows
    /// of --seq-len tokens after BOS, instead of the run's validation split.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Tokens per window of --text (default: the run's training length).
    #[arg(long)]
    seq_len: Option<usize>,
    /// At most this many windows.
    #[arg(long, default_value_t = 256)]
    sequences: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// The streaming probe: also score positions ≥ W under a sliding window of W keys, with the
    /// first token kept and with it evicted, against full attention.
    #[arg(long)]
    window: Option<usize>,
    /// Print JSON (one object per run) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// `gatelab eval PATH`: scores each finished run, prints the results and writes each run's
/// `perplexity.json` (which the report reads).
pub fn eval(args: EvalArgs) -> Result<()> {
    let options = EvalOptions {
        text: args.text.clone(),
        seq_len: args.seq_len,
        sequences: args.sequences.max(1),
        batch_size: args.batch_size.max(1),
        window: args.window,
    };
    if let Some(text) = &args.text
        && !text.exists()
    {
        return Err(ExperimentError::file(text, "no such file or directory"));
    }
    let runs = super::finished_runs(&args.path, "evaluate")?;
    let device = args.device.open()?;
    let mut results = Vec::new();
    for run in &runs {
        gatelab::interrupt::check("gatelab eval")?;
        let result = eval_run(run, &device, &options)?;
        write_json(&run.file(PERPLEXITY), &result)?;
        results.push(result);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results).expect("json"));
        return Ok(());
    }
    println!(
        "{:<40} {:>6} {:>8} {:>9}  streaming (W: full / first kept / first evicted, ratio)",
        "run", "seqs", "loss", "ppl"
    );
    for r in &results {
        let name = r.run.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let streaming = r.streaming.as_ref().map_or_else(String::new, |s| {
            format!("W {}: {:.3} / {:.3} / {:.3}, {:.3}", s.window, s.full, s.first_kept, s.first_evicted, s.ratio)
        });
        println!("{name:<40} {:>6} {:>8.4} {:>9.3}  {streaming}", r.sequences, r.loss, r.perplexity);
    }
    eprintln!("scored {} on {}; wrote {PERPLEXITY} in each run folder", results.len(), results[0].source);
    Ok(())
}
