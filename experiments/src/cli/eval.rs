//! `gatelab eval`: held-out perplexity of finished runs (their validation split, or a text file),
//! and the streaming probe.

use super::DeviceArgs;
use gatelab::{ExperimentError, Result};
use gatelab_analysis::eval::{EvalOptions, EvalResult, eval_run, result_file};
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
    /// At most this many windows (`--sequences` is the same flag).
    #[arg(long = "max-sequences", visible_alias = "sequences", default_value_t = 256)]
    sequences: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// The streaming probe: also score positions ≥ W under a sliding window of W keys, with the
    /// first token kept and with it evicted, against full attention. It needs W below a run's
    /// sequence length; runs it does not fit are scored without it and named.
    #[arg(long)]
    window: Option<usize>,
    /// Print JSON (one object per run) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// `gatelab eval PATH`: scores each finished run, prints the results and writes each run's
/// `perplexity.json` (which the report reads), or with `--text` a file of that text's own name
/// beside it.
pub fn eval(args: EvalArgs) -> Result<()> {
    if args.window == Some(0) {
        return Err(ExperimentError::Option {
            option: "--window 0".into(),
            message: "must be at least 1 (keys per query)".into(),
        });
    }
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
    let file = result_file(args.text.as_deref());
    // Each run's window length (its own, or --seq-len for a text); a probe window that fits none
    // of them is refused before anything is scored or written.
    let metas: Vec<gatelab_rundir::RunFile> = runs.iter().map(|r| Ok(r.read_file()?)).collect::<Result<_>>()?;
    let lengths: std::collections::BTreeSet<usize> = metas
        .iter()
        .map(
            |f| if args.text.is_some() { args.seq_len.unwrap_or(f.config.data.seq_len) } else { f.config.data.seq_len },
        )
        .collect();
    if let Some(w) = args.window
        && lengths.iter().all(|&t| gatelab_analysis::eval::window_problem(w, t).is_some())
    {
        let lengths: Vec<String> = lengths.iter().map(usize::to_string).collect();
        return Err(ExperimentError::Option {
            option: format!("--window {w}"),
            message: format!(
                "fits none of the {} runs (sequence length {}): the probe needs 1 ≤ W < T",
                runs.len(),
                lengths.join(" or ")
            ),
        });
    }
    let device = args.device.open()?;
    let mut results = Vec::new();
    for run in &runs {
        gatelab::interrupt::check("gatelab eval")?;
        let result = eval_run(run, &device, &options)?;
        if let Some(why) = &result.streaming_skipped {
            eprintln!("{}: no streaming probe: {why}", run.name());
        }
        write_json(&run.file(&file), &EvalResult { run: run.name().into(), ..result.clone() })?;
        results.push(result);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results).expect("json"));
        return Ok(());
    }
    // Each run by its variant, seed and the overrides that tell it from the others.
    let settings =
        gatelab::sweep::differing_overrides(&metas.iter().map(|m| m.meta.overrides.as_slice()).collect::<Vec<_>>());
    println!(
        "{:<40} {:>6} {:>8} {:>9}  streaming (W: full / first kept / first evicted, ratio)",
        "run", "seqs", "loss", "ppl"
    );
    for ((r, run_file), setting) in results.iter().zip(&metas).zip(&settings) {
        let meta = &run_file.meta;
        let name = format!("{} s{}{}{setting}", meta.variant, meta.seed, if setting.is_empty() { "" } else { " " });
        let streaming = r.streaming.as_ref().map_or_else(String::new, |s| {
            format!("W {}: {:.3} / {:.3} / {:.3}, {:.3}", s.window, s.full, s.first_kept, s.first_evicted, s.ratio)
        });
        println!("{name:<40} {:>6} {:>8.4} {:>9.3}  {streaming}", r.sequences, r.loss, r.perplexity);
    }
    eprintln!("scored {} on {}; wrote {file} in each run folder", results.len(), results[0].source);
    Ok(())
}
