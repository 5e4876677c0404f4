//! Grids of variants (JSON files in `experiments/grids/`, or a user's), Hydra-style `key=value`
//! overrides, and their expansion into planned runs.
//!
//! A grid file:
//! ```json
//! { "name": "core", "description": "…", "set": {"train.steps": 2000},
//!   "variants": [ {"name": "g1-elementwise", "paper": "Table 1 row 5", "set": {"model.gate.position": "g1"}} ] }
//! ```
//! A run's config is the preset, then the grid's `set`, then the variant's `set`, then the
//! command line's overrides, each a dotted path into [`RunConfig`]'s JSON. A command-line value
//! with commas (`train.lr=4e-3,8e-3`) multiplies the runs, as do `--seeds N`.

use crate::config::RunConfig;
use crate::error::{ExperimentError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A grid file.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Its name (the default results folder).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Overrides every variant gets.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// The variants.
    pub variants: Vec<Variant>,
}

/// One variant of a grid.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name (letters, digits, `-`, `_`, `.`): the run folder's prefix.
    pub name: String,
    /// The paper's table and row it reproduces, e.g. `Table 1 row 5`.
    #[serde(default)]
    pub paper: String,
    /// How it maps onto a small dense model, where that needs saying.
    #[serde(default)]
    pub note: String,
    /// Its overrides.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// The variant the paper compares it with, where that is not simply its config without the
    /// gate (a row that also changes the heads, the experts or the parameter count): the report
    /// pairs each of its runs with that variant's run of the same overrides and seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// The grids shipped with gatelab.
pub const BUILTIN: [(&str, &str); 9] = [
    ("core", include_str!("../grids/core.json")),
    ("paper", include_str!("../grids/paper.json")),
    ("ladder", include_str!("../grids/ladder.json")),
    ("stability", include_str!("../grids/stability.json")),
    ("stability-deep", include_str!("../grids/stability-deep.json")),
    ("activations", include_str!("../grids/activations.json")),
    ("cures", include_str!("../grids/cures.json")),
    ("recall", include_str!("../grids/recall.json")),
    ("gates", include_str!("../grids/gates.json")),
];

/// Loads a built-in grid by name, or a grid file by path.
pub fn load(name_or_path: &str) -> Result<Grid> {
    let (source, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        Some((n, text)) => (format!("grid {n}"), text.to_string()),
        None => {
            let path = Path::new(name_or_path);
            if !path.exists() {
                let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
                return Err(ExperimentError::Grid {
                    source_name: name_or_path.into(),
                    message: format!("no such grid file (built-in grids: {})", names.join(", ")),
                });
            }
            (path.display().to_string(), std::fs::read_to_string(path).map_err(|e| ExperimentError::file(path, e))?)
        }
    };
    let refuse = |message: String| ExperimentError::Grid { source_name: source.clone(), message };
    let grid: Grid = serde_json::from_str(&text).map_err(|e| refuse(format!("not a grid file: {e}")))?;
    let mut seen = std::collections::HashSet::new();
    for v in &grid.variants {
        if v.name.is_empty() || !v.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(refuse(format!("variant name {:?} must be letters, digits, '-', '_' or '.'", v.name)));
        }
        if !seen.insert(&v.name) {
            return Err(refuse(format!("variant {} appears twice", v.name)));
        }
    }
    if grid.variants.is_empty() {
        return Err(refuse("no variants".into()));
    }
    for v in &grid.variants {
        if let Some(b) = &v.baseline
            && (b == &v.name || !grid.variants.iter().any(|o| &o.name == b))
        {
            return Err(refuse(format!("variant {}: baseline {b:?} is not another variant of the grid", v.name)));
        }
    }
    Ok(grid)
}

/// Parses `key=value` (a value that is not JSON is a string). With `split`, top-level commas
/// separate alternatives.
pub fn parse_override(s: &str, split: bool) -> Result<(String, Vec<Value>)> {
    let (key, raw) = s.split_once('=').ok_or_else(|| ExperimentError::override_key(s, "expected key=value"))?;
    if key.is_empty() {
        return Err(ExperimentError::override_key(s, "empty key"));
    }
    let pieces: Vec<&str> =
        if split && !raw.starts_with(['[', '{', '"']) { raw.split(',').collect() } else { vec![raw] };
    let mut values = Vec::new();
    for p in pieces {
        match serde_json::from_str(p) {
            Ok(v) => values.push(v),
            // An object or a list meant as JSON: say where it breaks, not that a string is unknown.
            Err(e) if p.trim_start().starts_with(['{', '[']) => {
                return Err(ExperimentError::override_key(key, format!("not valid JSON: {e} (in {p})")));
            }
            Err(_) => values.push(Value::String(p.to_string())),
        }
    }
    Ok((key.to_string(), values))
}

