//! A sweep: a grid expanded into runs, each trained in its own folder, resumable and shardable.

use crate::backend::{self, Backend};
use crate::config::RunConfig;
use crate::grid::{self, PlannedRun};
use crate::rundir::{RunDir, Status, read_json, write_json};
use crate::train::{self, DynamicsRecord, EvalRecord, Outcome, Progress};
use gatelab_data::{CorpusSpec, LmData};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `gatelab sweep` was asked to do.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// A built-in grid name or a grid file.
    pub grid: String,
    /// `tiny`, `small` or `paper`.
    pub preset: String,
    /// The backend.
    pub backend: Backend,
    /// Its device index.
    pub device_index: usize,
    /// Data parallel over these device indices (empty: `device_index` alone).
    pub devices: Vec<usize>,
    /// `--data`: replaces the corpus of every run.
    pub data: Option<String>,
    /// Results folder (default `results/<grid name>`).
    pub out: Option<PathBuf>,
    /// `--shard i/N`.
    pub shard: Option<(usize, usize)>,
    /// Seeds per run.
    pub seeds: usize,
    /// `key=value[,value…]` overrides.
    pub overrides: Vec<String>,
}

/// The devices to train on: `devices` (data parallel), or `device_index` alone when empty.
pub fn device_indices(device_index: usize, devices: &[usize]) -> Vec<usize> {
    if devices.is_empty() { vec![device_index] } else { devices.to_vec() }
}

/// What `config.json` records beside the config.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RunMeta {
    /// The grid's name.
    pub grid: String,
    /// The variant.
    pub variant: String,
    /// Its paper table and row.
    pub paper: String,
    /// The preset it started from.
    pub preset: String,
    /// The command line's overrides of this run.
    pub overrides: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// The backend and device.
    pub backend: String,
    /// The device index.
    pub device_index: usize,
    /// Data-parallel device indices, when more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<usize>,
    /// `git rev-parse HEAD` of the code, when known.
    pub git_commit: String,
    /// The hash in the folder name.
    pub hash: String,
    /// Continued training: the run folder it started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<PathBuf>,
}

/// `config.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RunFile {
    /// Where the run comes from.
    pub meta: RunMeta,
    /// The resolved config.
    pub config: RunConfig,
}

/// A planned run with its folder.
#[derive(Debug, Clone)]
pub struct Located {
    /// The plan.
    pub run: PlannedRun,
    /// Its folder.
    pub dir: RunDir,
    /// The config hash.
    pub hash: String,
}

/// The hash naming a run's folder: its resolved config and backend.
pub fn run_hash(config: &RunConfig, backend: Backend) -> String {
    let text = serde_json::to_string(&(config, backend.name())).expect("configs serialise");
    format!("{:010x}", grid::fnv1a(text.as_bytes()) >> 24)
}

/// The default results folder of a grid.
pub fn default_out(grid_name: &str) -> PathBuf {
    Path::new("results").join(grid_name)
}

/// Plans the sweep: every run resolved and checked (nothing is written) and given its folder.
pub fn plan(opts: &SweepOptions) -> Result<(grid::Grid, Vec<Located>, PathBuf), String> {
    let grid = grid::load(&opts.grid)?;
    let preset = RunConfig::preset(&opts.preset)?;
    let data = match &opts.data {
        Some(d) => Some(serde_json::to_value(CorpusSpec::parse(d).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?),
        None => None,
    };
    let runs = grid::plan(&grid, &preset, data.as_ref(), &opts.overrides, opts.seeds)?;
    let runs = match opts.shard {
        Some((i, n)) => grid::shard(runs, i, n),
        None => runs,
    };
    let out = opts.out.clone().unwrap_or_else(|| default_out(&grid.name));
    let located = runs
        .into_iter()
        .map(|run| {
            let hash = run_hash(&run.config, opts.backend);
            let dir = RunDir::new(out.join(format!("{}-{hash}", run.variant)));
            Located { run, dir, hash }
        })
        .collect();
    Ok((grid, located, out))
}

/// `git rev-parse HEAD`, or "unknown".
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// One line of the final table.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RunRow {
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Folder.
    pub dir: PathBuf,
    /// Final status.
    pub status: Status,
    /// Last validation loss.
    pub valid_loss: Option<f64>,
    /// Its perplexity.
    pub perplexity: Option<f64>,
    /// Mean first-token attention over layers, last dynamics record.
    pub first_token_attention: Option<f64>,
}

fn last_line<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    gatelab_analysis::run::read_jsonl(path).into_iter().rev().find_map(|v| serde_json::from_value(v).ok())
}

