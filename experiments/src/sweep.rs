//! A sweep: a grid expanded into runs, each trained in its own folder, resumable and shardable.
//!
//! [`plan`] resolves and checks every run before anything is written; [`execute`] trains the
//! planned runs in turn (skipping finished ones, resuming interrupted ones), each through
//! [`prepare_run`], [`train_run`] and [`close_run`].

use crate::backend::{self, Backend};
use crate::config::{RunConfig, preset};
use crate::error::{ExperimentError, Result};
use crate::grid::{self, Grid, PlannedRun};
use crate::progress::SweepProgress;
use crate::train::{self, Progress};
use burn::tensor::Device;
use gatelab_data::{CorpusSpec, LmData};
use gatelab_rundir::{RunDir, RunFile, RunMeta, Status, folder, write_atomic, write_json};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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

/// A planned sweep: every run resolved, checked and given its folder; nothing written yet.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The grid.
    pub grid: Grid,
    /// The runs (of this shard).
    pub runs: Vec<Located>,
    /// The results folder.
    pub out: PathBuf,
    /// The table written at the end (`sweep.json`, or one per shard).
    pub table: String,
}

/// Plans the sweep: every run resolved and checked (nothing is written) and given its folder.
pub fn plan(opts: &SweepOptions) -> Result<Plan> {
    let grid = grid::load(&opts.grid)?;
    let preset = preset(&opts.preset)?;
    let data = match &opts.data {
        Some(d) => Some(serde_json::to_value(CorpusSpec::parse(d)?).expect("corpus specs serialise")),
        None => None,
    };
    let runs = grid::plan(&grid, &preset, data.as_ref(), &opts.overrides, opts.seeds)?;
    let runs = match opts.shard {
        Some((i, n)) => grid::shard(runs, i, n),
        None => runs,
    };
    let out = opts.out.clone().unwrap_or_else(|| default_out(&grid.name));
    let runs = runs
        .into_iter()
        .map(|run| {
            let hash = run_hash(&run.config, opts.backend);
            let dir = RunDir::new(out.join(format!("{}-{hash}", run.variant)));
            Located { run, dir, hash }
        })
        .collect();
    let table = format!("sweep{}.json", opts.shard.map(|(i, n)| format!("-shard{i}of{n}")).unwrap_or_default());
    Ok(Plan { grid, runs, out, table })
}

/// `git rev-parse HEAD` of the working directory, with `+dirty` when it has uncommitted
/// changes, or "unknown".
pub fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{head}+dirty")
        }
        Some(head) => head,
        None => "unknown".into(),
    }
}

/// One line of the final table.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SweepRow {
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Folder.
    pub dir: PathBuf,
    /// Final status.
    pub status: Status,
    /// Last validation loss (the validation split; `gatelab report` has the analysis split's
    /// statistics).
    pub valid_loss: Option<f64>,
    /// Its perplexity.
    pub perplexity: Option<f64>,
}

/// The table row of a run folder, from its files.
pub fn row(located: &Located) -> Result<SweepRow> {
    let eval = located.dir.last_eval()?;
    Ok(SweepRow {
        variant: located.run.variant.clone(),
        seed: located.run.seed,
        dir: located.dir.path.clone(),
        status: located.dir.status()?,
        valid_loss: eval.as_ref().map(|e| e.loss),
        perplexity: eval.map(|e| e.perplexity),
    })
}

/// The metadata `config.json` records for a planned run.
pub fn meta(plan: &Plan, opts: &SweepOptions, located: &Located, commit: &str) -> RunMeta {
    RunMeta {
        grid: plan.grid.name.clone(),
        variant: located.run.variant.clone(),
        paper: located.run.paper.clone(),
        preset: opts.preset.clone(),
        overrides: located.run.overrides.clone(),
        seed: located.run.seed,
        also: located.run.also.clone(),
        backend: opts.backend.name().into(),
        device_index: opts.device_index,
        devices: opts.devices.clone(),
        git_commit: commit.into(),
        hash: located.hash.clone(),
        gatelab_version: env!("CARGO_PKG_VERSION").into(),
        ..RunMeta::default()
    }
}

/// Plans and runs the sweep; returns its rows.
pub fn run(opts: &SweepOptions) -> Result<Vec<SweepRow>> {
    run_plan(&plan(opts)?, opts)
}

