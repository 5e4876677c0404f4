//! Length generalisation of a finished run (the paper's §5 and Table 5 at the scale of a run
//! folder): a model trained at length `T` is evaluated at `T, 2T, 4T, 8T` (configurable) under
//! each RoPE scaling method, chosen at evaluation time on the same weights
//! ([`Transformer::with_rope`]):
//!
//! - **perplexity** on held-out sequences of each length, overall and per segment of `T`
//!   positions (the last segment is what the model never saw positions for);
//! - **first-token attention** per layer at each length (does the sink grow with context?);
//! - a **needle probe** ([`gatelab_data::retrieval`]): key–value retrieval accuracy by length and
//!   depth, beside the same sequences without the needle (the control).
//!
//! Sequences are streamed a batch at a time; sequences longer than a query tile are probed lean
//! (no `[seq, seq]` maps kept), so memory is bounded by one batch. Results go beside the run:
//! `length.json`, `length.csv` and `retrieval.csv`.
//!
//! Held-out text: the synthetic corpora and corpora of several documents (split by document)
//! give held-out sequences at every length. A single packed file is cut into windows anew at each
//! length, so its held-out windows may overlap text trained on; `held_out_clean` says so.

use crate::run::{RunInfo, is_done, load_model, read_run};
use crate::stats::{Accumulator, StatsConfig, mean};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_data::retrieval::{Needle, NeedleConfig};
use gatelab_data::{DataConfig, LmBatcher, LmData, TokenizerSpec};
use gatelab_model::{RopeScaling, Transformer, token_nll};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A RoPE scaling method, applied at each evaluation length with factor `length / T`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ScalingMethod {
    /// Plain RoPE, extrapolated.
    None,
    /// Position interpolation.
    Linear,
    /// NTK-aware base scaling.
    Ntk,
    /// YaRN, with `original_max_position = T`.
    Yarn,
}

impl ScalingMethod {
    /// All four, in the order of the report.
    pub const ALL: [ScalingMethod; 4] = [ScalingMethod::None, ScalingMethod::Linear, ScalingMethod::Ntk, ScalingMethod::Yarn];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ScalingMethod::None => "none",
            ScalingMethod::Linear => "linear",
            ScalingMethod::Ntk => "ntk",
            ScalingMethod::Yarn => "yarn",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| format!("unknown RoPE scaling method {s:?}: expected none, linear, ntk or yarn"))
    }

    /// The scaling at `factor` for a model trained at `train_len`. At factor 1 every method is
    /// plain RoPE.
    pub fn at(self, factor: f64, train_len: usize) -> RopeScaling {
        if factor <= 1.0 {
            return RopeScaling::None;
        }
        match self {
            ScalingMethod::None => RopeScaling::None,
            ScalingMethod::Linear => RopeScaling::Linear { factor },
            ScalingMethod::Ntk => RopeScaling::Ntk { factor },
            ScalingMethod::Yarn => RopeScaling::Yarn { factor, original_max_position: train_len, beta_fast: 32.0, beta_slow: 1.0 },
        }
    }
}

/// What to measure.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LengthOptions {
    /// Evaluation lengths as multiples of the training length.
    pub factors: Vec<usize>,
    /// Scaling methods.
    pub methods: Vec<ScalingMethod>,
    /// RoPE base at evaluation (the run's when absent).
    pub rope_theta: Option<f64>,
    /// Held-out sequences per length for perplexity.
    pub sequences: usize,
    /// Held-out sequences per length for first-token attention.
    pub sink_sequences: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// The needle probe.
    pub needle: NeedleConfig,
    /// The statistics' settings (query tile).
    pub stats: StatsConfig,
}

impl Default for LengthOptions {
    fn default() -> Self {
        Self { factors: vec![1, 2, 4, 8], methods: ScalingMethod::ALL.to_vec(), rope_theta: None, sequences: 64, sink_sequences: 16, batch_size: 8, needle: NeedleConfig::default(), stats: StatsConfig::default() }
    }
}

