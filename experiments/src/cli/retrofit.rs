//! `gatelab retrofit`: add a gate to finished ungated runs and train it (alone, by default).

use super::TrainDeviceArgs;
use gatelab::Result;
use gatelab::extend::Target;
use gatelab::retrofit::{self, RetrofitInit, RetrofitOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RetrofitArgs {
    /// A finished ungated run folder, or a sweep folder (its ungated finished runs).
    path: PathBuf,
    /// Further key=value overrides of the new runs (one value each).
    overrides: Vec<String>,
    /// The gate to add, as model.gate's KEY=VALUE (repeatable): position=g1 by default; under
    /// --init identity the activation defaults to scaled_sigmoid (2σ, 1 at zero).
    #[arg(long = "gate", value_name = "KEY=VALUE")]
    gate: Vec<String>,
    /// identity: zero weights in a form that starts as no gate (the parent's logits at step 0);
    /// random: the gate's usual initialisation.
    #[arg(long, value_enum, default_value = "identity")]
    init: RetrofitInit,
    /// What trains: the gate alone, the gate and every RMSNorm weight, or all parameters.
    #[arg(long, default_value = "gate", value_parser = retrofit::parse_train)]
    train: gatelab_rundir::config::Trainable,
    /// Only the runs of these variants of a sweep (each must be finished and ungated).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// A new sequence length (the parent's when omitted).
    #[arg(long)]
    seq_len: Option<usize>,
    /// A new RoPE base (the parent's when omitted).
    #[arg(long)]
    rope_theta: Option<f64>,
    /// Optimiser steps.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Peak learning rate (the parent's when omitted).
    #[arg(long)]
    lr: Option<f64>,
    /// The new runs' name, after the parent's variant (default from the gate, --init and --train:
    /// baseline+g1-identity-gate).
    #[arg(long)]
    name: Option<String>,
    /// Leave out the control (the same steps, every parameter, no gate) that each new run is
    /// paired with.
    #[arg(long)]
    no_control: bool,
    /// The control's sequence length, when not the new runs' (e.g. the gate trained at T, paired
    /// with continued training of every parameter at 2T).
    #[arg(long)]
    control_seq_len: Option<usize>,
    /// The control's RoPE base, when not the new runs'.
    #[arg(long)]
    control_rope_theta: Option<f64>,
    /// Results folder (default: the parent sweep's folder with -retrofit appended; retrofits of
    /// one sweep share it, and its controls).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    device: TrainDeviceArgs,
    /// Print the runs as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `gatelab retrofit`.
pub fn retrofit(args: RetrofitArgs) -> Result<()> {
    let opts = RetrofitOptions {
        path: args.path,
        gate: args.gate,
        init: args.init,
        train: args.train,
        variants: args.variants,
        seq_len: args.seq_len,
        rope_theta: args.rope_theta,
        steps: args.steps,
        lr: args.lr,
        name: args.name,
        control: !args.no_control,
        control_seq_len: args.control_seq_len,
        control_rope_theta: args.control_rope_theta,
        overrides: args.overrides,
        out: args.out,
        target: Target {
            backend: args.device.device.backend,
            device_index: args.device.device.device_index,
            devices: args.device.devices,
        },
    };
    let plan = retrofit::plan(&opts)?;
    eprintln!("retrofit: {} runs into {}", plan.runs.len(), plan.out.display());
    let rows = gatelab::extend::run_plan(plan, &opts.target)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": rows })).expect("json"));
    } else {
        gatelab::sweep::print_table(&rows);
    }
    super::sweep::none_failed(&rows)
}
