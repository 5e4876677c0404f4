//! A gate added to models trained without one (`gatelab retrofit`): each finished ungated run
//! becomes the parent of a child run that starts from its weights plus a newly initialised gate,
//! and trains what `train.trainable` says (by default the gate alone), at the parent's length or
//! a longer one. Beside the children, one control per parent: the same steps with every
//! parameter and no gate, which the children are paired with (is an effect the gate's, or the
//! extra training's?), at the children's length and RoPE base or at others (`--control-seq-len`:
//! a gate trained at `T` against continued training at `2T`). Children are runs like any other — their own folders, hashes, resume,
//! status — named `<parent variant>+<name>`, whose `config.json` names the parent.
//!
//! `--init identity` starts the gate at exactly no gate: zero weights (`gate.init = zero`) in a
//! form whose zero logit leaves the output unchanged ([`GateSpec::identity_at_zero`]), so the
//! child's logits at step 0 are the parent's. `--init random` is the gate's usual initialisation.

use crate::error::{ExperimentError, Result};
use crate::extend::{ExtendPlan, Target, plan_children};
use crate::sweep::{self, SweepRow};
use gatelab_model::{GateActivation, GateSpec};
use gatelab_rundir::config::{Trainable, TrainableSet};
use gatelab_rundir::{BaselineRun, RunDir, runs_under};
use std::path::PathBuf;

/// How the added gate starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetrofitInit {
    /// Zero weights in a form that starts as no gate: the parent's logits at step 0.
    Identity,
    /// The gate's usual initialisation (normal with `init_std`).
    Random,
}

/// What `gatelab retrofit` was asked to do.
#[derive(Debug, Clone)]
pub struct RetrofitOptions {
    /// A finished run folder, or a sweep folder of runs.
    pub path: PathBuf,
    /// The gate to add: `key=value` of `model.gate` (`position=g1`, `granularity=headwise`).
    pub gate: Vec<String>,
    /// How the gate starts.
    pub init: RetrofitInit,
    /// What trains.
    pub train: Trainable,
    /// The variants of a sweep to retrofit (empty: every ungated one).
    pub variants: Vec<String>,
    /// The new sequence length (the parent's when absent).
    pub seq_len: Option<usize>,
    /// The new RoPE base (the parent's when absent).
    pub rope_theta: Option<f64>,
    /// Optimiser steps.
    pub steps: usize,
    /// Peak learning rate (the parent's when absent).
    pub lr: Option<f64>,
    /// The children's name (default from the gate, the initialisation and what trains).
    pub name: Option<String>,
    /// Plan the all-parameter control beside the children.
    pub control: bool,
    /// The control's sequence length, when not the children's (a gate trained at `T` paired with
    /// continued training at `2T`).
    pub control_seq_len: Option<usize>,
    /// The control's RoPE base, when not the children's.
    pub control_rope_theta: Option<f64>,
    /// Further `key=value` overrides of the children and controls (one value each).
    pub overrides: Vec<String>,
    /// Results folder (default: the parent sweep's folder with `-retrofit` appended).
    pub out: Option<PathBuf>,
    /// Where they train.
    pub target: Target,
}

/// `model.gate` overrides from `--gate key=value` (with or without the `model.gate.` prefix).
fn gate_changes(opts: &RetrofitOptions) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    for item in &opts.gate {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            ExperimentError::option("--gate", format!("{item:?}: expected KEY=VALUE, e.g. position=g1"))
        })?;
        let key = key.trim().trim_start_matches("model.").trim_start_matches("gate.");
        if key == "init" {
            return Err(ExperimentError::option("--gate", "the gate's initialisation is --init identity|random"));
        }
        changes.push(format!("model.gate.{key}={}", value.trim()));
    }
    let has = |changes: &[String], key: &str| changes.iter().any(|c| c.starts_with(&format!("model.gate.{key}=")));
    if !has(&changes, "position") {
        changes.insert(0, "model.gate.position=g1".into());
    }
    // Under identity the only multiplicative form that starts at 1 is 2σ: the default there.
    let additive = changes.iter().any(|c| c.ends_with("=additive"));
    if opts.init == RetrofitInit::Identity && !has(&changes, "activation") && !additive {
        changes.push("model.gate.activation=scaled_sigmoid".into());
    }
    if opts.init == RetrofitInit::Identity {
        changes.push("model.gate.init=zero".into());
    }
    Ok(changes)
}