/// Retrieval at one depth.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DepthResult {
    /// The needle's depth (0: first, 1: last).
    pub depth: f64,
    /// Share of value tokens predicted (argmax, teacher-forced).
    pub accuracy: f64,
    /// Share of probes with every value token right.
    pub exact: f64,
    /// Share of value tokens predicted without the needle in the context.
    pub control: f64,
    /// Probes.
    pub samples: usize,
}

/// One (method, length) point.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LengthPoint {
    /// The method.
    pub method: ScalingMethod,
    /// `length / T`.
    pub factor: usize,
    /// Tokens the model reads.
    pub length: usize,
    /// The RoPE scaling used.
    pub scaling: RopeScaling,
    /// Mean held-out loss over real targets.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Targets it rests on.
    pub tokens: usize,
    /// Mean loss of positions `[sT, (s+1)T)`, per segment `s`.
    pub segment_loss: Vec<f64>,
    /// F-Attn per layer (queries ≥ 1, mean over heads).
    pub first_token_attention: Vec<f64>,
    /// F-Attn of uniform causal attention at this length.
    pub chance: f64,
    /// Retrieval per depth.
    pub retrieval: Vec<DepthResult>,
    /// Mean accuracy over depths.
    pub retrieval_accuracy: f64,
    /// Mean control accuracy over depths.
    pub control_accuracy: f64,
}

/// `length.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LengthEval {
    /// The run folder.
    pub run: PathBuf,
    /// Its variant.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// The training length `T`.
    pub train_length: usize,
    /// RoPE base at evaluation.
    pub rope_theta: f64,
    /// False when held-out windows at other lengths may overlap training text (one packed file).
    pub held_out_clean: bool,
    /// What was measured.
    pub options: LengthOptions,
    /// Per method and length.
    pub points: Vec<LengthPoint>,
}

impl LengthPoint {
    /// First-token attention, mean over layers.
    pub fn mean_first_token_attention(&self) -> f64 {
        mean(self.first_token_attention.iter().copied())
    }
}

impl LengthEval {
    /// The point of `method` at `factor`.
    pub fn point(&self, method: ScalingMethod, factor: usize) -> Option<&LengthPoint> {
        self.points.iter().find(|p| p.method == method && p.factor == factor)
    }
}

/// The data config of the run at another length (a trained BPE is read from the run's
/// `tokenizer.json` rather than retrained).
fn data_at(dir: &Path, data: &DataConfig, seq_len: usize) -> DataConfig {
    let tokenizer = match &data.tokenizer {
        TokenizerSpec::Bpe { .. } if dir.join("tokenizer.json").is_file() => TokenizerSpec::File { path: dir.join("tokenizer.json") },
        t => t.clone(),
    };
    DataConfig { seq_len, tokenizer, ..data.clone() }
}

fn batches(ds: &impl Dataset<gatelab_data::LmExample>, n: usize, batch_size: usize, batcher: &LmBatcher, device: &Device) -> Result<Vec<gatelab_data::LmBatch>, String> {
    let n = n.min(ds.len());
    (0..n)
        .step_by(batch_size)
        .map(|s| {
            let items = (s..(s + batch_size).min(n)).map(|i| ds.get(i).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
            Ok(batcher.batch(items, device))
        })
        .collect()
}

/// `seq_len` filler tokens per probe: held-out text without BOS and PAD, concatenated.
fn fillers(data: &LmData, seq_len: usize, count: usize) -> Result<Vec<Vec<u32>>, String> {
    let mut stream = Vec::new();
    let mut out: Vec<Vec<u32>> = Vec::new();
    let sources = [&data.valid, &data.analysis];
    'outer: for ds in sources {
        for i in 0..ds.len() {
            let ex = ds.get(i).map_err(|e| e.to_string())?;
            stream.extend(ex.tokens[1..].iter().copied().filter(|&t| t != data.vocab.pad && t != data.vocab.bos));
            while stream.len() >= seq_len {
                out.push(stream.drain(..seq_len).collect());
                if out.len() == count {
                    break 'outer;
                }
            }
        }
    }
    if out.is_empty() {
        return Err(format!("the held-out splits hold fewer than {seq_len} tokens for the needle probe"));
    }
    // Too little held-out text: fillers are reused (their needles still differ).
    let distinct = out.len();
    for k in distinct..count {
        out.push(out[k % distinct].clone());
    }
    Ok(out)
}

