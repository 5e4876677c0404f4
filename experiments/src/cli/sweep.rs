//! `gatelab sweep`, `gatelab extend` and `gatelab grid`.

use super::TrainDeviceArgs;
use gatelab::config::{PRESETS, preset};
use gatelab::grid;
use gatelab::sweep::{self, SweepOptions};
use gatelab::{ExperimentError, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// A built-in grid (core, paper, ladder, stability, stability-deep, activations, cures, recall, gates; `gatelab grid list`) or a grid JSON file.
    grid: String,
    /// key=value overrides of the resolved config, e.g. train.lr=4e-3,8e-3 (commas multiply runs).
    overrides: Vec<String>,
    /// Scale: tiny (seconds per run, tests), small (the CPU default), paper (the 1.7B dense shape).
    #[arg(long, default_value = "small")]
    preset: String,
    #[command(flatten)]
    device: TrainDeviceArgs,
    /// Replace every run's corpus: bigram-backcopy, zipf-markov, mqar[:vocab=V,pairs=P,queries=Q], tinyshakespeare, a path, hf:NAME.
    #[arg(long)]
    data: Option<String>,
    /// Results folder (default results/<grid name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only shard i of N (1-based), for job arrays sharing one results folder.
    #[arg(long)]
    shard: Option<String>,
    /// Only these variants of the grid, e.g. --variants baseline,g1-elementwise (a run that
    /// stands for several names is kept if any is asked for).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Seeds per run (at least 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    seeds: u32,
    /// Print a Slurm job-array script for N shards and exit.
    #[arg(long)]
    sbatch: Option<usize>,
    /// With --sbatch: CPUs per array task.
    #[arg(long, default_value_t = 2)]
    cpus_per_task: usize,
    /// Do not analyse the runs and write the report at the end (a shard never does).
    #[arg(long)]
    no_report: bool,
    /// Print the runs (and the report's summary) as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn sweep(args: SweepArgs) -> Result<()> {
    let opts = SweepOptions {
        grid: args.grid,
        preset: args.preset,
        backend: args.device.device.backend,
        device_index: args.device.device.device_index,
        devices: args.device.devices,
        data: args.data,
        out: args.out,
        shard: args.shard.as_deref().map(grid::parse_shard).transpose()?,
        seeds: args.seeds as usize,
        overrides: args.overrides,
        variants: args.variants,
    };
    // Every run is planned and checked before anything is written or trained.
    let plan = sweep::plan(&opts)?;
    if let Some(n) = args.sbatch {
        if n == 0 || args.cpus_per_task == 0 {
            return Err(ExperimentError::option("--sbatch, --cpus-per-task", "need at least 1"));
        }
        print!("{}", sweep::sbatch(&opts, n, &plan.out, args.cpus_per_task));
        return Ok(());
    }
    let n_devices = sweep::device_indices(opts.device_index, &opts.devices).len();
    let engine = gatelab::collective::Engine::for_backend(opts.backend, n_devices);
    eprintln!(
        "sweep {}: {} runs at preset {} on {}{}",
        plan.grid.name,
        plan.runs.len(),
        opts.preset,
        opts.backend.name(),
        if n_devices > 1 { format!(", {}", engine.describe(n_devices)) } else { String::new() }
    );
    let mut said = std::collections::BTreeSet::new();
    for l in plan.runs.iter().filter(|l| !l.run.also.is_empty()) {
        if said.insert(&l.run.variant) {
            eprintln!(
                "  {} is the same configuration as {}: trained once, reported under every name",
                l.run.also.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                l.run.variant
            );
        }
    }
    let rows = sweep::run_plan(&plan, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": rows })).expect("json"));
    } else {
        sweep::print_table(&rows);
    }
    if !args.no_report && opts.shard.is_none() && rows.iter().any(|r| r.status.is_done()) {
        super::report::report(super::report::ReportArgs {
            sweep: plan.out.clone(),
            device: args.device.device.clone(),
            json: args.json,
            out: None,
        })?;
    }
    none_failed(&rows)
}

