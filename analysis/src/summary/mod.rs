//! A sweep's summary: its runs grouped by configuration, each metric with its mean, 95% interval
//! over seeds and its paired difference to the baseline of the same configuration.
//!
//! **Groups.** A group is one distinct resolved configuration, less the seed (and one backend):
//! runs are pooled only when everything else is equal. A sweep over `train.lr=a,b` gives two
//! groups per variant; the keys that tell a variant's groups apart label them
//! (`baseline · train.lr=0.006`).
//!
//! **Intervals.** Over seeds, a metric's 95% interval is Student's t interval,
//! `mean ± t(0.975, n−1) · s / √n`: seeds are few (3–5), their spread is estimated from them, and
//! the t quantile widens the interval to account for that (the normal 1.96 would claim too
//! much). It assumes the seeds' values are roughly normal, which a handful of seeds cannot check;
//! treat it as the usual convention, not as proof. One seed has no interval.
//!
//! **Paired differences.** A gated configuration's baseline is the ungated configuration that is
//! otherwise identical (its config with `model.gate` removed); an ungated configuration with a
//! sink cure is compared with plain softmax, otherwise identical. The same seed means the same
//! initialisation stream and the same batch at every step (the batch of step `s` depends only on
//! the seed and `s`), so a variant's run and the baseline's run of the same seed differ by the
//! gate alone. The difference is taken seed
//! by seed, then averaged, with its own t interval over the pairs: this removes the seed-to-seed
//! spread that both share and is the comparison to read.
//!
//! Parts: [`estimate`] (means, intervals, paired differences), [`metric`] (what is measured),
//! [`verdict`] (verdicts on the paper's claims and the report's finding), [`baseline`] (each
//! configuration's baseline and the paired differences to it), [`parent`] (continued runs against
//! the runs they started from); here, the grouping of runs into configurations.

mod baseline;
mod estimate;
mod metric;
mod parent;
mod verdict;

pub use estimate::{Estimate, NON_FINITE, t_quantile_95};
pub use metric::Metric;
pub use verdict::{VERDICT_RULE, Verdict, finding, paper_effect, verdict};

use crate::error::{AnalysisError, Result};
use crate::run::{Analysis, read_analysis};
use gatelab_model::GateSpec;
use gatelab_rundir::{RunDir, RunFile, Status, runs_under};
use std::collections::BTreeMap;
use std::path::Path;

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct GroupRun {
    /// Its folder.
    pub run: RunDir,
    /// `config.json`.
    pub file: RunFile,
    /// `status.json`.
    pub status: Status,
    /// `analysis.json`, when analysed.
    pub analysis: Option<Analysis>,
    /// Its metrics (finished runs only).
    pub metrics: BTreeMap<Metric, f64>,
    /// Why a finished run's numbers cannot be trusted, so that it is left out of every mean: its
    /// weights are missing or fail their checksum, or its `analysis.json` cannot be read.
    pub problem: Option<String>,
}

impl GroupRun {
    /// Whether it counts: done, with nothing wrong.
    pub fn counts(&self) -> bool {
        self.status.is_done() && self.problem.is_none()
    }

    /// Where it stands, one word or two: `done`, `weights missing`, `failed`.
    pub fn word(&self) -> String {
        match &self.problem {
            Some(p) if self.status.is_done() => p.split(" (").next().unwrap_or(p).to_string(),
            _ => self.status.word().to_string(),
        }
    }
}