/// Loss of `batches` under `model`: total, per segment of `t` positions.
fn perplexity(model: &Transformer, batches: &[gatelab_data::LmBatch], t: usize) -> (f64, usize, Vec<f64>) {
    let mut seg: Vec<(f64, f64)> = Vec::new();
    for b in batches {
        let [n, len] = b.targets.dims();
        let nll: Vec<f32> = token_nll(model.forward(b.inputs.clone()), b.targets.clone()).into_data().iter::<f32>().collect();
        let mask: Vec<f32> = b.mask.clone().into_data().iter::<f32>().collect();
        seg.resize(len.div_ceil(t), (0.0, 0.0));
        for i in 0..n * len {
            let s = (i % len) / t;
            seg[s].0 += (nll[i] * mask[i]) as f64;
            seg[s].1 += mask[i] as f64;
        }
    }
    let (sum, count) = seg.iter().fold((0.0, 0.0), |(a, b), (s, c)| (a + s, b + c));
    (sum / count.max(1.0), count as usize, seg.iter().map(|(s, c)| if *c > 0.0 { s / c } else { f64::NAN }).collect())
}

/// Argmax predictions at the answer positions of `probes`, against their values: (right tokens,
/// fully right probes).
fn retrieve(model: &Transformer, probes: &[Needle], control: bool, batch_size: usize, device: &Device) -> (usize, usize) {
    let (mut right, mut exact) = (0, 0);
    for chunk in probes.chunks(batch_size) {
        let len = chunk[0].tokens.len() - 1;
        let ids: Vec<i32> = chunk.iter().flat_map(|p| (if control { &p.control } else { &p.tokens })[..len].iter().map(|&t| t as i32)).collect();
        let inputs = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), len]), device);
        let answer = chunk[0].answer.clone();
        let logits = model.forward(inputs);
        let [b, _, v] = logits.dims();
        let predicted: Vec<i64> = logits.slice([0..b, answer.clone(), 0..v]).argmax(2).into_data().iter::<i64>().collect();
        for (k, p) in chunk.iter().enumerate() {
            let got = &predicted[k * answer.len()..(k + 1) * answer.len()];
            let ok = got.iter().zip(&p.value).filter(|(g, v)| **g == **v as i64).count();
            right += ok;
            exact += usize::from(ok == p.value.len());
        }
    }
    (right, exact)
}

