//! Continued training at a longer length (the paper's §5: the RoPE base raised from 10k to 1M,
//! training continued at 32k): each finished run becomes the parent of a new run that starts
//! from its weights with a new sequence length, RoPE base and step budget. The new run is a run
//! like any other — its own folder, hash, resume, status — whose `config.json` names its parent
//! (`meta.parent`, and `train.init_from`, which is part of the hash).

use crate::backend::Backend;
use crate::config::RunConfig;
use crate::error::{ExperimentError, Result};
use crate::grid::{self, PlannedRun};
use crate::sweep::{self, Located, SweepRow};
use gatelab_rundir::{BaselineRun, RunDir, RunMeta, runs_under};
use std::path::{Path, PathBuf};

/// What `gatelab extend` was asked to do.
#[derive(Debug, Clone)]
pub struct ExtendOptions {
    /// A finished run folder, or a sweep folder of runs.
    pub path: PathBuf,
    /// The new sequence length.
    pub seq_len: usize,
    /// The new RoPE base (the parent's when absent).
    pub rope_theta: Option<f64>,
    /// Optimiser steps of the continuation.
    pub steps: usize,
    /// Peak learning rate (the parent's when absent).
    pub lr: Option<f64>,
    /// Further `key=value` overrides (one value each).
    pub overrides: Vec<String>,
    /// Results folder (default: the parent sweep's folder with `-ext<seq_len>` appended).
    pub out: Option<PathBuf>,
    /// Backend.
    pub backend: Backend,
    /// Device index.
    pub device_index: usize,
    /// Data parallel over these device indices (empty: `device_index` alone).
    pub devices: Vec<usize>,
}

/// The default results folder of runs continued from `path` (a run or a sweep folder): the
/// parent sweep's folder with `suffix` appended, beside it (`-ext<seq_len>`, `-retrofit`).
pub(crate) fn beside_parents(path: &Path, suffix: &str) -> PathBuf {
    let sweep = if path.join("config.json").is_file() { path.parent().unwrap_or(Path::new(".")) } else { path };
    let name = sweep.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "runs".into());
    sweep.with_file_name(format!("{name}{suffix}"))
}

/// Planned continuations: each new run with its metadata, and the results folder.
#[derive(Debug, Clone)]
pub struct ExtendPlan {
    /// The new runs.
    pub runs: Vec<(Located, RunMeta)>,
    /// Where they go.
    pub out: PathBuf,
}

/// Where planned runs train.
#[derive(Debug, Clone)]
pub struct Target {
    /// Backend.
    pub backend: Backend,
    /// Device index.
    pub device_index: usize,
    /// Data parallel over these device indices (empty: `device_index` alone).
    pub devices: Vec<usize>,
}

impl ExtendOptions {
    /// Where the continuations train.
    pub fn target(&self) -> Target {
        Target { backend: self.backend, device_index: self.device_index, devices: self.devices.clone() }
    }
}

/// Plans the continuations of every finished run under `opts.path`, checked before anything is
/// written.
pub fn plan(opts: &ExtendOptions) -> Result<ExtendPlan> {
    let parents: Vec<PathBuf> = runs_under(&opts.path)?.into_iter().filter(RunDir::is_done).map(|r| r.path).collect();
    if parents.is_empty() {
        return Err(ExperimentError::file(&opts.path, "no finished runs to continue"));
    }
    let out = opts.out.clone().unwrap_or_else(|| beside_parents(&opts.path, &format!("-ext{}", opts.seq_len)));
    let mut changes = vec![format!("data.seq_len={}", opts.seq_len)];
    if let Some(theta) = opts.rope_theta {
        changes.push(format!("model.rope_theta={theta}"));
    }
    if let Some(lr) = opts.lr {
        changes.push(format!("train.lr={lr}"));
    }
    changes.extend(opts.overrides.iter().cloned());
    plan_children(&parents, &changes, opts.steps, out, &format!("-ext{}", opts.seq_len), &opts.target())
}