/// The children's default name: `g1-identity-gate`, `g1-headwise-random-gate+norms`.
fn default_name(spec: &GateSpec, opts: &RetrofitOptions) -> String {
    let mut parts = vec![format!("{:?}", spec.position).to_lowercase()];
    if spec.granularity == gatelab_model::Granularity::Headwise {
        parts.push("headwise".into());
    }
    let default_activation =
        if opts.init == RetrofitInit::Identity { GateActivation::ScaledSigmoid } else { GateActivation::Sigmoid };
    if spec.activation != default_activation || spec.combination != gatelab_model::Combination::Multiplicative {
        parts.push(spec.label().split(' ').skip(2).collect::<Vec<_>>().join("-").replace('·', ""));
    }
    parts.push(format!("{:?}", opts.init).to_lowercase());
    parts.push(opts.train.to_string());
    parts.retain(|p| !p.is_empty());
    parts.join("-")
}

/// Why a parent cannot take a gate, if it cannot.
fn refusal(file: &gatelab_rundir::RunFile) -> Option<String> {
    let m = &file.config.model;
    if m.gate.is_gated() {
        return Some(format!("already has a gate ({}): retrofit adds one to a model trained without", m.gate.label()));
    }
    if !m.cure.is_softmax() {
        return Some(format!("uses the sink cure {:?}: a retrofit is defined on softmax attention only", m.cure));
    }
    if !m.moe.is_dense() || !m.switch_head.is_off() {
        return Some("is a mixture-of-experts model: a retrofit is defined on dense models only".into());
    }
    None
}