/// One configuration: the runs that differ only by seed.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its variant.
    pub variant: String,
    /// Other variants whose configuration this is: the same runs stand for them.
    pub also: Vec<gatelab_rundir::OtherName>,
    /// The paper's table and row.
    pub paper: String,
    /// What tells it apart from the variant's other configurations (`train.lr=0.006`), empty
    /// when the variant has one.
    pub label: String,
    /// Its gate, in words.
    pub gate: String,
    /// Parameters.
    pub params: usize,
    /// The runs, by seed.
    pub runs: Vec<GroupRun>,
    /// Per metric, over the finished runs' seeds.
    pub estimates: BTreeMap<Metric, Estimate>,
    /// Per metric, the paired difference to the baseline of the same configuration.
    pub versus_baseline: BTreeMap<Metric, Estimate>,
    /// Index of that baseline group, if any (none for the baseline itself).
    pub baseline: Option<usize>,
    /// The variant(s) of the runs its runs started from (`meta.parent`: `extend`, `retrofit`),
    /// empty when they started from scratch.
    pub parent: String,
    /// Per metric, the parents' values over their seeds.
    pub parent_estimates: BTreeMap<Metric, Estimate>,
    /// Per metric, the paired difference to the parents (run − its parent, seed by seed).
    pub versus_parent: BTreeMap<Metric, Estimate>,
    /// Per metric the paper makes a claim about, the verdict (G1 sigmoid gates only).
    pub verdicts: BTreeMap<Metric, Verdict>,
    /// Per-layer F-Attn (queries ≥ 1) over seeds.
    pub first_token_attention_per_layer: Vec<Estimate>,
    /// Per-layer largest activation over seeds.
    pub max_activation_per_layer: Vec<Estimate>,
    /// Per-layer top-1, top-2 and top-3 |h| over the median |h|, over seeds.
    pub top_activation_ratios_per_layer: [Vec<Estimate>; 3],
    /// Gate scores per histogram bin over [0, 1], summed over layers and seeds, as shares.
    pub gate_histogram: Vec<f64>,
    /// Chance level of F-Attn (queries ≥ 1) at the analysed length.
    pub chance: Option<f64>,
}

impl Group {
    /// `variant · label`, or the variant alone; with `= other` for every other name of the
    /// same configuration.
    pub fn name(&self) -> String {
        let mut name = self.variant.clone();
        for other in &self.also {
            name.push_str(" = ");
            name.push_str(&other.variant);
        }
        if self.label.is_empty() { name } else { format!("{name} · {}", self.label) }
    }

    /// Per analysed run, its mixture-of-experts layers' routing (runs of a dense model left out).
    pub fn routing(&self) -> Vec<Vec<&crate::stats::RoutingStats>> {
        self.runs
            .iter()
            .filter_map(|r| r.analysis.as_ref())
            .map(|a| a.stats.layers.iter().filter_map(|l| l.routing.as_ref()).collect::<Vec<_>>())
            .filter(|layers| !layers.is_empty())
            .collect()
    }

    /// Runs that finished every step and can be trusted ([`GroupRun::counts`]).
    pub fn done(&self) -> usize {
        self.runs.iter().filter(|r| r.counts()).count()
    }

    /// Runs that diverged.
    pub fn diverged(&self) -> usize {
        self.runs.iter().filter(|r| matches!(r.status, Status::Diverged { .. })).count()
    }

    /// Whether this is an ungated baseline.
    pub fn is_baseline(&self) -> bool {
        self.gate == GateSpec::BASELINE.label()
    }

    /// Whether its gate is the one the paper's claims concern: G1, sigmoid, multiplicative,
    /// input-dependent, head-specific (elementwise or headwise); also its `2σ` form and a
    /// zero-initialised one (a retrofitted gate, whose label says which).
    pub fn is_g1_sigmoid(&self) -> bool {
        use gatelab_model::GateActivation as A;
        let model = &self.runs[0].file.config.model;
        let g = &model.gate;
        let sigmoid = matches!(g.activation, A::Sigmoid | A::ScaledSigmoid) && model.extra_gates.is_empty();
        let core = GateSpec { activation: A::Sigmoid, init: Default::default(), ..*g };
        sigmoid && core == GateSpec { granularity: g.granularity, ..GateSpec::G1_ELEMENTWISE }
    }
}

/// A sweep's summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The configurations, in the order their variants first appear.
    pub groups: Vec<Group>,
    /// The config keys whose values differ between groups of one variant.
    pub differing_keys: Vec<String>,
    /// Run folders that could not be read at all (`config.json` or `status.json`), with why; the
    /// report names them and goes on with the others.
    pub unreadable: Vec<(String, String)>,
}

/// A finished run's `analysis.json` and metrics, or why they cannot be trusted (its weights
/// are gone or damaged, or a file does not read). An imported checkpoint's weights stay in its
/// source folder (`meta.source`), so its run folder has none to check.
fn finished_numbers(
    run: &RunDir,
    file: &RunFile,
) -> std::result::Result<(Option<Analysis>, BTreeMap<Metric, f64>), String> {
    if file.meta.source.is_none()
        && let Some(problem) = run.weights().problem()
    {
        return Err(problem);
    }
    let analysis = read_analysis(run).map_err(|e| format!("analysis unreadable ({e})"))?;
    let metrics = run_metrics(run, analysis.as_ref()).map_err(|e| format!("logs unreadable ({e})"))?;
    Ok((analysis, metrics))
}