/// Config fields left out of the JSON at their default (so that configs written before them keep
/// their hashes): an override may set them although the resolved config does not show them.
pub const OMITTED_AT_DEFAULT: [&str; 13] = [
    "model.rope_scaling",
    "model.cure",
    "model.moe",
    "model.moe.shared_gate",
    "model.switch_head",
    "model.switch_head.shared_kv_router",
    "model.gate.init",
    "model.gate.input_dims",
    "model.extra_gates",
    "train.checkpointing",
    "train.trainable",
    "train.precision",
    "data.bos",
];

/// What an omitted field is before an override sets it: the sections (`model.moe`,
/// `model.switch_head`) their defaults, so one of their fields can be set alone; the others null.
fn omitted_default(field: &str) -> Value {
    match field {
        "model.moe" => serde_json::to_value(gatelab_model::MoeSpec::default()).expect("serialises"),
        "model.switch_head" => serde_json::to_value(gatelab_model::SwitchHeadSpec::default()).expect("serialises"),
        "train.checkpointing" => Value::String("none".into()),
        "train.trainable" => Value::String("all".into()),
        "train.precision" => Value::String("f32".into()),
        "model.gate.init" => Value::String("default".into()),
        "model.gate.input_dims" => Value::String("full".into()),
        "model.extra_gates" => Value::Array(Vec::new()),
        "model.moe.shared_gate" => Value::String("none".into()),
        "model.switch_head.shared_kv_router" => Value::Bool(false),
        "data.bos" => Value::Bool(true),
        _ => Value::Null,
    }
}

/// The resolved config as JSON with every field, those left out at their default
/// ([`OMITTED_AT_DEFAULT`]) too: every key an override can set (`grid show --json`).
pub fn every_key(config: &RunConfig) -> Value {
    let mut value = serde_json::to_value(config).expect("configs serialise");
    let m = &config.model;
    let model = value["model"].as_object_mut().expect("the model is a section");
    for (key, shown) in [
        ("rope_scaling", serde_json::to_value(m.rope_scaling)),
        ("cure", serde_json::to_value(m.cure)),
        ("moe", serde_json::to_value(m.moe)),
        ("switch_head", serde_json::to_value(m.switch_head)),
        ("extra_gates", serde_json::to_value(&m.extra_gates)),
    ] {
        model.entry(key).or_insert(shown.expect("configs serialise"));
    }
    let moe = value["model"]["moe"].as_object_mut().expect("the experts are a section");
    moe.entry("shared_gate").or_insert(serde_json::to_value(m.moe.shared_gate).expect("configs serialise"));
    let switch = value["model"]["switch_head"].as_object_mut().expect("Switch-Head is a section");
    switch.entry("shared_kv_router").or_insert(Value::Bool(m.switch_head.shared_kv_router));
    let gate = value["model"]["gate"].as_object_mut().expect("the gate is a section");
    gate.entry("init").or_insert(serde_json::to_value(m.gate.init).expect("configs serialise"));
    gate.entry("input_dims").or_insert(serde_json::to_value(m.gate.input_dims).expect("configs serialise"));
    let train = value["train"].as_object_mut().expect("training is a section");
    let t = &config.train;
    train.entry("checkpointing").or_insert(serde_json::to_value(t.checkpointing).expect("configs serialise"));
    train.entry("trainable").or_insert(serde_json::to_value(&t.trainable).expect("configs serialise"));
    train.entry("precision").or_insert(serde_json::to_value(t.precision).expect("configs serialise"));
    let data = value["data"].as_object_mut().expect("the data is a section");
    data.entry("bos").or_insert(Value::Bool(config.data.bos));
    value
}

/// Sets a dotted `key` of `config` to `value`; the key must exist (so typos fail).
pub fn apply(config: &mut Value, key: &str, value: Value) -> Result<()> {
    let mut node = config;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let obj = node
            .as_object_mut()
            .ok_or_else(|| ExperimentError::override_key(key, format!("{} is not a section", parts[..i].join("."))))?;
        let omitted = OMITTED_AT_DEFAULT
            .iter()
            .find(|k| (key == **k || key.starts_with(&format!("{k}."))) && k.split('.').count() == i + 1);
        if let Some(field) = omitted.filter(|_| !obj.contains_key(*part)) {
            obj.insert(part.to_string(), omitted_default(field));
        }
        if !obj.contains_key(*part) {
            let section = parts[..i].join(".");
            let mut known: Vec<&str> = obj.keys().map(String::as_str).collect();
            // The fields left out at their default belong in the list too.
            known.extend(OMITTED_AT_DEFAULT.iter().filter_map(|k| {
                let (parent, name) = k.rsplit_once('.')?;
                (parent == section && !obj.contains_key(name)).then_some(name)
            }));
            known.sort_unstable();
            let at = if i == 0 { String::new() } else { format!(" in {}", parts[..i].join(".")) };
            return Err(ExperimentError::override_key(
                key,
                format!("no field {part}{at} (fields: {})", known.join(", ")),
            ));
        }
        node = obj.get_mut(*part).expect("checked");
    }
    // A number or a switch stays one (or becomes null where that means "off"), so that a typo is
    // refused naming its key (serde's own message would not say which field).
    let kind = |v: &Value| match v {
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("true or false"),
        _ => None,
    };
    if let Some(want) = kind(node).filter(|&k| !value.is_null() && kind(&value) != Some(k)) {
        return Err(ExperimentError::override_key(key, format!("expected {want}, not {value}")));
    }
    *node = value;
    Ok(())
}