/// Runs a planned sweep; returns its rows.
pub fn run_plan(plan: &Plan, opts: &SweepOptions) -> Result<Vec<SweepRow>> {
    let commit = git_commit();
    execute(
        &plan.runs,
        &plan.out,
        opts.backend,
        &device_indices(opts.device_index, &opts.devices),
        |l| meta(plan, opts, l, &commit),
        &plan.table,
    )
}

/// Steps left to train over `runs` (finished runs need none; interrupted ones resume).
fn steps_to_train(runs: &[Located]) -> Result<usize> {
    let mut total = 0;
    for l in runs {
        if !l.dir.status()?.is_final() {
            total += l.run.config.train.steps.saturating_sub(l.dir.checkpoint()?.map_or(0, |c| c.step));
        }
    }
    Ok(total)
}

/// Prepares a run's folder: creates it, writes `config.json` on first start, marks it running,
/// prepares (or reuses) its data and saves the tokenizer beside it. Returns the step it resumes
/// from and its data, or why the data could not be prepared.
pub fn prepare_run<'a>(
    located: &Located,
    meta: RunMeta,
    cache: &'a mut HashMap<String, LmData>,
) -> Result<(usize, std::result::Result<&'a LmData, gatelab_data::DataError>)> {
    let (run, dir) = (&located.run, &located.dir);
    std::fs::create_dir_all(&dir.path).map_err(|e| gatelab_rundir::RunDirError::io(&dir.path, e))?;
    if !dir.file(folder::CONFIG).exists() {
        dir.write_file(&RunFile { meta, config: run.config.clone() })?;
    }
    let resume_from = dir.checkpoint()?.map_or(0, |c| c.step);
    dir.set_status(&Status::Running { step: resume_from })?;
    let key = serde_json::to_string(&run.config.data).expect("data configs serialise");
    if !cache.contains_key(&key) {
        match run.config.data.prepare() {
            Ok(d) => {
                cache.insert(key.clone(), d);
            }
            Err(e) => return Ok((resume_from, Err(e))),
        }
    }
    let data = &cache[&key];
    if let Some(tok) = &data.tokenizer {
        let path = dir.file(folder::TOKENIZER);
        if !path.exists() {
            write_atomic(&path, tok.to_json()?.as_bytes())?;
        }
    }
    Ok((resume_from, Ok(data)))
}

/// Trains one run, turning an error or a panic of the backend into a failure.
pub fn train_run(
    run: &PlannedRun,
    data: &LmData,
    devices: &[Device],
    dir: &RunDir,
    progress: impl FnMut(&Progress),
) -> Status {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train::run(&run.config.model, &run.config.train, data, devices, dir, progress)
    }));
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => Status::Failed { reason: e.one_line() },
        Err(panic) => Status::Failed { reason: format!("panicked: {}", backend::panic_message(panic)) },
    }
}

/// Records how a run ended: a failed or interrupted run keeps its checkpoint (a rerun resumes from
/// it); a finished or diverged run drops it.
pub fn close_run(dir: &RunDir, status: &Status) -> Result<()> {
    match status {
        Status::Failed { .. } | Status::Interrupted { .. } => dir.set_status(status)?,
        _ => dir.finish(status)?,
    }
    Ok(())
}

