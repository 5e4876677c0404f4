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

use crate::error::{AnalysisError, Result};
use crate::run::{Analysis, read_analysis};
use gatelab_model::GateSpec;
use gatelab_rundir::{RunDir, RunFile, Status, runs_under};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile_95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        // Cornish-Fisher expansion around the normal quantile; within 1e-3 beyond 30.
        _ => {
            let (z, d) = (1.959_964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// A metric over seeds: the values, their mean and 95% t interval.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Mean.
    pub mean: f64,
    /// Lower end of the 95% interval (absent for one value).
    pub lo: Option<f64>,
    /// Upper end.
    pub hi: Option<f64>,
    /// Sample standard deviation (absent for one value).
    pub sd: Option<f64>,
    /// Values it rests on.
    pub n: usize,
    /// The values, by seed.
    pub values: Vec<(u64, f64)>,
    /// Values left out because they were NaN or infinite (a run whose analysis overflowed, say).
    #[serde(default)]
    pub non_finite: usize,
}

impl Estimate {
    /// The estimate of `values`, `None` when there are none. Non-finite values are left out
    /// and counted ([`Estimate::non_finite`]); when every value is non-finite, the mean is NaN and
    /// tables show [`NON_FINITE`].
    pub fn of(values: &[(u64, f64)]) -> Option<Estimate> {
        let v: Vec<(u64, f64)> = values.iter().copied().filter(|(_, x)| x.is_finite()).collect();
        let non_finite = values.len() - v.len();
        if v.is_empty() {
            return (non_finite > 0).then_some(Estimate {
                mean: f64::NAN,
                lo: None,
                hi: None,
                sd: None,
                n: 0,
                values: v,
                non_finite,
            });
        }
        let n = v.len();
        let mean = v.iter().map(|(_, x)| x).sum::<f64>() / n as f64;
        let (mut lo, mut hi, mut sd) = (None, None, None);
        if n > 1 {
            let s = (v.iter().map(|(_, x)| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            let half = t_quantile_95(n - 1) * s / (n as f64).sqrt();
            (lo, hi, sd) = (Some(mean - half), Some(mean + half), Some(s));
        }
        Some(Estimate { mean, lo, hi, sd, n, values: v, non_finite })
    }

    /// The paired difference `self − base` over the seeds both have.
    pub fn paired_minus(&self, base: &Estimate) -> Option<Estimate> {
        let diffs: Vec<(u64, f64)> = self
            .values
            .iter()
            .filter_map(|(s, x)| base.values.iter().find(|(t, _)| t == s).map(|(_, b)| (*s, x - b)))
            .collect();
        Estimate::of(&diffs)
    }

    /// The interval clipped to `[lo, hi]`, the range the quantity cannot leave (a probability's
    /// [0, 1]): with few seeds a t interval can reach past it.
    pub fn clipped(mut self, (lo, hi): (f64, f64)) -> Self {
        self.lo = self.lo.map(|v| v.clamp(lo, hi));
        self.hi = self.hi.map(|v| v.clamp(lo, hi));
        self
    }

    /// `(lo, hi)` when there is an interval.
    pub fn interval(&self) -> Option<(f64, f64)> {
        Some((self.lo?, self.hi?))
    }

    /// Whether the interval lies wholly above (1) or below (−1) zero, or straddles it (0);
    /// `None` without an interval.
    pub fn sign(&self) -> Option<i8> {
        let (lo, hi) = self.interval()?;
        Some(if lo > 0.0 {
            1
        } else if hi < 0.0 {
            -1
        } else {
            0
        })
    }

    /// `mean [lo, hi]` with `digits` decimals, or the mean alone.
    pub fn show(&self, digits: usize) -> String {
        if !self.mean.is_finite() {
            return NON_FINITE.into();
        }
        let shown = match self.interval() {
            Some((lo, hi)) => format!("{:.d$} [{:.d$}, {:.d$}]", self.mean, lo, hi, d = digits),
            None => format!("{:.d$}", self.mean, d = digits),
        };
        shown + &self.left_out()
    }

    /// Like [`Estimate::show`] with a sign.
    pub fn show_signed(&self, digits: usize) -> String {
        if !self.mean.is_finite() {
            return NON_FINITE.into();
        }
        let shown = match self.interval() {
            Some((lo, hi)) => format!("{:+.d$} [{:+.d$}, {:+.d$}]", self.mean, lo, hi, d = digits),
            None => format!("{:+.d$}", self.mean, d = digits),
        };
        shown + &self.left_out()
    }

    /// ` (1 non-finite left out)`, or nothing.
    fn left_out(&self) -> String {
        if self.non_finite == 0 { String::new() } else { format!(" ({} non-finite left out)", self.non_finite) }
    }
}

/// How a table shows a mean that is NaN or infinite (a statistic of a run that diverged in its
/// analysis, say): never as a number.
pub const NON_FINITE: &str = "n/a (non-finite)";

/// The metrics of the report, in column order.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Final validation loss (nats per token).
    ValLoss,
    /// Best (lowest) validation loss over training.
    BestValLoss,
    /// Loss spikes during training.
    Spikes,
    /// F-Attn (queries ≥ 1), mean over heads and layers.
    FirstTokenAttention,
    /// Sink_1^ε, mean over layers.
    Sink,
    /// Largest |h| of a block's output, mean over layers.
    MaxActivation,
    /// Largest |h| over the median |h|, mean over layers.
    Top1Median,
    /// Mean gate score.
    GateMean,
    /// The first token's peak channel (mean |h|) over the median channel, in the block where the
    /// peak appears (the interventions' target).
    PeakRatio,
    /// Loss over the analysis split, as trained (the interventions' reference).
    AnalysisLoss,
    /// That loss with the first token's peak set to 0.
    LossPeakZeroed,
    /// That loss with the peak set to its mean over sequences.
    LossPeakMeaned,
    /// F-Attn with the peak set to 0.
    FirstTokenAttentionPeakZeroed,
    /// F-Attn with the peak set to its mean.
    FirstTokenAttentionPeakMeaned,
    /// F-Attn as a share of each row's mass (equal to F-Attn under softmax).
    FirstTokenShare,
    /// The slot cures' weight on their slot, mean over heads, layers and queries ≥ 1.
    Slot,
    /// Mean row mass `Σ_k A[i, k]` (1 under softmax).
    RowMass,
    /// The streaming probe's perplexity with the first token evicted from the window over that
    /// with it kept (`gatelab eval --window`).
    StreamingRatio,
}

impl Metric {
    /// Every metric, in column order.
    pub const ALL: [Metric; 18] = [
        Metric::ValLoss,
        Metric::BestValLoss,
        Metric::Spikes,
        Metric::FirstTokenAttention,
        Metric::Sink,
        Metric::MaxActivation,
        Metric::Top1Median,
        Metric::GateMean,
        Metric::PeakRatio,
        Metric::AnalysisLoss,
        Metric::LossPeakZeroed,
        Metric::LossPeakMeaned,
        Metric::FirstTokenAttentionPeakZeroed,
        Metric::FirstTokenAttentionPeakMeaned,
        Metric::FirstTokenShare,
        Metric::Slot,
        Metric::RowMass,
        Metric::StreamingRatio,
    ];

    /// Its column name, the same in every table and chart.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ValLoss => "val loss",
            Metric::BestValLoss => "best val loss",
            Metric::Spikes => "spikes",
            Metric::FirstTokenAttention => "F-Attn",
            Metric::Sink => "Sink",
            Metric::MaxActivation => "max act",
            Metric::Top1Median => "top1/median",
            Metric::GateMean => "gate mean",
            Metric::PeakRatio => "peak/median",
            Metric::AnalysisLoss => "loss",
            Metric::LossPeakZeroed => "loss, peak → 0",
            Metric::LossPeakMeaned => "loss, peak → mean",
            Metric::FirstTokenAttentionPeakZeroed => "F-Attn, peak → 0",
            Metric::FirstTokenAttentionPeakMeaned => "F-Attn, peak → mean",
            Metric::FirstTokenShare => "F-Attn share",
            Metric::Slot => "slot",
            Metric::RowMass => "row mass",
            Metric::StreamingRatio => "streaming ratio",
        }
    }

    /// Its key in CSV files.
    pub fn key(self) -> &'static str {
        match self {
            Metric::ValLoss => "val_loss",
            Metric::BestValLoss => "best_val_loss",
            Metric::Spikes => "spikes",
            Metric::FirstTokenAttention => "first_token_attention",
            Metric::Sink => "sink",
            Metric::MaxActivation => "max_activation",
            Metric::Top1Median => "top1_median",
            Metric::GateMean => "gate_mean",
            Metric::PeakRatio => "peak_ratio",
            Metric::AnalysisLoss => "analysis_loss",
            Metric::LossPeakZeroed => "loss_peak_zeroed",
            Metric::LossPeakMeaned => "loss_peak_meaned",
            Metric::FirstTokenAttentionPeakZeroed => "first_token_attention_peak_zeroed",
            Metric::FirstTokenAttentionPeakMeaned => "first_token_attention_peak_meaned",
            Metric::FirstTokenShare => "first_token_share",
            Metric::Slot => "slot",
            Metric::RowMass => "row_mass",
            Metric::StreamingRatio => "streaming_ratio",
        }
    }

    /// Decimals to print.
    pub fn digits(self) -> usize {
        match self {
            Metric::ValLoss
            | Metric::BestValLoss
            | Metric::AnalysisLoss
            | Metric::LossPeakZeroed
            | Metric::LossPeakMeaned => 4,
            Metric::Spikes => 1,
            Metric::MaxActivation | Metric::Top1Median | Metric::PeakRatio => 2,
            _ => 3,
        }
    }

    /// The range the metric cannot leave, if any.
    pub fn bounds(self) -> Option<(f64, f64)> {
        match self {
            Metric::FirstTokenAttention
            | Metric::Sink
            | Metric::GateMean
            | Metric::FirstTokenAttentionPeakZeroed
            | Metric::FirstTokenAttentionPeakMeaned
            | Metric::FirstTokenShare
            | Metric::Slot => Some((0.0, 1.0)),
            Metric::ValLoss
            | Metric::BestValLoss
            | Metric::Spikes
            | Metric::MaxActivation
            | Metric::Top1Median
            | Metric::PeakRatio
            | Metric::AnalysisLoss
            | Metric::LossPeakZeroed
            | Metric::LossPeakMeaned
            | Metric::RowMass
            | Metric::StreamingRatio => Some((0.0, f64::INFINITY)),
        }
    }

    /// Where the number comes from (`docs/metrics.md` defines each).
    pub fn source(self) -> &'static str {
        match self {
            Metric::ValLoss => "the last validation pass (eval.jsonl)",
            Metric::BestValLoss => "the lowest validation pass (eval.jsonl)",
            Metric::Spikes => "training log (metrics.jsonl)",
            Metric::StreamingRatio => "gatelab eval --window (perplexity.json)",
            _ => "the held-out analysis split (analysis.json)",
        }
    }
}