/// The table row of a run folder, from its files.
pub fn row(located: &Located) -> Result<RunRow, String> {
    let eval: Option<EvalRecord> = last_line(&located.dir.path.join("eval.jsonl"));
    let dynamics: Option<DynamicsRecord> = last_line(&located.dir.path.join("dynamics.jsonl"));
    Ok(RunRow {
        variant: located.run.variant.clone(),
        seed: located.run.seed,
        dir: located.dir.path.clone(),
        status: located.dir.status()?,
        valid_loss: eval.as_ref().map(|e| e.loss),
        perplexity: eval.map(|e| e.perplexity),
        first_token_attention: dynamics.map(|d| d.layers.iter().map(|l| l.first_token_attention).sum::<f64>() / d.layers.len().max(1) as f64),
    })
}


/// Runs the sweep; returns its rows.
pub fn run(opts: &SweepOptions) -> Result<Vec<RunRow>, String> {
    let (grid, runs, out) = plan(opts)?;
    let commit = git_commit();
    let meta = |located: &Located| RunMeta {
        grid: grid.name.clone(),
        variant: located.run.variant.clone(),
        paper: located.run.paper.clone(),
        preset: opts.preset.clone(),
        overrides: located.run.overrides.clone(),
        seed: located.run.seed,
        backend: opts.backend.name().into(),
        device_index: opts.device_index,
        devices: opts.devices.clone(),
        git_commit: commit.clone(),
        hash: located.hash.clone(),
        parent: None,
    };
    let table = format!("sweep{}.json", opts.shard.map(|(i, n)| format!("-shard{i}of{n}")).unwrap_or_default());
    execute(&runs, &out, opts.backend, &device_indices(opts.device_index, &opts.devices), meta, &table)
}