/// The planned children and controls, checked before anything is written.
pub fn plan(opts: &RetrofitOptions) -> Result<ExtendPlan> {
    let single = opts.path.join("config.json").is_file();
    let mut parents = Vec::new();
    let mut left_out = 0;
    for run in runs_under(&opts.path)? {
        let file = sweep::read_run_file(&run.path)?;
        let named = opts.variants.contains(&file.meta.variant);
        if !opts.variants.is_empty() && !named {
            continue;
        }
        let explicit = single || named;
        if let Some(why) = refusal(&file) {
            if explicit {
                return Err(ExperimentError::file(&run.path, why));
            }
            left_out += 1;
            continue;
        }
        if !run.is_done() {
            let status = run.status().map(|s| s.word().to_string()).unwrap_or_else(|_| "unreadable".into());
            return Err(ExperimentError::file(
                &run.path,
                format!(
                    "has not finished (status {status}): a retrofit starts from final weights; finish it \
                     (gatelab sweep resumes it) or leave it out with --variants"
                ),
            ));
        }
        parents.push((run.path, file));
    }
    if let Some(missing) = opts.variants.iter().find(|v| !parents.iter().any(|(_, f)| f.meta.variant == **v)) {
        return Err(ExperimentError::option(
            "--variants",
            format!("no run of {missing:?} under {}", opts.path.display()),
        ));
    }
    if parents.is_empty() {
        let why = if left_out > 0 {
            format!("its {left_out} runs all have a gate, a cure or experts")
        } else {
            "no runs".into()
        };
        return Err(ExperimentError::file(&opts.path, format!("nothing to retrofit: {why}")));
    }
    if left_out > 0 {
        eprintln!("retrofit: {left_out} runs with a gate, a cure or experts left out");
    }
    let gate = gate_changes(opts)?;
    let mut shared = Vec::new();
    if let Some(t) = opts.seq_len {
        shared.push(format!("data.seq_len={t}"));
    }
    if let Some(theta) = opts.rope_theta {
        shared.push(format!("model.rope_theta={theta}"));
    }
    if let Some(lr) = opts.lr {
        shared.push(format!("train.lr={lr}"));
    }
    let mut children: Vec<String> = gate.iter().chain(&shared).cloned().collect();
    children.push(format!("train.trainable={}", opts.train));
    children.extend(opts.overrides.iter().cloned());
    let out = opts.out.clone().unwrap_or_else(|| crate::extend::beside_parents(&opts.path, "-retrofit"));
    let paths: Vec<PathBuf> = parents.iter().map(|(p, _)| p.clone()).collect();
    let mut plan = plan_children(&paths, &children, opts.steps, out.clone(), "-retrofit", &opts.target)?;
    let spec = plan.runs[0].0.run.config.model.gate;
    if opts.init == RetrofitInit::Identity
        && let Err(why) = spec.identity_at_zero()
    {
        return Err(ExperimentError::option("--init identity", why));
    }
    let name = opts.name.clone().unwrap_or_else(|| default_name(&spec, opts));
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(ExperimentError::option("--name", format!("{name:?}: a name without slashes")));
    }
    // Not a row of the paper: a retrofit, or its control (the parent's row is its parent's).
    let not_a_row = |located: &mut crate::sweep::Located, meta: &mut gatelab_rundir::RunMeta| {
        (located.run.paper, meta.paper) = (String::new(), String::new());
    };
    for (located, meta) in &mut plan.runs {
        not_a_row(located, meta);
        located.run.variant = format!("{}+{name}", located.run.variant);
        meta.variant = located.run.variant.clone();
        located.dir = RunDir::new(out.join(format!("{}-{}", located.run.variant, located.hash)));
        meta.baseline = None;
        located.baseline = None;
    }
    if !opts.control && (opts.control_seq_len.is_some() || opts.control_rope_theta.is_some()) {
        return Err(ExperimentError::option(
            "--control-seq-len",
            "sets the control's length, and --no-control plans none",
        ));
    }
    if opts.control {
        let mut control: Vec<String> = Vec::new();
        if let Some(t) = opts.control_seq_len.or(opts.seq_len) {
            control.push(format!("data.seq_len={t}"));
        }
        if let Some(theta) = opts.control_rope_theta.or(opts.rope_theta) {
            control.push(format!("model.rope_theta={theta}"));
        }
        if let Some(lr) = opts.lr {
            control.push(format!("train.lr={lr}"));
        }
        control.extend(opts.overrides.iter().cloned());
        let mut controls = plan_children(&paths, &control, opts.steps, out.clone(), "-retrofit", &opts.target)?;
        for ((child, child_meta), (located, meta)) in plan.runs.iter_mut().zip(&mut controls.runs) {
            not_a_row(located, meta);
            located.run.variant = format!("{}+control", located.run.variant);
            meta.variant = located.run.variant.clone();
            located.dir = RunDir::new(out.join(format!("{}-{}", located.run.variant, located.hash)));
            (meta.baseline, located.baseline) = (None, None);
            let pair = BaselineRun { variant: located.run.variant.clone(), hash: located.hash.clone() };
            child_meta.baseline = Some(pair.clone());
            child.baseline = Some(pair);
        }
        plan.runs.extend(controls.runs);
    }
    Ok(plan)
}

/// Plans and trains the children (and controls); returns their rows.
pub fn run(opts: &RetrofitOptions) -> Result<Vec<SweepRow>> {
    crate::extend::run_plan(plan(opts)?, &opts.target)
}

/// `train.trainable` from `--train`: `gate`, `gate+norms` or `all`.
pub fn parse_train(s: &str) -> std::result::Result<Trainable, String> {
    match s {
        "gate" => Ok(Trainable::Set(TrainableSet::Gate)),
        "gate+norms" => Ok(Trainable::Set(TrainableSet::GateAndNorms)),
        "all" => Ok(Trainable::Set(TrainableSet::All)),
        other => Err(format!("{other:?}: expected gate, gate+norms or all")),
    }
}