/// What gatelab concludes about one of the paper's claims from one paired difference.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The 95% interval of the paired difference excludes 0 on the side the paper reports.
    Reproduced,
    /// The interval contains 0 and is narrower than the paper's effect on both sides: an effect
    /// of the paper's size would have shown, and none did (or, for the sink, the baseline has no
    /// sink to remove).
    NotAtThisScale,
    /// The interval excludes 0 on the other side.
    Contradicted,
    /// Fewer than two seed pairs, or an interval too wide to tell.
    Inconclusive,
}

impl Verdict {
    /// Its words in tables.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotAtThisScale => "not at this scale",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The rule behind [`Verdict`], printed with every report that shows one.
pub const VERDICT_RULE: &str = "Verdicts (G1 sigmoid gates only, the configuration the paper's claims concern) compare the paired 95% interval of Δ \
with the paper's effect E (Qiu et al. 2025, Table 4, 15A2B MoE: val loss −0.045 nats (perplexity 6.026 → 5.761), F-Attn −0.419 (0.467 → 0.048), \
max act −91% of the baseline's (1053 → 94)), and with a quarter of it, E/4, the smallest difference counted as the paper's effect: reproduced if \
the interval excludes 0 on E's side and the mean reaches E/4; contradicted if it excludes 0 on the other side and the mean reaches E/4 that way; \
not at this scale if neither holds and the interval lies within ±|E| (an effect of the paper's size would have shown, and none did), or if the \
baseline has nothing to remove (F-Attn within twice chance: no sink; top-1 activation under 100× the median: no massive activation); \
inconclusive otherwise, and always with fewer than two seed pairs.";

/// The paper's effect of the G1 gate on `metric`, given the baseline's mean (relative effects
/// scale with it); `None` for metrics the paper makes no claim about.
pub fn paper_effect(metric: Metric, baseline_mean: f64) -> Option<f64> {
    match metric {
        Metric::ValLoss | Metric::BestValLoss => Some((5.761f64 / 6.026).ln()),
        Metric::FirstTokenAttention => Some(0.048 - 0.467),
        Metric::MaxActivation => Some((94.0 / 1053.0 - 1.0) * baseline_mean),
        _ => None,
    }
}

/// The verdict on the paper's claim about `metric` from the paired difference `delta`
/// (gated − baseline) and the baseline's estimate, by [`VERDICT_RULE`]. `chance` is the chance
/// level of F-Attn.
pub fn verdict(
    metric: Metric,
    delta: &Estimate,
    baseline: &BTreeMap<Metric, Estimate>,
    chance: Option<f64>,
) -> Option<Verdict> {
    let base = baseline.get(&metric)?;
    let effect = paper_effect(metric, base.mean)?;
    let nothing_to_remove = match metric {
        Metric::FirstTokenAttention => chance.is_some_and(|c| base.mean <= 2.0 * c),
        Metric::MaxActivation => baseline.get(&Metric::Top1Median).is_some_and(|r| r.mean < 100.0),
        _ => false,
    };
    if nothing_to_remove {
        return Some(Verdict::NotAtThisScale);
    }
    let Some((lo, hi)) = delta.interval().filter(|_| delta.n >= 2) else { return Some(Verdict::Inconclusive) };
    // Oriented so that the paper's effect is negative.
    let (lo, hi, mean, e) = if effect < 0.0 { (lo, hi, delta.mean, -effect) } else { (-hi, -lo, -delta.mean, effect) };
    Some(if hi < 0.0 && mean <= -e / 4.0 {
        Verdict::Reproduced
    } else if lo > 0.0 && mean >= e / 4.0 {
        Verdict::Contradicted
    } else if lo > -e && hi < e {
        Verdict::NotAtThisScale
    } else {
        Verdict::Inconclusive
    })
}

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
    /// input-dependent, head-specific (elementwise or headwise).
    pub fn is_g1_sigmoid(&self) -> bool {
        let g = &self.runs[0].file.config.model.gate;
        let sigmoid_g1 = GateSpec { granularity: g.granularity, ..GateSpec::G1_ELEMENTWISE };
        *g == sigmoid_g1
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
/// are gone or damaged, or a file does not read).
fn finished_numbers(run: &RunDir) -> std::result::Result<(Option<Analysis>, BTreeMap<Metric, f64>), String> {
    if let Some(problem) = run.weights().problem() {
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
        let (analysis, metrics, problem) = match status.is_done().then(|| finished_numbers(&run)) {
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
                    gate: c.gate.label(),
                    params: c.param_count().total,
                    runs: vec![],
                    estimates: BTreeMap::new(),
                    versus_baseline: BTreeMap::new(),
                    baseline: None,
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
    pair_with_baselines(&mut groups);
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

/// A config value as `key=value` prints it.
pub fn show_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn estimate(g: &mut Group) {
    let done: Vec<&GroupRun> = g.runs.iter().filter(|r| r.counts()).collect();
    for metric in Metric::ALL {
        let values: Vec<(u64, f64)> =
            done.iter().filter_map(|r| Some((r.file.meta.seed, *r.metrics.get(&metric)?))).collect();
        if let Some(e) = Estimate::of(&values) {
            g.estimates.insert(metric, e.clipped(metric.bounds().unwrap_or((f64::NEG_INFINITY, f64::INFINITY))));
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

/// The baseline of the same configuration: the ungated group whose config (less the seed) is this
/// group's with the gate removed, on the same backend. A learning-rate sweep pairs each gate with
/// the baseline of its own learning rate; a size ladder, with the baseline of its own size.
///
/// A sink cure without a gate is paired with the plain-softmax configuration that is otherwise
/// identical (the cure's own effect); a cure with a gate, with the same cure without the gate (the
/// gate's effect on top of the cure).
fn pair_with_baselines(groups: &mut [Group]) {
    let reference_key = |g: &Group, softmax: bool| {
        let file = &g.runs[0].file;
        let mut config = file.config_without_seed();
        config.model.gate = GateSpec::BASELINE;
        if softmax {
            config.model.cure = gatelab_model::SinkCure::Softmax;
        }
        pool_key(config, file)
    };
    // Each group's key once (a continued run's reads its parent's config.json).
    let keys: Vec<String> = groups.iter().map(|g| group_key(&g.runs[0].file)).collect();
    for i in 0..groups.len() {
        let cured = !groups[i].runs[0].file.config.model.cure.is_softmax();
        if groups[i].is_baseline() && !cured {
            continue;
        }
        let want = reference_key(&groups[i], groups[i].is_baseline());
        let Some(b) = (0..groups.len()).find(|&b| b != i && groups[b].is_baseline() && keys[b] == want) else {
            continue;
        };
        groups[i].baseline = Some(b);
        let pairs: BTreeMap<Metric, Estimate> = groups[i]
            .estimates
            .iter()
            .filter_map(|(m, e)| Some((*m, e.paired_minus(groups[b].estimates.get(m)?)?)))
            .collect();
        if groups[i].is_g1_sigmoid() {
            let chance = groups[b].chance;
            groups[i].verdicts =
                pairs.iter().filter_map(|(m, d)| Some((*m, verdict(*m, d, &groups[b].estimates, chance)?))).collect();
        }
        groups[i].versus_baseline = pairs;
    }
}

/// What the baseline shows, in words: the first sentence of every report.
pub fn finding(summary: &Summary) -> String {
    let plain = |g: &&Group| g.is_baseline() && g.runs[0].file.config.model.cure.is_softmax();
    let Some(base) = summary.groups.iter().find(plain).or_else(|| summary.groups.iter().find(|g| g.is_baseline()))
    else {
        return "This sweep has no ungated baseline, so it says nothing about whether a gate removes a sink.".into();
    };
    if base.done() == 0 {
        return format!(
            "The baseline ({}) has no finished run, so nothing can be said about sinks yet: {}.",
            base.name(),
            status_words(base)
        );
    }
    let (Some(chance), false) = (base.chance, base.first_token_attention_per_layer.is_empty()) else {
        return format!(
            "The baseline ({}) has finished runs but no analysis.json: run `gatelab analyze` on the sweep folder.",
            base.name()
        );
    };
    let n = base.first_token_attention_per_layer.first().map_or(0, |e| e.n);
    let seeds = if n == 1 { "one seed".to_string() } else { format!("{n} seeds") };
    let sinks: Vec<String> = base
        .first_token_attention_per_layer
        .iter()
        .enumerate()
        .filter(|(_, f)| f.mean > 2.0 * chance)
        .map(|(l, f)| format!("layer {} ({})", l + 1, f.show(3)))
        .collect();
    if sinks.is_empty() {
        let fs: Vec<String> = base.first_token_attention_per_layer.iter().map(|f| format!("{:.3}", f.mean)).collect();
        format!(
            "**The baseline shows no attention sink** ({seeds}): its first-token attention ({}) is within twice the chance level of uniform causal attention ({chance:.3}) in every layer. This sweep therefore cannot show a gate removing a sink; differences between variants below are not evidence of it.",
            fs.join(", ")
        )
    } else {
        format!(
            "The baseline has a first-token sink ({seeds}): F-Attn above twice the chance level ({chance:.3}) in {}.",
            sinks.join(", ")
        )
    }
}

/// Where a group's runs stand, in words: `2 done, 1 diverged`.
pub fn status_words(g: &Group) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &g.runs {
        *counts.entry(r.word()).or_default() += 1;
    }
    counts.iter().map(|(w, n)| format!("{n} {w}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_stated_rule() {
        let est =
            |v: &[f64]| Estimate::of(&v.iter().enumerate().map(|(i, x)| (i as u64, *x)).collect::<Vec<_>>()).unwrap();
        let base: BTreeMap<Metric, Estimate> = [(Metric::ValLoss, est(&[3.0, 3.0, 3.0]))].into();
        // Paper: −0.045 nats. Clearly lower: reproduced; clearly higher: contradicted.
        assert_eq!(verdict(Metric::ValLoss, &est(&[-0.10, -0.11, -0.09]), &base, None), Some(Verdict::Reproduced));
        assert_eq!(verdict(Metric::ValLoss, &est(&[0.10, 0.11, 0.09]), &base, None), Some(Verdict::Contradicted));
        // A difference far below the paper's (a ten-thousandth of a nat), however sure: not at this scale.
        assert_eq!(
            verdict(Metric::ValLoss, &est(&[0.0001, 0.00011, 0.00012]), &base, None),
            Some(Verdict::NotAtThisScale)
        );
        assert_eq!(verdict(Metric::ValLoss, &est(&[0.001, -0.001, 0.0]), &base, None), Some(Verdict::NotAtThisScale));
        // Around 0 and wide, or one seed: cannot tell.
        assert_eq!(verdict(Metric::ValLoss, &est(&[0.5, -0.5, 0.1]), &base, None), Some(Verdict::Inconclusive));
        assert_eq!(verdict(Metric::ValLoss, &est(&[-0.5]), &base, None), Some(Verdict::Inconclusive));
        // No sink in the baseline, or no massive activation: nothing to remove.
        let weak: BTreeMap<Metric, Estimate> = [
            (Metric::FirstTokenAttention, est(&[0.05, 0.06, 0.05])),
            (Metric::MaxActivation, est(&[2.0, 2.1, 1.9])),
            (Metric::Top1Median, est(&[8.0, 9.0, 8.5])),
        ]
        .into();
        assert_eq!(
            verdict(Metric::FirstTokenAttention, &est(&[-0.02, -0.02, -0.03]), &weak, Some(0.035)),
            Some(Verdict::NotAtThisScale)
        );
        assert_eq!(
            verdict(Metric::MaxActivation, &est(&[-1.5, -1.6, -1.4]), &weak, None),
            Some(Verdict::NotAtThisScale)
        );
        assert_eq!(verdict(Metric::Sink, &est(&[-0.02, -0.02, -0.03]), &weak, None), None, "no claim about Sink");
    }

    #[test]
    fn t_intervals_and_paired_differences() {
        assert_eq!(t_quantile_95(2), 4.303);
        assert!((t_quantile_95(120) - 1.980).abs() < 2e-3);
        let e = Estimate::of(&[(0, 1.0), (1, 2.0), (2, 3.0)]).unwrap();
        assert_eq!(e.mean, 2.0);
        // s = 1, half-width t(2) / √3.
        let half = 4.303 / 3f64.sqrt();
        assert!((e.lo.unwrap() - (2.0 - half)).abs() < 1e-12 && (e.hi.unwrap() - (2.0 + half)).abs() < 1e-12);
        assert!(Estimate::of(&[(0, 5.0)]).unwrap().interval().is_none());
        // Paired by seed: a constant shift has no spread, whatever the seeds' own spread.
        let base = Estimate::of(&[(0, 1.0), (1, 5.0), (2, 9.0)]).unwrap();
        let gated = Estimate::of(&[(0, 0.5), (1, 4.5), (2, 8.5)]).unwrap();
        let d = gated.paired_minus(&base).unwrap();
        assert_eq!((d.mean, d.lo, d.hi, d.n), (-0.5, Some(-0.5), Some(-0.5), 3));
        assert_eq!(d.sign(), Some(-1));
        // Only the seeds both have are paired.
        let partial = Estimate::of(&[(1, 6.0), (7, 0.0)]).unwrap();
        assert_eq!(partial.paired_minus(&base).unwrap().n, 1);
    }
}