fn run_metrics(run: &RunDir, analysis: Option<&Analysis>) -> Result<BTreeMap<Metric, f64>> {
    let mut m = BTreeMap::new();
    let evals = run.evals()?;
    if let Some(last) = evals.last() {
        m.insert(Metric::ValLoss, last.loss);
    }
    if let Some(best) = evals.iter().map(|e| e.loss).filter(|l| l.is_finite()).min_by(f64::total_cmp) {
        m.insert(Metric::BestValLoss, best);
    }
    if let Some(last) = run.metrics()?.last() {
        m.insert(Metric::Spikes, last.spikes as f64);
    }
    if let Some(s) = crate::eval::read_eval(run)?.and_then(|e| e.streaming) {
        m.insert(Metric::StreamingRatio, s.ratio);
    }
    if let Some(a) = analysis {
        let s = &a.stats;
        m.insert(Metric::FirstTokenAttention, s.first_token_attention());
        m.insert(Metric::Sink, s.sink());
        m.insert(Metric::FirstTokenShare, s.first_token_share());
        if let Some(mass) = crate::stats::mean_option(s.layers.iter().map(|l| l.row_mass)) {
            m.insert(Metric::RowMass, mass);
        }
        if let Some(slot) = s.slot() {
            m.insert(Metric::Slot, slot);
        }
        m.insert(Metric::MaxActivation, s.max_activation());
        m.insert(Metric::Top1Median, crate::stats::mean(s.layers.iter().map(|l| l.top1_median_ratio)));
        m.insert(Metric::Top1MedianPeakLayer, s.layers.iter().map(|l| l.top1_median_ratio).fold(0.0, f64::max));
        type Of = fn(&crate::stats::LayerStats) -> Option<f64>;
        let norms: [(Metric, Of); 3] = [
            (Metric::FirstTokenNorm, |l| l.first_token_norm_ratio),
            (Metric::MaxTokenNorm, |l| l.max_token_norm_ratio),
            (Metric::MaxTokenNormFirst, |l| l.max_token_norm_first),
        ];
        for (metric, of) in norms {
            if let Some(v) = crate::stats::mean_option(s.layers.iter().map(of)) {
                m.insert(metric, v);
            }
        }
        if let Some(i) = &a.interventions {
            m.insert(Metric::PeakRatio, i.peak_abs / i.median_abs.max(1e-12));
            m.insert(Metric::AnalysisLoss, i.loss.as_trained);
            m.insert(Metric::LossPeakZeroed, i.loss.zeroed);
            m.insert(Metric::LossPeakMeaned, i.loss.meaned);
            m.insert(Metric::FirstTokenAttentionPeakZeroed, i.first_token_attention.zeroed);
            m.insert(Metric::FirstTokenAttentionPeakMeaned, i.first_token_attention.meaned);
        }
        if let Some(g) = s.gate_mean() {
            m.insert(Metric::GateMean, g);
        }
    }
    Ok(m)
}

/// The key that pools runs: the config less its seed, and the backend.
fn group_key(file: &RunFile) -> String {
    pool_key(file.config_without_seed(), file)
}

/// The key of `config` (a run's, less its seed, perhaps edited) on `file`'s backend. Continued runs
/// (`extend`) pool by their parents' configuration, each seed from its own parent; the parent's gate
/// and cure are left out (a continued run keeps them, so its own config has them), so that a gated
/// continuation pairs with the baseline's.
fn pool_key(config: gatelab_rundir::RunConfig, file: &RunFile) -> String {
    let parent = file.config.train.init_from.as_ref().map(|p| match RunDir::new(p.clone()).read_file() {
        Ok(parent) => {
            let mut c = parent.config_without_seed();
            (c.model.gate, c.model.cure) = (GateSpec::BASELINE, gatelab_model::SinkCure::Softmax);
            c.model.extra_gates.clear();
            serde_json::to_string(&c).expect("configs serialise")
        }
        Err(_) => p.display().to_string(),
    });
    serde_json::to_string(&(config, &file.meta.backend, parent)).expect("configs serialise")
}