/// A run to do: one variant, one point of the override product, one seed.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Variant name.
    pub variant: String,
    /// Its paper reference.
    pub paper: String,
    /// Command-line overrides of this run (one value each).
    pub overrides: Vec<String>,
    /// Its seed.
    pub seed: u64,
    /// The resolved config.
    pub config: RunConfig,
    /// Other variants that resolve to this very configuration: trained once, as this run, and
    /// reported under every name.
    pub also: Vec<gatelab_rundir::OtherName>,
    /// The variant it is compared with ([`Variant::baseline`]), where the grid names one.
    pub baseline: Option<String>,
}

impl PlannedRun {
    /// Whether it is the run of `variant` (under its own name or as one of its `also`).
    pub fn answers_to(&self, variant: &str) -> bool {
        self.variant == variant || self.also.iter().any(|o| o.variant == variant)
    }
}

/// Expands a grid over the preset, overrides and seeds, resolving and checking every run; the
/// first problem is returned (naming the variant) before anything runs. A variant whose resolved
/// configuration equals an earlier one's is not planned again: it joins that run's `also`.
pub fn plan(
    grid: &Grid,
    preset: &RunConfig,
    data: Option<&Value>,
    overrides: &[String],
    seeds: usize,
) -> Result<Vec<PlannedRun>> {
    let parsed: Vec<(String, Vec<Value>)> = overrides.iter().map(|o| parse_override(o, true)).collect::<Result<_>>()?;
    // The product of the comma lists, in order.
    let mut combos: Vec<Vec<(String, Value)>> = vec![vec![]];
    for (key, values) in &parsed {
        combos = combos
            .into_iter()
            .flat_map(|c| values.iter().map(move |v| [c.clone(), vec![(key.clone(), v.clone())]].concat()))
            .collect();
    }
    let base = serde_json::to_value(preset).expect("configs serialise");
    let mut runs = Vec::new();
    for variant in &grid.variants {
        for combo in &combos {
            for s in 0..seeds.max(1) {
                let mut value = base.clone();
                let context = |e: ExperimentError| ExperimentError::in_variant(&grid.name, &variant.name, e);
                for (k, v) in grid.set.iter().chain(&variant.set) {
                    apply(&mut value, k, v.clone()).map_err(context)?;
                }
                if let Some(corpus) = data {
                    apply(&mut value, "data.corpus", corpus.clone()).map_err(context)?;
                }
                for (k, v) in combo {
                    apply(&mut value, k, v.clone()).map_err(context)?;
                }
                let seed = value["train"]["seed"].as_u64().unwrap_or(0) + s as u64;
                value["train"]["seed"] = seed.into();
                let config: RunConfig = serde_path_to_error::deserialize(value)
                    .map_err(|e| context(ExperimentError::option(e.path().to_string(), e.inner().to_string())))?;
                let config = config.resolve().map_err(|e| context(e.into()))?;
                if !config.train.trainable.is_all() {
                    crate::trainable::of_config(&config).map_err(context)?;
                }
                let overrides = combo
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                    .collect();
                // Two names for one model (e.g. Switch-Head v 1top1, which the paper calls the value
                // headwise gate): trained once, under the first name, reported under both.
                if let Some(same) = runs.iter_mut().find(|r: &&mut PlannedRun| r.config == config) {
                    same.also.push(gatelab_rundir::OtherName {
                        variant: variant.name.clone(),
                        paper: variant.paper.clone(),
                    });
                    continue;
                }
                runs.push(PlannedRun {
                    variant: variant.name.clone(),
                    paper: variant.paper.clone(),
                    overrides,
                    seed,
                    config,
                    also: Vec::new(),
                    baseline: variant.baseline.clone(),
                });
            }
        }
    }
    Ok(runs)
}

/// The runs of shard `i` of `n` (1-based): every `n`-th run from the `i`-th, so shards 1..=n
/// cover the plan exactly once.
pub fn shard<T>(runs: Vec<T>, i: usize, n: usize) -> Vec<T> {
    runs.into_iter().enumerate().filter(|(k, _)| k % n == i - 1).map(|(_, r)| r).collect()
}

/// Parses `--shard i/N`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || ExperimentError::option(format!("--shard {s}"), "expected i/N with 1 <= i <= N");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// A 64-bit FNV-1a hash of `bytes`, for run folder names.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}