pub fn list(grid_name: Option<&str>, json: bool) -> Result<()> {
    match grid_name {
        None => {
            let grids = grid::BUILTIN.iter().map(|(n, _)| grid::load(n)).collect::<Result<Vec<_>>>()?;
            if json {
                let v: Vec<_> = grids.iter().map(|g| serde_json::json!({"name": g.name, "variants": g.variants.len(), "description": g.description})).collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                let width = grids.iter().map(|g| g.name.len()).max().unwrap_or(0);
                for g in grids {
                    println!("{:<width$} {:>3} variants  {}", g.name, g.variants.len(), g.description);
                }
                println!("presets:");
                for (name, what) in PRESETS {
                    println!("  {name:<8} {what}");
                }
            }
        }
        Some(name) => {
            let g = grid::load(name)?;
            // Variants that resolve (at the CPU default preset) to the configuration of an earlier one.
            let mut same_as = std::collections::BTreeMap::new();
            for run in grid::plan(&g, &preset("small")?, None, &[], 1)? {
                for other in &run.also {
                    same_as.insert(other.variant.clone(), run.variant.clone());
                }
            }
            if json {
                let v: Vec<_> = g
                    .variants
                    .iter()
                    .map(|v| {
                        let mut row =
                            serde_json::json!({"name": v.name, "paper": v.paper, "note": v.note, "set": v.set});
                        if let Some(first) = same_as.get(&v.name) {
                            row["same_as"] = first.clone().into();
                        }
                        row
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                for v in &g.variants {
                    let same = same_as.get(&v.name).map(|f| format!("[= {f}: trained once] ")).unwrap_or_default();
                    println!("{:<32} {:<22} {same}{}", v.name, v.paper, v.note);
                }
            }
        }
    }
    Ok(())
}

pub fn show(grid_name: &str, variant: &str, preset_name: &str, json: bool) -> Result<()> {
    let g = grid::load(grid_name)?;
    let v = g.variants.iter().find(|v| v.name == variant).ok_or_else(|| ExperimentError::Grid {
        source_name: format!("grid {}", g.name),
        message: format!(
            "no variant {variant} (variants: {})",
            g.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })?;
    let one = grid::Grid { variants: vec![v.clone()], ..g.clone() };
    let run = grid::plan(&one, &preset(preset_name)?, None, &[], 1)?.remove(0);
    if json {
        println!("{}", serde_json::to_string_pretty(&grid::every_key(&run.config)).unwrap());
    } else {
        println!("{} ({}){}", v.name, v.paper, if v.note.is_empty() { String::new() } else { format!(": {}", v.note) });
        println!("gate: {}", run.config.model.gate_label());
        let p = run.config.model.param_count();
        let m = &run.config.model;
        let ffn = if m.moe.is_dense() {
            format!("FFN width {}", m.ffn_width())
        } else {
            format!(
                "FFN {} experts of {}, top-{} ({} shared)",
                m.moe.experts, m.moe.d_expert, m.moe.top_k, m.moe.shared_experts
            )
        };
        println!("parameters: {} (gate {}, Switch-Head {}), {ffn}", p.total, p.gate, p.switch_head);
        println!("{}", serde_json::to_string_pretty(&grid::every_key(&run.config)).unwrap());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ExtendArgs {
    /// A finished run folder, or a sweep folder of runs.
    path: PathBuf,
    /// Further key=value overrides of the continued runs (one value each).
    overrides: Vec<String>,
    /// The new sequence length.
    #[arg(long)]
    seq_len: usize,
    /// The new RoPE base (the paper raises 10k to 1M); the parent's when omitted.
    #[arg(long)]
    rope_theta: Option<f64>,
    /// Optimiser steps of the continuation.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Peak learning rate (the parent's when omitted).
    #[arg(long)]
    lr: Option<f64>,
    /// Results folder (default: the parent sweep's folder with -ext<seq_len> appended).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    device: TrainDeviceArgs,
    /// Print the runs as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `gatelab extend`: continue finished runs at a longer length as new runs naming their parent.
pub fn extend(args: ExtendArgs) -> Result<()> {
    use gatelab::extend::{self, ExtendOptions};
    let opts = ExtendOptions {
        path: args.path,
        seq_len: args.seq_len,
        rope_theta: args.rope_theta,
        steps: args.steps,
        lr: args.lr,
        overrides: args.overrides,
        out: args.out,
        backend: args.device.device.backend,
        device_index: args.device.device.device_index,
        devices: args.device.devices,
    };
    let plan = extend::plan(&opts)?;
    eprintln!("extend: {} runs continued at seq_len {} into {}", plan.runs.len(), opts.seq_len, plan.out.display());
    let rows = extend::run_plan(plan, &opts.target())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": rows })).expect("json"));
    } else {
        gatelab::sweep::print_table(&rows);
    }
    none_failed(&rows)
}

/// An error when runs failed (the command then exits non-zero), saying where to look.
pub(crate) fn none_failed(rows: &[gatelab::sweep::SweepRow]) -> Result<()> {
    let failed = rows.iter().filter(|r| matches!(r.status, gatelab_rundir::Status::Failed { .. })).count();
    if failed > 0 {
        return Err(ExperimentError::Usage(format!(
            "{failed} of {} runs failed (status.json in their folders says why)",
            rows.len()
        )));
    }
    Ok(())
}