/// Reads every run folder under `sweep` and groups the runs by configuration.
pub fn summarize(sweep: &Path) -> Result<Summary> {
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut unreadable = Vec::new();
    for run in runs_under(sweep)? {
        let (file, status) = match (run.read_file(), run.status()) {
            (Ok(file), Ok(status)) => (file, status),
            (Err(e), _) | (_, Err(e)) => {
                unreadable.push((run.name(), gatelab_rundir::one_line(&e)));
                continue;
            }
        };
        let (analysis, metrics, problem) = match status.is_done().then(|| finished_numbers(&run, &file)) {
            Some(Ok((analysis, metrics))) => (analysis, metrics, None),
            Some(Err(problem)) => (None, BTreeMap::new(), Some(problem)),
            None => (None, BTreeMap::new(), None),
        };
        let key = group_key(&file);
        let k = match keys.iter().position(|k| *k == key) {
            Some(k) => k,
            None => {
                keys.push(key);
                let c = &file.config.model;
                groups.push(Group {
                    variant: file.meta.variant.clone(),
                    also: file.meta.also.clone(),
                    paper: file.meta.paper.clone(),
                    label: String::new(),
                    gate: c.gate_label(),
                    params: c.param_count().total,
                    runs: vec![],
                    estimates: BTreeMap::new(),
                    versus_baseline: BTreeMap::new(),
                    baseline: None,
                    parent: String::new(),
                    parent_estimates: BTreeMap::new(),
                    versus_parent: BTreeMap::new(),
                    verdicts: BTreeMap::new(),
                    first_token_attention_per_layer: vec![],
                    max_activation_per_layer: vec![],
                    top_activation_ratios_per_layer: Default::default(),
                    gate_histogram: vec![],
                    chance: None,
                });
                groups.len() - 1
            }
        };
        groups[k].runs.push(GroupRun { run, file, status, analysis, metrics, problem });
    }
    // Variants in order of first appearance, their groups together.
    let order: Vec<String> = groups.iter().fold(Vec::new(), |mut v, g| {
        if !v.contains(&g.variant) {
            v.push(g.variant.clone());
        }
        v
    });
    let differing_keys = label_groups(&mut groups);
    // A variant's configurations in the order of the keys that tell them apart (numbers by value).
    let sort_key = |g: &Group| {
        let config = serde_json::to_value(g.runs[0].file.config_without_seed()).expect("configs serialise");
        let values: Vec<serde_json::Value> = differing_keys.iter().map(|k| lookup(&config, k).clone()).collect();
        (order.iter().position(|v| *v == g.variant), values)
    };
    groups.sort_by(|a, b| {
        let ((va, ka), (vb, kb)) = (sort_key(a), sort_key(b));
        va.cmp(&vb).then_with(|| {
            ka.iter()
                .zip(&kb)
                .map(|(x, y)| compare_values(x, y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    for g in &mut groups {
        g.runs.sort_by_key(|r| r.file.meta.seed);
        estimate(g);
    }
    baseline::pair_with_baselines(&mut groups);
    parent::pair_with_parents(&mut groups);
    if groups.is_empty()
        && let Some((name, why)) = unreadable.first()
    {
        return Err(AnalysisError::run(sweep, format!("no run folder here can be read ({name}: {why})")));
    }
    Ok(Summary { groups, differing_keys, unreadable })
}

/// Labels the groups of each variant by the config keys that tell them apart; returns every
/// such key.
fn label_groups(groups: &mut [Group]) -> Vec<String> {
    let mut all = Vec::new();
    let variants: Vec<String> = groups.iter().map(|g| g.variant.clone()).collect();
    for v in variants.iter().collect::<std::collections::BTreeSet<_>>() {
        let members: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].variant == *v).collect();
        if members.len() < 2 {
            continue;
        }
        let configs: Vec<_> = members.iter().map(|&i| groups[i].runs[0].file.config_without_seed()).collect();
        let mut keys: Vec<String> = Vec::new();
        for a in &configs {
            for b in &configs {
                keys.extend(a.differences(b).into_iter().map(|(k, _, _)| k));
            }
        }
        let backends: Vec<String> = members.iter().map(|&i| groups[i].runs[0].file.meta.backend.clone()).collect();
        keys.sort();
        keys.dedup();
        for (&i, c) in members.iter().zip(&configs) {
            let value = serde_json::to_value(c).expect("configs serialise");
            let mut parts: Vec<String> =
                keys.iter().map(|k| format!("{k}={}", show_value(lookup(&value, k)))).collect();
            if backends.iter().any(|b| *b != backends[0]) {
                parts.push(format!("backend={}", groups[i].runs[0].file.meta.backend));
            }
            groups[i].label = parts.join(", ");
        }
        all.extend(keys);
    }
    all.sort();
    all.dedup();
    all
}

/// Orders two config values: numbers by value, anything else by its text.
fn compare_values(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => show_value(a).cmp(&show_value(b)),
    }
}

/// The value at a dotted key of a config's JSON.
pub fn lookup<'a>(value: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    key.split('.').fold(value, |v, k| v.get(k).unwrap_or(&serde_json::Value::Null))
}

/// A config value as `key=value` prints it: a section by its kind where it has one
/// (`data.corpus=tinyshakespeare`).
pub fn show_value(v: &serde_json::Value) -> String {
    let tag = gatelab_rundir::config::TAGS.iter().find_map(|t| v.get(*t)?.as_str());
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(_) if tag.is_some() => tag.expect("checked").to_string(),
        other => other.to_string(),
    }
}

fn estimate(g: &mut Group) {
    let done: Vec<&GroupRun> = g.runs.iter().filter(|r| r.counts()).collect();
    for metric in Metric::ALL {
        let values: Vec<(u64, f64)> =
            done.iter().filter_map(|r| Some((r.file.meta.seed, *r.metrics.get(&metric)?))).collect();
        // A gate's mean score lies in its activation's range (2σ reaches 2).
        let bounds = match metric {
            Metric::GateMean => Some(g.runs[0].file.config.model.gate.activation.range()),
            m => m.bounds(),
        };
        if let Some(e) = Estimate::of(&values) {
            g.estimates.insert(metric, e.clipped(bounds.unwrap_or((f64::NEG_INFINITY, f64::INFINITY))));
        }
    }
    let analysed: Vec<(u64, &Analysis)> =
        done.iter().filter_map(|r| Some((r.file.meta.seed, r.analysis.as_ref()?))).collect();
    let layers = analysed.iter().map(|(_, a)| a.stats.layers.len()).min().unwrap_or(0);
    let per_layer = |f: &dyn Fn(&crate::stats::LayerStats) -> f64| -> Vec<Estimate> {
        (0..layers)
            .filter_map(|l| {
                Estimate::of(&analysed.iter().map(|(s, a)| (*s, f(&a.stats.layers[l]))).collect::<Vec<_>>())
            })
            .collect()
    };
    g.first_token_attention_per_layer =
        per_layer(&|l| l.first_token_attention[1]).into_iter().map(|e| e.clipped((0.0, 1.0))).collect();
    g.max_activation_per_layer =
        per_layer(&|l| l.max_activation).into_iter().map(|e| e.clipped((0.0, f64::INFINITY))).collect();
    g.top_activation_ratios_per_layer = std::array::from_fn(|k| per_layer(&|l| l.top3_median_ratio[k]));
    let mut histogram: Vec<u64> = Vec::new();
    for (_, a) in &analysed {
        for gate in a.stats.layers.iter().filter_map(|l| l.gate.as_ref()) {
            histogram.resize(gate.histogram.len(), 0);
            for (h, c) in histogram.iter_mut().zip(&gate.histogram) {
                *h += c;
            }
        }
    }
    let total: u64 = histogram.iter().sum();
    g.gate_histogram = histogram.iter().map(|&c| c as f64 / total.max(1) as f64).collect();
    g.chance = analysed.first().map(|(_, a)| a.stats.chance_first_token_attention[1]);
}

/// Where a group's runs stand, in words: `2 done, 1 diverged`.
pub fn status_words(g: &Group) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &g.runs {
        *counts.entry(r.word()).or_default() += 1;
    }
    counts.iter().map(|(w, n)| format!("{n} {w}")).collect::<Vec<_>>().join(", ")
}
