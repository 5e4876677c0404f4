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
use gatelab_rundir::config::Precision;
use gatelab_rundir::{
    BaselineRun, Checkpoint, Resume, RunDir, RunFile, RunMeta, Status, folder, write_atomic, write_json,
};
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
    /// `--variants`: only these variants of the grid (empty: all).
    pub variants: Vec<String>,
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
    /// The run of its declared baseline ([`PlannedRun::baseline`]) of the same overrides and
    /// seed, by hash, whether or not this shard (or `--variants`) trains it.
    pub baseline: Option<BaselineRun>,
}

/// The hash naming a run's folder: its resolved config and backend and, for a corpus read from
/// disk, the corpus's contents ([`corpus_contents`]), so that an edited corpus is a new run, never
/// a finished one reused.
pub fn run_hash(config: &RunConfig, backend: Backend) -> Result<String> {
    let text = match corpus_contents(&config.data.corpus)? {
        None => serde_json::to_string(&(config, backend.name())),
        Some(contents) => serde_json::to_string(&(config, backend.name(), contents)),
    }
    .expect("configs serialise");
    Ok(format!("{:010x}", grid::fnv1a(text.as_bytes()) >> 24))
}

/// The SHA-256 of a local text corpus's documents (`None` for the built-in and generated ones),
/// read once per path and process. Reading it checks its contents too: an empty file, a binary
/// one or a folder without `.txt` files is refused here, before anything is written.
pub fn corpus_contents(corpus: &CorpusSpec) -> Result<Option<String>> {
    static SEEN: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
    let CorpusSpec::Text { path } = corpus else { return Ok(None) };
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, digest)) = seen.iter().find(|(p, _)| p == path) {
        return Ok(Some(digest.clone()));
    }
    let docs = corpus.documents()?;
    let digest = gatelab_rundir::FileDigest::of_bytes(docs.join("\u{0}").as_bytes()).sha256;
    seen.push((path.clone(), digest.clone()));
    Ok(Some(digest))
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
    let hashes: Vec<String> = runs.iter().map(|r| run_hash(&r.config, opts.backend)).collect::<Result<_>>()?;
    let baseline_of = |run: &PlannedRun| {
        let name = run.baseline.as_ref()?;
        let k = runs.iter().position(|b| b.answers_to(name) && b.overrides == run.overrides && b.seed == run.seed)?;
        Some(BaselineRun { variant: name.clone(), hash: hashes[k].clone() })
    };
    let out = opts.out.clone().unwrap_or_else(|| default_out(&grid.name));
    let located: Vec<Located> = runs
        .iter()
        .zip(&hashes)
        .map(|(run, hash)| Located {
            run: run.clone(),
            dir: RunDir::new(out.join(format!("{}-{hash}", run.variant))),
            hash: hash.clone(),
            baseline: baseline_of(run),
        })
        .collect();
    for name in &opts.variants {
        if !grid.variants.iter().any(|v| &v.name == name) {
            return Err(ExperimentError::option(
                format!("--variants {name}"),
                format!(
                    "grid {} has no such variant (variants: {})",
                    grid.name,
                    grid.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let located: Vec<Located> = if opts.variants.is_empty() {
        located
    } else {
        located.into_iter().filter(|l| opts.variants.iter().any(|v| l.run.answers_to(v))).collect()
    };
    let runs = match opts.shard {
        Some((i, n)) => grid::shard(located, i, n),
        None => located,
    };
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
    /// The command line's overrides of this run (`train.lr=3e-3`): what tells apart the runs of
    /// one variant that a comma list multiplied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Parameters that train, when not all do (`train.trainable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable_params: Option<usize>,
}

/// The table row of a run folder, from its own files: its `status.json` as it stands now, and its
/// final validation loss only when it is done (an unfinished or failed run's last validation
/// pass is not its result).
pub fn row(located: &Located) -> Result<SweepRow> {
    let status = located.dir.status().unwrap_or_else(|e| Status::Failed { reason: gatelab_rundir::one_line(&e) });
    let eval = if status.is_done() { located.dir.last_eval()? } else { None };
    Ok(SweepRow {
        variant: located.run.variant.clone(),
        seed: located.run.seed,
        dir: located.dir.path.clone(),
        status,
        valid_loss: eval.as_ref().map(|e| e.loss),
        perplexity: eval.map(|e| e.perplexity),
        overrides: located.run.overrides.clone(),
        trainable_params: trainable_params(&located.run.config),
    })
}

/// The parameters that train, when `train.trainable` freezes some (checked when planned).
pub fn trainable_params(config: &RunConfig) -> Option<usize> {
    let partial = !config.train.trainable.is_all();
    partial.then(|| crate::trainable::of_config(config).ok().map(|s| s.trainable_params)).flatten()
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
        baseline: located.baseline.clone(),
        backend: opts.backend.name().into(),
        device_index: opts.device_index,
        devices: opts.devices.clone(),
        git_commit: commit.into(),
        hash: located.hash.clone(),
        gatelab_version: env!("CARGO_PKG_VERSION").into(),
        trainable_params: trainable_params(&located.run.config),
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

/// A run's status, an unreadable `status.json` read as `pending` (the run is then resumed from
/// its checkpoint, or trained anew).
fn status_of(dir: &RunDir) -> Status {
    dir.status().unwrap_or(Status::Pending)
}

/// Whether a rerun leaves the run alone: it diverged, or it is done and its weights are there and
/// intact. A done run whose weights are missing or damaged is trained again.
fn is_settled(dir: &RunDir) -> bool {
    let status = status_of(dir);
    status.is_final() && (!status.is_done() || dir.weights().usable())
}

/// Steps left to train over `runs` (settled runs need none; interrupted ones resume).
fn steps_to_train(runs: &[Located]) -> Result<usize> {
    let mut total = 0;
    for l in runs {
        if !is_settled(&l.dir) {
            let from = if status_of(&l.dir).is_final() { 0 } else { l.dir.checkpoint()?.map_or(0, |c| c.step) };
            total += l.run.config.train.steps.saturating_sub(from);
        }
    }
    Ok(total)
}

/// Prepares a run's folder (whose lock the caller holds): writes `config.json` on first start (or
/// over an unreadable one), finds the checkpoint it resumes from (the newest intact one), marks it
/// running, prepares (or reuses) its data and saves the tokenizer beside it. Returns where it
/// resumes and its data, or why the data could not be prepared.
pub fn prepare_run<'a>(
    located: &Located,
    meta: RunMeta,
    cache: &'a mut HashMap<String, LmData>,
) -> Result<(Resume, std::result::Result<&'a LmData, gatelab_data::DataError>)> {
    let (run, dir) = (&located.run, &located.dir);
    std::fs::create_dir_all(&dir.path).map_err(|e| gatelab_rundir::RunDirError::io(&dir.path, e))?;
    if dir.read_file().is_err() {
        dir.write_file(&RunFile { meta, config: run.config.clone() })?;
    }
    let resume = dir.resume_point()?;
    dir.set_status(&Status::Running { step: resume.step() })?;
    let key = serde_json::to_string(&run.config.data).expect("data configs serialise");
    if !cache.contains_key(&key) {
        match run.config.data.prepare() {
            Ok(d) => {
                cache.insert(key.clone(), d);
            }
            Err(e) => return Ok((resume, Err(e))),
        }
    }
    let data = &cache[&key];
    if let Some(tok) = &data.tokenizer {
        let path = dir.file(folder::TOKENIZER);
        if !path.exists() {
            write_atomic(&path, tok.to_json()?.as_bytes())?;
        }
    }
    Ok((resume, Ok(data)))
}

/// Trains one run from `resume` (a checkpoint, or none: step 0), turning an error or a panic of
/// the backend into a failure.
pub fn train_run(
    run: &PlannedRun,
    data: &LmData,
    devices: &[Device],
    dir: &RunDir,
    resume: Option<&Checkpoint>,
    progress: impl FnMut(&Progress),
) -> Status {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train::run(&run.config.model, &run.config.train, data, devices, dir, resume, progress)
    }));
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => Status::Failed { reason: e.one_line() },
        Err(panic) => Status::Failed { reason: format!("panicked: {}", backend::panic_message(panic)) },
    }
}