/// Trains `runs` in turn (skipping finished ones, resuming interrupted ones), writing each
/// folder's `config.json` with `meta` on first start, then `<out>/<table>` and the final table.
pub fn execute(
    runs: &[Located],
    out: &Path,
    backend: Backend,
    device_indices: &[usize],
    meta: impl Fn(&Located) -> RunMeta,
    table: &str,
) -> Result<Vec<SweepRow>> {
    let devices = device_indices.iter().map(|&i| backend::open(backend, i)).collect::<Result<Vec<_>>>()?;
    if devices.is_empty() {
        return Err(ExperimentError::option("--devices", "no device to train on"));
    }
    std::fs::create_dir_all(out).map_err(|e| gatelab_rundir::RunDirError::io(out, e))?;
    let mut display = SweepProgress::new(runs.len(), steps_to_train(runs)?);
    let mut trained = 0;
    let mut data_cache: HashMap<String, LmData> = HashMap::new();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (k, located) in runs.iter().enumerate() {
        let (run, dir) = (&located.run, &located.dir);
        let label = format!("[{}/{}] {} seed {}", k + 1, runs.len(), run.variant, run.seed);
        let status = dir.status()?;
        if status.is_final() {
            display.line(&format!("{label}: {} already ({}), skipped", status.word(), dir.path.display()));
            rows.push(row(located)?);
            continue;
        }
        let status = match prepare_run(located, meta(located), &mut data_cache)? {
            (_, Err(e)) => Status::Failed { reason: e.to_string() },
            (resume_from, Ok(data)) => {
                let resumed =
                    if resume_from > 0 { format!(" (resuming at step {resume_from})") } else { String::new() };
                display.line(&format!("{label}: {}{resumed}", dir.path.display()));
                display.start_run(k, &label, run.config.train.steps, resume_from);
                let status = train_run(run, data, &devices, dir, |p| display.update(p, trained + p.step - resume_from));
                trained += run.config.train.steps.saturating_sub(resume_from);
                status
            }
        };
        close_run(dir, &status)?;
        if let Status::Interrupted { step } = status {
            display.finish();
            return Err(ExperimentError::Interrupted { run: dir.path.clone(), step });
        }
        if !status.is_done() {
            display.line(&format!("{label}: {}", status.describe()));
        }
        rows.push(row(located)?);
    }
    display.finish();
    write_json(&out.join(table), &rows)?;
    eprintln!(
        "{} runs in {}; results in {}",
        rows.len(),
        crate::progress::duration(started.elapsed().as_secs_f64()),
        out.display()
    );
    Ok(rows)
}

/// The final table.
pub fn print_table(rows: &[SweepRow]) {
    let fmt = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into());
    println!("{:<28} {:>4} {:<11} {:>10} {:>10}", "variant", "seed", "status", "val loss", "val ppl");
    for r in rows {
        println!(
            "{:<28} {:>4} {:<11} {:>10} {:>10}",
            r.variant,
            r.seed,
            r.status.word(),
            fmt(r.valid_loss, 4),
            fmt(r.perplexity, 2)
        );
    }
}

/// The checkout gatelab runs from: `$GATELAB_REPO` (set by `scripts/gatelab`), else the one this
/// binary was built from.
pub fn repository() -> PathBuf {
    std::env::var_os("GATELAB_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// A Slurm job-array script that runs the sweep in `n` shards sharing one results folder, with
/// `cpus` CPUs per task. Paths are absolute: the script runs from any folder.
pub fn sbatch(opts: &SweepOptions, n: usize, out: &Path, cpus: usize) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let absolute = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let out = absolute(out);
    let grid = if Path::new(&opts.grid).exists() {
        absolute(Path::new(&opts.grid)).display().to_string()
    } else {
        opts.grid.clone()
    };
    let mut args = vec![
        format!("sweep {grid}"),
        format!("--preset {}", opts.preset),
        format!("--backend {}", opts.backend.name()),
        format!("--out {}", out.display()),
    ];
    if let Some(d) = &opts.data {
        let d = if Path::new(d).exists() { absolute(Path::new(d)).display().to_string() } else { d.clone() };
        args.push(format!("--data {d}"));
    }
    if opts.seeds > 1 {
        args.push(format!("--seeds {}", opts.seeds));
    }
    if !opts.devices.is_empty() {
        args.push(format!("--devices {}", opts.devices.iter().map(usize::to_string).collect::<Vec<_>>().join(",")));
    }
    args.extend(opts.overrides.iter().map(|o| format!("'{o}'")));
    let repo = repository();
    let repo = repo.canonicalize().unwrap_or(repo);
    format!(
        "#!/bin/bash\n\
         #SBATCH --job-name=gatelab-{name}\n\
         #SBATCH --array=1-{n}\n\
         #SBATCH --cpus-per-task={cpus}\n\
         #SBATCH --output={out}/slurm-%A_%a.log\n\
         # Each array task runs one deterministic shard; shards share {out} and skip finished runs.\n\
         # After the array: {repo}/scripts/gatelab report {out}\n\
         set -euo pipefail\n\
         mkdir -p {out}\n\
         cd {cwd}\n\
         {repo}/scripts/gatelab {args} --no-report --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\"\n",
        name = Path::new(&opts.grid).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
        out = out.display(),
        repo = repo.display(),
        cwd = cwd.display(),
        args = args.join(" "),
    )
}

/// Reads a run folder's `config.json`.
pub fn read_run_file(dir: &Path) -> Result<RunFile> {
    Ok(RunDir::new(dir).read_file()?)
}