/// Trains `runs` in turn (skipping finished ones, resuming interrupted ones), writing each
/// folder's `config.json` with `meta` on first start, then `<out>/<table>` and the final table.
pub fn execute(runs: &[Located], out: &Path, backend: Backend, device_indices: &[usize], meta: impl Fn(&Located) -> RunMeta, table: &str) -> Result<Vec<RunRow>, String> {
    let devices = device_indices.iter().map(|&i| backend::open(backend, i)).collect::<Result<Vec<_>, _>>()?;
    if devices.is_empty() {
        return Err("no device to train on".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    // For the sweep-level progress: the steps this invocation has to train.
    let mut total_steps = 0;
    for l in runs {
        if !l.dir.status()?.is_final() {
            total_steps += l.run.config.train.steps.saturating_sub(l.dir.checkpoint()?.map_or(0, |c| c.step));
        }
    }
    let steps_trained = std::cell::Cell::new(0usize);
    let training_started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut data_cache: HashMap<String, LmData> = HashMap::new();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (k, located) in runs.iter().enumerate() {
        let (run, dir) = (&located.run, &located.dir);
        let label = format!("[{}/{}] {} seed {}", k + 1, runs.len(), run.variant, run.seed);
        let status = dir.status()?;
        if status.is_final() {
            eprintln!("{label}: {} already ({}), skipped", status.word(), dir.path.display());
            rows.push(row(located)?);
            continue;
        }
        std::fs::create_dir_all(&dir.path).map_err(|e| format!("{}: {e}", dir.path.display()))?;
        let config_path = dir.path.join("config.json");
        if !config_path.exists() {
            write_json(&config_path, &RunFile { meta: meta(located), config: run.config.clone() })?;
        }
        let resume_from = dir.checkpoint()?.map_or(0, |c| c.step);
        dir.set_status(&Status::Running { step: resume_from })?;
        let key = serde_json::to_string(&run.config.data).expect("data configs serialise");
        if !data_cache.contains_key(&key) {
            let data = run.config.data.prepare().map_err(|e| e.to_string());
            match data {
                Ok(d) => {
                    data_cache.insert(key.clone(), d);
                }
                Err(reason) => {
                    dir.set_status(&Status::Failed { reason: reason.clone() })?;
                    eprintln!("{label}: failed: {reason}");
                    rows.push(row(located)?);
                    continue;
                }
            }
        }
        let data = &data_cache[&key];
        if let Some(tok) = &data.tokenizer {
            let path = dir.path.join("tokenizer.json");
            if !path.exists() {
                tok.save(&path).map_err(|e| e.to_string())?;
            }
        }
        let resumed = if resume_from > 0 { format!(" (resuming at step {resume_from})") } else { String::new() };
        eprintln!("{label}: {}{resumed}", dir.path.display());
        let run_started = Instant::now();
        let mut next_report = 0.25;
        let show = |p: &Progress| {
            let done = p.step as f64 / p.steps as f64;
            let eta = run_started.elapsed().as_secs_f64() / (p.step - resume_from).max(1) as f64 * (p.steps - p.step) as f64;
            // The sweep's pace: steps trained in this invocation against the steps left in it.
            let trained = steps_trained.get() + (p.step - resume_from);
            let sweep_eta = training_started.elapsed().as_secs_f64() / trained.max(1) as f64 * total_steps.saturating_sub(trained) as f64;
            let run_part = format!("step {:>6}/{}  loss {:.4}  {:>8.0} tok/s  ETA {}", p.step, p.steps, p.loss, p.tokens_per_s, duration(eta));
            let sweep_part = format!("sweep {}/{} runs, ETA {}", k + 1, runs.len(), duration(sweep_eta));
            if tty {
                eprint!("\r  {} {run_part} │ {} {sweep_part}\x1b[K", bar(done, 16), bar(trained as f64 / total_steps.max(1) as f64, 10));
                let _ = std::io::stderr().flush();
            } else if done >= next_report {
                eprintln!("  {run_part} | {sweep_part}");
                next_report += 0.25;
            }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train::run(&run.config.model, &run.config.train, data, &devices, dir, show)));
        steps_trained.set(steps_trained.get() + run.config.train.steps.saturating_sub(resume_from));
        if tty {
            eprintln!();
        }
        let status = match outcome {
            Ok(Ok(Outcome::Done)) => Status::Done,
            Ok(Ok(Outcome::Diverged { step, loss })) => Status::Diverged { step, loss },
            Ok(Err(reason)) => Status::Failed { reason },
            Err(panic) => Status::Failed { reason: format!("panicked: {}", backend::panic_message(panic)) },
        };
        match &status {
            Status::Failed { .. } => dir.set_status(&status)?,
            _ => dir.finish(&status)?,
        }
        if !matches!(status, Status::Done) {
            eprintln!("  {}: {}", status.word(), serde_json::to_string(&status).unwrap());
        }
        rows.push(row(located)?);
    }
    write_json(&out.join(table), &rows)?;
    print_table(&rows);
    eprintln!("{} runs in {:.1} min; results in {}", rows.len(), started.elapsed().as_secs_f64() / 60.0, out.display());
    Ok(rows)
}

/// A progress bar of `width` cells, `frac` of them filled.
fn bar(frac: f64, width: usize) -> String {
    let filled = ((frac.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// Seconds as `42 s`, `3.5 min` or `1.2 h`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.1} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// The final table.
pub fn print_table(rows: &[RunRow]) {
    let fmt = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into());
    println!("{:<28} {:>4} {:<9} {:>10} {:>10} {:>8}", "variant", "seed", "status", "val loss", "val ppl", "F-Attn");
    for r in rows {
        println!("{:<28} {:>4} {:<9} {:>10} {:>10} {:>8}", r.variant, r.seed, r.status.word(), fmt(r.valid_loss, 4), fmt(r.perplexity, 2), fmt(r.first_token_attention, 3));
    }
}

/// A Slurm job-array script that runs the sweep in `n` shards sharing one results folder.
pub fn sbatch(opts: &SweepOptions, n: usize, out: &Path) -> String {
    let mut args = vec![format!("sweep {}", opts.grid), format!("--preset {}", opts.preset), format!("--backend {}", opts.backend.name()), format!("--out {}", out.display())];
    if let Some(d) = &opts.data {
        args.push(format!("--data {d}"));
    }
    if opts.seeds > 1 {
        args.push(format!("--seeds {}", opts.seeds));
    }
    if !opts.devices.is_empty() {
        args.push(format!("--devices {}", opts.devices.iter().map(usize::to_string).collect::<Vec<_>>().join(",")));
    }
    args.extend(opts.overrides.iter().map(|o| format!("'{o}'")));
    let repo = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|_| ".".into());
    format!(
        "#!/bin/bash\n\
         #SBATCH --job-name=gatelab-{grid}\n\
         #SBATCH --array=1-{n}\n\
         #SBATCH --cpus-per-task=2\n\
         #SBATCH --output={out}/slurm-%A_%a.log\n\
         # Each array task runs one deterministic shard; shards share {out} and skip finished runs.\n\
         set -euo pipefail\n\
         cd {repo}\n\
         scripts/gatelab {args} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\"\n",
        grid = opts.grid,
        out = out.display(),
        args = args.join(" "),
    )
}

/// Reads a run folder's `config.json`.
pub fn read_run_file(dir: &Path) -> Result<RunFile, String> {
    read_json(&dir.join("config.json"))
}