/// Evaluates a finished run at every length and method, writing `length.json`, `length.csv` and
/// `retrieval.csv` beside it. `progress` hears one line per (length, method).
pub fn eval_length(dir: &Path, device: &Device, options: &LengthOptions, mut progress: impl FnMut(&str)) -> Result<LengthEval, String> {
    if !is_done(dir) {
        return Err(format!("{}: not a finished run (status.json is not done)", dir.display()));
    }
    if options.factors.is_empty() || options.factors.contains(&0) || options.methods.is_empty() {
        return Err("eval-length: needs at least one factor (each ≥ 1) and one method".into());
    }
    let RunInfo { variant, seed, model: model_cfg, data: data_cfg, .. } = read_run(dir)?;
    let t = data_cfg.seq_len;
    let theta = options.rope_theta.unwrap_or(model_cfg.rope_theta);
    let model = load_model(dir, &model_cfg, device)?;
    let mut points: Vec<LengthPoint> = Vec::new();
    let mut clean = true;
    for &factor in &options.factors {
        let length = factor * t;
        options.needle.validate(length)?;
        let data = data_at(dir, &data_cfg, length).prepare().map_err(|e| e.to_string())?;
        clean &= !(data.packed && factor != 1);
        let batcher = LmBatcher { pad: data.vocab.pad };
        let valid = batches(&data.valid, options.sequences, options.batch_size, &batcher, device)?;
        let sink = batches(&data.analysis, options.sink_sequences, options.batch_size, &batcher, device)?;
        if valid.is_empty() || sink.is_empty() {
            return Err(format!("{}: no held-out sequences of length {length}", dir.display()));
        }
        let n = options.needle.samples;
        let fill = fillers(&data, length, options.needle.depths.len() * n)?;
        let specials = [data.vocab.bos, data.vocab.eos, data.vocab.pad];
        // Keys and values are spans of held-out text (the fillers').
        let pool: Vec<u32> = fill.iter().flatten().copied().collect();
        let probes: Vec<Vec<Needle>> = options
            .needle
            .depths
            .iter()
            .enumerate()
            .map(|(k, &d)| (0..n).map(|s| options.needle.plant(&fill[k * n + s], d, s, data.vocab.size, specials, &pool)).collect())
            .collect();
        for &method in &options.methods {
            let scaling = method.at(factor as f64, t);
            // Every method is plain RoPE at factor 1: measured once.
            if let Some(same) = points.iter().find(|p| p.factor == factor && p.scaling == scaling && p.method != method) {
                points.push(LengthPoint { method, ..same.clone() });
                continue;
            }
            let started = std::time::Instant::now();
            let m = model.clone().with_rope(theta, scaling).map_err(|e| e.to_string())?;
            let (loss, tokens, segment_loss) = perplexity(&m, &valid, t);
            let mut acc = Accumulator::new(options.stats.clone());
            for b in &sink {
                acc.observe(&m, b.inputs.clone());
            }
            let stats = acc.finish();
            let retrieval: Vec<DepthResult> = probes
                .iter()
                .map(|ps| {
                    let (right, exact) = retrieve(&m, ps, false, options.batch_size, device);
                    let (control, _) = retrieve(&m, ps, true, options.batch_size, device);
                    let tokens = (ps.len() * options.needle.value_len) as f64;
                    DepthResult { depth: ps[0].depth, accuracy: right as f64 / tokens, exact: exact as f64 / ps.len() as f64, control: control as f64 / tokens, samples: ps.len() }
                })
                .collect();
            let over_depths = |f: fn(&DepthResult) -> f64| mean(retrieval.iter().map(f));
            let point = LengthPoint {
                method,
                factor,
                length,
                scaling,
                loss,
                perplexity: loss.exp(),
                tokens,
                segment_loss,
                first_token_attention: stats.layers.iter().map(|l| l.first_token_attention[1]).collect(),
                chance: stats.chance_first_token_attention[1],
                retrieval_accuracy: over_depths(|d| d.accuracy),
                control_accuracy: over_depths(|d| d.control),
                retrieval,
            };
            progress(&format!(
                "{variant} {}×T={length} {}: ppl {:.3}, F-Attn {:.3}, retrieval {:.3} (control {:.3}) [{:.1} s]",
                factor,
                method.name(),
                point.perplexity,
                point.mean_first_token_attention(),
                point.retrieval_accuracy,
                point.control_accuracy,
                started.elapsed().as_secs_f64()
            ));
            points.push(point);
        }
    }
    let eval = LengthEval { run: dir.to_path_buf(), variant, seed, train_length: t, rope_theta: theta, held_out_clean: clean, options: options.clone(), points };
    write_run_files(dir, &eval)?;
    Ok(eval)
}

fn write_run_files(dir: &Path, eval: &LengthEval) -> Result<(), String> {
    crate::write_atomic(&dir.join("length.json"), &(serde_json::to_string_pretty(eval).map_err(|e| e.to_string())? + "\n"))?;
    let mut csv = String::from("method,factor,length,loss,perplexity,last_segment_loss,first_token_attention,chance,retrieval_accuracy,control_accuracy\n");
    for p in &eval.points {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            p.method.name(),
            p.factor,
            p.length,
            p.loss,
            p.perplexity,
            p.segment_loss.last().copied().unwrap_or(f64::NAN),
            p.mean_first_token_attention(),
            p.chance,
            p.retrieval_accuracy,
            p.control_accuracy
        );
    }
    crate::write_atomic(&dir.join("length.csv"), &csv)?;
    let mut csv = String::from("method,length,depth,accuracy,exact,control,samples\n");
    for p in &eval.points {
        for d in &p.retrieval {
            let _ = writeln!(csv, "{},{},{},{},{},{},{}", p.method.name(), p.length, d.depth, d.accuracy, d.exact, d.control, d.samples);
        }
    }
    crate::write_atomic(&dir.join("retrieval.csv"), &csv)
}