/// Plans one child run of each parent folder: the parent's config with `train.steps=steps`, the
/// warmup scaled to that budget, then `changes` (`key=value`, one value each), started from the
/// parent's weights (`train.init_from`); in `out`, its grid named the parent's plus `suffix`.
pub(crate) fn plan_children(
    parents: &[PathBuf],
    changes: &[String],
    steps: usize,
    out: PathBuf,
    suffix: &str,
    target: &Target,
) -> Result<ExtendPlan> {
    let changes: Vec<String> = std::iter::once(format!("train.steps={steps}")).chain(changes.iter().cloned()).collect();
    let commit = sweep::git_commit();
    let mut planned = Vec::new();
    // Each parent's hash and its continuation's, to pair continuations as their parents were.
    let mut continued: Vec<(String, String)> = Vec::new();
    for parent in parents {
        let file = sweep::read_run_file(parent)?;
        let mut value = serde_json::to_value(&file.config).expect("configs serialise");
        // Warmup scaled to the shorter budget, unless overridden below.
        let warmup = file.config.train.warmup_steps.min(steps / 10);
        grid::apply(&mut value, "train.warmup_steps", warmup.into())?;
        for change in &changes {
            let (key, values) = grid::parse_override(change, false)?;
            grid::apply(&mut value, &key, values.into_iter().next().expect("one value"))?;
        }
        let mut config: RunConfig = serde_path_to_error::deserialize(value)
            .map_err(|e| ExperimentError::file(parent, format!("{}: {}", e.path(), e.inner())))?;
        config.train.init_from = Some(parent.clone());
        let config = config.resolve().map_err(|e| ExperimentError::file(parent, e))?;
        if !config.train.trainable.is_all() {
            crate::trainable::of_config(&config)?;
        }
        let hash = sweep::run_hash(&config, target.backend)?;
        let variant = file.meta.variant.clone();
        let dir = RunDir::new(out.join(format!("{variant}-{hash}")));
        let meta = RunMeta {
            grid: format!("{}{suffix}", file.meta.grid),
            overrides: file.meta.overrides.iter().chain(&changes).cloned().collect(),
            backend: target.backend.name().into(),
            device_index: target.device_index,
            devices: target.devices.clone(),
            git_commit: commit.clone(),
            hash: hash.clone(),
            parent: Some(parent.clone()),
            gatelab_version: env!("CARGO_PKG_VERSION").into(),
            trainable_params: sweep::trainable_params(&config),
            ..file.meta
        };
        let run = PlannedRun {
            variant,
            paper: meta.paper.clone(),
            overrides: changes.clone(),
            seed: meta.seed,
            config,
            also: meta.also.clone(),
            baseline: meta.baseline.as_ref().map(|b| b.variant.clone()),
        };
        continued.push((file.meta.hash.clone(), hash.clone()));
        planned.push((Located { run, dir, hash, baseline: None }, meta));
    }
    // A declared baseline (a paper row's own pairing) is the baseline parent's continuation, when
    // it is continued too; otherwise none.
    for (located, meta) in &mut planned {
        meta.baseline = meta.baseline.take().and_then(|b| {
            let hash = continued.iter().find(|(parent, _)| *parent == b.hash)?.1.clone();
            Some(BaselineRun { variant: b.variant, hash })
        });
        located.baseline = meta.baseline.clone();
    }
    Ok(ExtendPlan { runs: planned, out })
}

/// Continues every finished run under `opts.path`; returns the new runs' rows.
pub fn run(opts: &ExtendOptions) -> Result<Vec<SweepRow>> {
    run_plan(plan(opts)?, &opts.target())
}

/// Runs planned continuations; returns the new runs' rows.
pub fn run_plan(plan: ExtendPlan, target: &Target) -> Result<Vec<SweepRow>> {
    let (runs, metas): (Vec<Located>, Vec<RunMeta>) = plan.runs.into_iter().unzip();
    let meta_of = |l: &Located| metas[runs.iter().position(|r| r.dir.path == l.dir.path).expect("planned")].clone();
    sweep::execute(
        &runs,
        &plan.out,
        target.backend,
        &sweep::device_indices(target.device_index, &target.devices),
        meta_of,
        "extend.json",
    )
}