/// Records how a run ended: a failed or interrupted run keeps its checkpoints (a rerun resumes from
/// them); a finished or diverged run drops them.
pub fn close_run(dir: &RunDir, status: &Status) -> Result<()> {
    match status {
        Status::Failed { .. } | Status::Interrupted { .. } => dir.set_status(status)?,
        _ => dir.finish(status)?,
    }
    Ok(())
}

/// Trains `runs` in turn, each under its folder's lock: a run another process holds is skipped
/// (saying who holds it), settled runs are skipped, interrupted ones resume from their newest
/// intact checkpoint, and done runs whose weights are missing or damaged are trained again.
/// Writes each folder's `config.json` with `meta` on first start, then `<out>/<table>`, built
/// afresh from every run's own `status.json`.
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
    if runs.iter().any(|l| l.run.config.train.precision == Precision::Bf16) {
        gatelab_model::precision::bf16_support(&devices[0]).map_err(|reason| ExperimentError::Backend {
            backend: backend.name().into(),
            message: format!("train.precision=bf16 is refused: {reason}"),
        })?;
    }
    std::fs::create_dir_all(out).map_err(|e| gatelab_rundir::RunDirError::io(out, e))?;
    let mut display = SweepProgress::new(runs.len(), steps_to_train(runs)?);
    let mut trained = 0;
    let mut data_cache: HashMap<String, LmData> = HashMap::new();
    let started = Instant::now();
    for (k, located) in runs.iter().enumerate() {
        let (run, dir) = (&located.run, &located.dir);
        let label = format!("[{}/{}] {} seed {}", k + 1, runs.len(), run.variant, run.seed);
        let _lock = match dir.try_lock("training")? {
            Ok(lock) => lock,
            Err(holder) => {
                display.line(&format!("{label}: held by {holder}, skipped ({})", dir.path.display()));
                continue;
            }
        };
        // Read under the lock: another process may have finished it a moment ago.
        let status = status_of(dir);
        if is_settled(dir) {
            display.line(&format!("{label}: {} already ({}), skipped", status.word(), dir.path.display()));
            continue;
        }
        if status.is_final() {
            let problem = dir.weights().problem().unwrap_or_default();
            display.line(&format!("{label}: done, but {problem}: training it again ({})", dir.path.display()));
            dir.forget_results()?;
        }
        let status = match prepare_run(located, meta(located), &mut data_cache)? {
            (_, Err(e)) => Status::Failed { reason: e.to_string() },
            (resume, Ok(data)) => {
                if let Some(note) = resume.note() {
                    display.line(&format!("{label}: {note}"));
                }
                let resume_from = resume.step();
                let resumed =
                    if resume_from > 0 { format!(" (resuming at step {resume_from})") } else { String::new() };
                display.line(&format!("{label}: {}{resumed}", dir.path.display()));
                display.start_run(k, &label, run.config.train.steps, resume_from);
                let status = train_run(run, data, &devices, dir, resume.checkpoint.as_ref(), |p| {
                    display.update(p, trained + p.step - resume_from)
                });
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
    }
    display.finish();
    let rows = runs.iter().map(row).collect::<Result<Vec<_>>>()?;
    write_json(&out.join(table), &rows)?;
    eprintln!(
        "{} runs in {}; results in {}",
        rows.len(),
        crate::progress::duration(started.elapsed().as_secs_f64()),
        out.display()
    );
    Ok(rows)
}

/// Per run, the overrides of `runs` whose values differ between them, joined (one that every run
/// shares says nothing about a row): what labels rows of one variant that a comma list multiplied.
pub fn differing_overrides(runs: &[&[String]]) -> Vec<String> {
    let differing = |o: &&String| runs.iter().any(|r| !r.contains(o));
    runs.iter().map(|r| r.iter().filter(differing).cloned().collect::<Vec<_>>().join(" ")).collect()
}

/// The final table.
pub fn print_table(rows: &[SweepRow]) {
    let fmt = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into());
    let settings = differing_overrides(&rows.iter().map(|r| r.overrides.as_slice()).collect::<Vec<_>>());
    let with = if settings.iter().any(|s| !s.is_empty()) { "  overrides" } else { "" };
    // The trained parameter count, when some run freezes part of its model.
    let partial = rows.iter().any(|r| r.trainable_params.is_some());
    let trained = |r: &SweepRow| match (partial, r.trainable_params) {
        (false, _) => String::new(),
        (true, Some(n)) => format!(" {n:>10}"),
        (true, None) => format!(" {:>10}", "all"),
    };
    let head = if partial { format!(" {:>10}", "trained") } else { String::new() };
    println!("{:<28} {:>4} {:<11} {:>10} {:>10}{head}{with}", "variant", "seed", "status", "val loss", "val ppl");
    for (r, s) in rows.iter().zip(&settings) {
        let line = format!(
            "{:<28} {:>4} {:<11} {:>10} {:>10}{}  {s}",
            r.variant,
            r.seed,
            r.status.word(),
            fmt(r.valid_loss, 4),
            fmt(r.perplexity, 2),
            trained(r)
        );
        println!("{}", line.trim_end());
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
    if !opts.variants.is_empty() {
        args.push(format!("--variants {}", opts.variants.join(",")));
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