/// The `length.json` of every run under `sweep` that has one.
pub fn read_evals(sweep: &Path) -> Vec<LengthEval> {
    crate::run::runs_under(sweep)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("length.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

/// Per variant (in the order of first appearance, as the report's colours), its evaluations.
fn by_variant(evals: &[LengthEval]) -> Vec<(String, Vec<&LengthEval>)> {
    let mut out: Vec<(String, Vec<&LengthEval>)> = Vec::new();
    for e in evals {
        match out.iter_mut().find(|(v, _)| *v == e.variant) {
            Some((_, list)) => list.push(e),
            None => out.push((e.variant.clone(), vec![e])),
        }
    }
    out
}

/// Mean over a variant's runs of `f` at (method, factor), where measured.
fn over_seeds(runs: &[&LengthEval], method: ScalingMethod, factor: usize, f: impl Fn(&LengthPoint) -> f64) -> f64 {
    mean(runs.iter().filter_map(|e| e.point(method, factor)).map(f))
}

/// The sweep's length charts and `length_summary.md` / `length_summary.csv`: perplexity and
/// first-token attention against length per variant (one chart per method), and retrieval
/// accuracy as length × depth heat maps (variant × method). Means over seeds.
pub fn write_report(sweep: &Path, evals: &[LengthEval]) -> Result<Vec<crate::report::ChartFile>, String> {
    use crate::charts::{HeatGrid, HeatPanel, LineChart, Series, heat_grid, line_chart};
    let Some(first) = evals.first() else { return Ok(vec![]) };
    let groups = by_variant(evals);
    let mut methods: Vec<ScalingMethod> = ScalingMethod::ALL.into_iter().filter(|m| evals.iter().any(|e| e.points.iter().any(|p| p.method == *m))).collect();
    methods.dedup();
    let mut factors: Vec<usize> = evals.iter().flat_map(|e| e.points.iter().map(|p| p.factor)).collect();
    factors.sort_unstable();
    factors.dedup();
    let t = first.train_length;
    let mut out = Vec::new();
    let clean = if evals.iter().all(|e| e.held_out_clean) { "" } else { " Held-out windows beyond T may overlap training text (one packed file)." };
    for &m in &methods {
        let series = |f: &dyn Fn(&LengthPoint) -> f64| -> Vec<Series> {
            groups
                .iter()
                .enumerate()
                .map(|(i, (v, runs))| Series {
                    label: v.clone(),
                    colour: i,
                    points: factors.iter().map(|&k| ((k * t) as f64, over_seeds(runs, m, k, f))).filter(|(_, y)| y.is_finite()).collect(),
                    dashed: false,
                    markers: true,
                })
                .collect()
        };
        let stem = format!("length_perplexity_{}", m.name());
        let chart = LineChart {
            title: format!("Perplexity beyond the training length (RoPE scaling: {})", m.name()),
            x_label: format!("evaluation length (tokens; trained at {t})"),
            y_label: "held-out perplexity".into(),
            aggregation: format!("{} held-out sequences per length, every target position; factor = length / {t}; mean over seeds.{clean}", first.options.sequences),
            series: series(&|p| p.perplexity),
            integer_x: false,
        };
        line_chart(sweep, &stem, &chart)?;
        out.push(crate::report::ChartFile { stem, caption: chart.aggregation });
        let mut fattn = series(&|p| p.mean_first_token_attention());
        let chance: Vec<(f64, f64)> = factors.iter().filter_map(|&k| evals.iter().find_map(|e| e.point(m, k)).map(|p| ((k * t) as f64, p.chance))).collect();
        fattn.push(Series { label: "chance (uniform causal)".into(), colour: 9, points: chance, dashed: true, markers: false });
        let stem = format!("length_first_token_{}", m.name());
        let chart = LineChart {
            title: format!("First-token attention against context length (RoPE scaling: {})", m.name()),
            x_label: format!("evaluation length (tokens; trained at {t})"),
            y_label: "attention on position 0 (probability)".into(),
            aggregation: format!("Mean over layers, heads and queries ≥ 1 of {} held-out sequences per length; mean over seeds.", first.options.sink_sequences),
            series: fattn,
            integer_x: false,
        };
        line_chart(sweep, &stem, &chart)?;
        out.push(crate::report::ChartFile { stem, caption: chart.aggregation });
    }
    let depths = first.options.needle.depths.clone();
    let panels = groups
        .iter()
        .flat_map(|(v, runs)| {
            let (factors, depths) = (&factors, &depths);
            methods.iter().map(move |&m| HeatPanel {
                title: format!("{v} · {}", m.name()),
                rows: factors.iter().map(|k| format!("{}", k * t)).collect(),
                cols: depths.iter().map(|d| format!("{d}")).collect(),
                values: factors
                    .iter()
                    .map(|&k| depths.iter().map(|&d| over_seeds(runs, m, k, |p| p.retrieval.iter().find(|r| r.depth == d).map_or(f64::NAN, |r| r.accuracy))).collect())
                    .collect(),
            })
        })
        .collect();
    let grid = HeatGrid {
        title: "Needle retrieval accuracy by length and depth".into(),
        row_label: "length (tokens)".into(),
        col_label: "needle depth".into(),
        value_label: "value tokens right".into(),
        aggregation: format!(
            "{} probes per cell: a {}-token key and {}-token value ({}) planted in held-out text, queried at the end; argmax, teacher-forced; mean over seeds.",
            first.options.needle.samples,
            first.options.needle.key_len,
            first.options.needle.value_len,
            if first.options.needle.from_text { "spans of held-out text" } else { "random tokens" }
        ),
        panels,
        columns: methods.len(),
    };
    heat_grid(sweep, "length_retrieval", &grid)?;
    out.push(crate::report::ChartFile { stem: "length_retrieval".into(), caption: grid.aggregation });
    // The tables.
    let mut md = format!("# Length generalisation: {}\n\nTrained at T = {t}; RoPE base {} at evaluation.{clean}\n\n", sweep.display(), first.rope_theta);
    let head: Vec<String> = factors.iter().map(|k| format!("{}T", k)).collect();
    let _ = writeln!(md, "Held-out perplexity:\n\n| variant | method | {} |\n|---|---|{}", head.join(" | "), "---:|".repeat(factors.len()));
    let mut csv = String::from("variant,method,factor,length,perplexity,last_segment_loss,first_token_attention,retrieval_accuracy,control_accuracy,runs\n");
    for (v, runs) in &groups {
        for &m in &methods {
            let cells: Vec<String> = factors.iter().map(|&k| format!("{:.3}", over_seeds(runs, m, k, |p| p.perplexity))).collect();
            let _ = writeln!(md, "| {v} | {} | {} |", m.name(), cells.join(" | "));
            for &k in &factors {
                let _ = writeln!(
                    csv,
                    "{v},{},{k},{},{},{},{},{},{},{}",
                    m.name(),
                    k * t,
                    over_seeds(runs, m, k, |p| p.perplexity),
                    over_seeds(runs, m, k, |p| p.segment_loss.last().copied().unwrap_or(f64::NAN)),
                    over_seeds(runs, m, k, |p| p.mean_first_token_attention()),
                    over_seeds(runs, m, k, |p| p.retrieval_accuracy),
                    over_seeds(runs, m, k, |p| p.control_accuracy),
                    runs.len()
                );
            }
        }
    }
    let _ = writeln!(md, "\nFirst-token attention (mean over layers) and needle retrieval (control without the needle) per length:\n\n| variant | method | {} |\n|---|---|{}", head.join(" | "), "---:|".repeat(factors.len()));
    for (v, runs) in &groups {
        for &m in &methods {
            let cells: Vec<String> = factors
                .iter()
                .map(|&k| format!("{:.3} · {:.2} ({:.2})", over_seeds(runs, m, k, |p| p.mean_first_token_attention()), over_seeds(runs, m, k, |p| p.retrieval_accuracy), over_seeds(runs, m, k, |p| p.control_accuracy)))
                .collect();
            let _ = writeln!(md, "| {v} | {} | {} |", m.name(), cells.join(" | "));
        }
    }
    crate::write_atomic(&sweep.join("length_summary.md"), &md)?;
    crate::write_atomic(&sweep.join("length_summary.csv"), &csv)?;
    Ok(out)
}
