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

use crate::error::{AnalysisError, Result};
use crate::run::{load_model, require_done};
use crate::stats::{Accumulator, StatsConfig, mean};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_data::retrieval::{Needle, NeedleConfig};
use gatelab_data::{DataConfig, LmBatcher, LmData, TokenizerSpec};
use gatelab_model::{RopeScaling, Transformer, token_nll};
use gatelab_rundir::{RunDir, runs_under, write_atomic, write_json};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `length.json`.
pub const LENGTH: &str = "length.json";

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
    pub const ALL: [ScalingMethod; 4] =
        [ScalingMethod::None, ScalingMethod::Linear, ScalingMethod::Ntk, ScalingMethod::Yarn];

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
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            AnalysisError::option(
                "--methods",
                format!("unknown RoPE scaling method {s:?}: expected none, linear, ntk or yarn"),
            )
        })
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
            ScalingMethod::Yarn => {
                RopeScaling::Yarn { factor, original_max_position: train_len, beta_fast: 32.0, beta_slow: 1.0 }
            }
        }
    }
}

/// What to measure.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LengthOptions {
    /// Evaluation lengths as multiples of the training length.
    pub factors: Vec<usize>,
    /// Evaluation lengths in tokens instead (when not empty): each run is evaluated at those that
    /// are multiples of its own `T`, so runs trained at different lengths meet at the same ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lengths: Vec<usize>,
    /// Scaling methods.
    pub methods: Vec<ScalingMethod>,
    /// RoPE base at evaluation (the run's when absent).
    #[serde(with = "gatelab_rundir::finite", default)]
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
        Self {
            factors: vec![1, 2, 4, 8],
            lengths: Vec::new(),
            methods: ScalingMethod::ALL.to_vec(),
            rope_theta: None,
            sequences: 64,
            sink_sequences: 16,
            batch_size: 8,
            needle: NeedleConfig::default(),
            stats: StatsConfig::default(),
        }
    }
}

/// Retrieval at one depth.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DepthResult {
    /// The needle's depth (0: first, 1: last).
    #[serde(with = "gatelab_rundir::finite")]
    pub depth: f64,
    /// Share of value tokens predicted (argmax, teacher-forced).
    #[serde(with = "gatelab_rundir::finite")]
    pub accuracy: f64,
    /// Share of probes with every value token right.
    #[serde(with = "gatelab_rundir::finite")]
    pub exact: f64,
    /// Share of value tokens predicted without the needle in the context.
    #[serde(with = "gatelab_rundir::finite")]
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
    #[serde(with = "gatelab_rundir::finite")]
    pub loss: f64,
    /// `exp(loss)`.
    #[serde(with = "gatelab_rundir::finite")]
    pub perplexity: f64,
    /// Targets it rests on.
    pub tokens: usize,
    /// Mean loss of positions `[sT, (s+1)T)`, per segment `s`.
    #[serde(with = "gatelab_rundir::finite")]
    pub segment_loss: Vec<f64>,
    /// Share of the counted targets predicted (argmax): on a recall corpus, the answers recalled
    /// (absent from evaluations written before it).
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub accuracy: Option<f64>,
    /// F-Attn per layer (queries ≥ 1, mean over heads).
    #[serde(with = "gatelab_rundir::finite")]
    pub first_token_attention: Vec<f64>,
    /// F-Attn of uniform causal attention at this length.
    #[serde(with = "gatelab_rundir::finite")]
    pub chance: f64,
    /// Retrieval per depth.
    pub retrieval: Vec<DepthResult>,
    /// Mean accuracy over depths.
    #[serde(with = "gatelab_rundir::finite")]
    pub retrieval_accuracy: f64,
    /// Mean control accuracy over depths.
    #[serde(with = "gatelab_rundir::finite")]
    pub control_accuracy: f64,
}

/// `length.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LengthEval {
    /// The run folder: in `length.json` its name only (so a sweep folder can be moved or copied),
    /// and where [`read_evals`] found it once read.
    pub run: PathBuf,
    /// Its variant.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// The training length `T`.
    pub train_length: usize,
    /// RoPE base at evaluation.
    #[serde(with = "gatelab_rundir::finite")]
    pub rope_theta: f64,
    /// False when held-out windows at other lengths may overlap training text (one packed file).
    pub held_out_clean: bool,
    /// For a recall corpus, the accuracy of guessing a value uniformly (1 / values): the points'
    /// `accuracy` is then recall of the held-out queries' answers.
    #[serde(default)]
    #[serde(with = "gatelab_rundir::finite")]
    pub recall_chance: Option<f64>,
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

    /// The point of `method` at `length` tokens.
    pub fn point_at(&self, method: ScalingMethod, length: usize) -> Option<&LengthPoint> {
        self.points.iter().find(|p| p.method == method && p.length == length)
    }
}

impl LengthOptions {
    /// The factors a run trained at `train_len` is evaluated at: `factors`, or those of `lengths`
    /// that are multiples of `train_len` (empty when none is).
    pub fn factors_for(&self, train_len: usize) -> Vec<usize> {
        if self.lengths.is_empty() {
            return self.factors.clone();
        }
        self.lengths.iter().filter(|&&l| l >= train_len && l.is_multiple_of(train_len)).map(|l| l / train_len).collect()
    }
}

/// The data config of the run at another length (a trained BPE is read from the run's
/// `tokenizer.json` rather than retrained).
fn data_at(run: &RunDir, data: &DataConfig, seq_len: usize) -> DataConfig {
    let saved = run.file(gatelab_rundir::folder::TOKENIZER);
    let tokenizer = match &data.tokenizer {
        TokenizerSpec::Bpe { .. } if saved.is_file() => TokenizerSpec::File { path: saved },
        t => t.clone(),
    };
    DataConfig { seq_len, tokenizer, ..data.clone() }
}

/// Example `i` of a split (a split's own error, from burn-dataset, becomes a data error).
fn example(ds: &impl Dataset<gatelab_data::LmExample>, i: usize) -> Result<gatelab_data::LmExample> {
    Ok(ds.get(i).map_err(|e| gatelab_data::DataError::new(e.to_string()))?)
}

fn batches(
    ds: &impl Dataset<gatelab_data::LmExample>,
    n: usize,
    batch_size: usize,
    batcher: &LmBatcher,
    device: &Device,
) -> Result<Vec<gatelab_data::LmBatch>> {
    let n = n.min(ds.len());
    (0..n)
        .step_by(batch_size)
        .map(|s| {
            let items = (s..(s + batch_size).min(n)).map(|i| example(ds, i)).collect::<Result<Vec<_>>>()?;
            Ok(batcher.batch(items, device))
        })
        .collect()
}

/// `seq_len` filler tokens per probe: held-out text without BOS and PAD, concatenated.
fn fillers(data: &LmData, seq_len: usize, count: usize) -> Result<Vec<Vec<u32>>> {
    let mut stream = Vec::new();
    let mut out: Vec<Vec<u32>> = Vec::new();
    let sources = [&data.valid, &data.analysis];
    'outer: for ds in sources {
        for i in 0..ds.len() {
            let ex = example(ds, i)?;
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
        return Err(AnalysisError::option(
            "needle",
            format!("the held-out splits hold fewer than {seq_len} tokens for the needle probe"),
        ));
    }
    // Too little held-out text: fillers are reused (their needles still differ).
    let distinct = out.len();
    for k in distinct..count {
        out.push(out[k % distinct].clone());
    }
    Ok(out)
}

/// Held-out scores of `batches` under `model`, over the targets their masks count.
struct Scores {
    /// Mean loss.
    loss: f64,
    /// Targets counted.
    tokens: usize,
    /// Mean loss per segment of `t` positions.
    segment_loss: Vec<f64>,
    /// Share of targets that are the argmax prediction.
    accuracy: f64,
}

/// Loss (total and per segment of `t` positions) and argmax accuracy of `batches` under `model`.
fn score(model: &Transformer, batches: &[gatelab_data::LmBatch], t: usize) -> Scores {
    let mut seg: Vec<(f64, f64)> = Vec::new();
    let mut right = 0.0;
    for b in batches {
        let [n, len] = b.targets.dims();
        let logits = model.forward(b.inputs.clone());
        let predicted: Vec<i64> = logits.clone().argmax(2).into_data().iter::<i64>().collect();
        let targets: Vec<i64> = b.targets.clone().into_data().iter::<i64>().collect();
        let nll: Vec<f32> = token_nll(logits, b.targets.clone()).into_data().iter::<f32>().collect();
        let mask: Vec<f32> = b.mask.clone().into_data().iter::<f32>().collect();
        seg.resize(len.div_ceil(t), (0.0, 0.0));
        for i in 0..n * len {
            let s = (i % len) / t;
            seg[s].0 += (nll[i] * mask[i]) as f64;
            seg[s].1 += mask[i] as f64;
            right += if predicted[i] == targets[i] { mask[i] as f64 } else { 0.0 };
        }
    }
    let (sum, count) = seg.iter().fold((0.0, 0.0), |(a, b), (s, c)| (a + s, b + c));
    Scores {
        loss: sum / count.max(1.0),
        tokens: count as usize,
        segment_loss: seg.iter().map(|(s, c)| if *c > 0.0 { s / c } else { f64::NAN }).collect(),
        accuracy: right / count.max(1.0),
    }
}

/// Argmax predictions at the answer positions of `probes`, against their values: (right tokens,
/// fully right probes).
fn retrieve(
    model: &Transformer,
    probes: &[Needle],
    control: bool,
    batch_size: usize,
    device: &Device,
) -> (usize, usize) {
    let (mut right, mut exact) = (0, 0);
    for chunk in probes.chunks(batch_size) {
        let len = chunk[0].tokens.len() - 1;
        let ids: Vec<i32> = chunk
            .iter()
            .flat_map(|p| (if control { &p.control } else { &p.tokens })[..len].iter().map(|&t| t as i32))
            .collect();
        let inputs = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), len]), device);
        let answer = chunk[0].answer.clone();
        let logits = model.forward(inputs);
        let [b, _, v] = logits.dims();
        let predicted: Vec<i64> =
            logits.slice([0..b, answer.clone(), 0..v]).argmax(2).into_data().iter::<i64>().collect();
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
pub fn eval_length(
    run: &RunDir,
    device: &Device,
    options: &LengthOptions,
    mut progress: impl FnMut(&str),
) -> Result<LengthEval> {
    require_done(run)?;
    if options.factors.is_empty() || options.factors.contains(&0) || options.methods.is_empty() {
        return Err(AnalysisError::option("eval-length", "needs at least one factor (each ≥ 1) and one method"));
    }
    let file = run.read_file()?;
    let (variant, seed, model_cfg, data_cfg) = (file.meta.variant, file.meta.seed, file.config.model, file.config.data);
    let t = data_cfg.seq_len;
    let factors = options.factors_for(t);
    if factors.is_empty() {
        let lengths = options.lengths.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        return Err(AnalysisError::run(
            &run.path,
            format!("trained at T = {t}: none of the lengths {lengths} is a multiple of it"),
        ));
    }
    let theta = options.rope_theta.unwrap_or(model_cfg.rope_theta);
    let model = load_model(run, &model_cfg, device)?;
    // A recall corpus's probe asks what it trained: one key, one value, as its pairs are.
    let recall_chance = match &data_cfg.corpus {
        gatelab_data::CorpusSpec::Mqar(m) => Some(1.0 / m.keys() as f64),
        _ => None,
    };
    let mut options = options.clone();
    if recall_chance.is_some() {
        (options.needle.key_len, options.needle.value_len, options.needle.from_text) = (1, 1, false);
    }
    let options = &options;
    let mut points: Vec<LengthPoint> = Vec::new();
    let mut clean = true;
    for &factor in &factors {
        let length = factor * t;
        options.needle.validate(length)?;
        let data = data_at(run, &data_cfg, length).prepare()?;
        clean &= !(data.packed && factor != 1);
        let batcher = LmBatcher { pad: data.vocab.pad };
        let valid = batches(&data.valid, options.sequences, options.batch_size, &batcher, device)?;
        let sink = batches(&data.analysis, options.sink_sequences, options.batch_size, &batcher, device)?;
        if valid.is_empty() || sink.is_empty() {
            return Err(AnalysisError::run(&run.path, format!("no held-out sequences of length {length}")));
        }
        let n = options.needle.samples;
        let fill = fillers(&data, length, options.needle.depths.len() * n)?;
        let specials = [data.vocab.bos, data.vocab.eos, data.vocab.pad];
        // Keys and values are spans of held-out text (the fillers'), or a recall corpus's own.
        let pool: Vec<u32> = fill.iter().flatten().copied().collect();
        let plant = |filler: &[u32], d: f64, s: usize| match &data.recall {
            Some(ids) => options.needle.plant_recall(filler, d, s, data.vocab.bos, ids),
            None => options.needle.plant(filler, d, s, data.vocab.size, specials, &pool),
        };
        let probes: Vec<Vec<Needle>> = options
            .needle
            .depths
            .iter()
            .enumerate()
            .map(|(k, &d)| (0..n).map(|s| plant(&fill[k * n + s], d, s)).collect())
            .collect();
        for &method in &options.methods {
            let scaling = method.at(factor as f64, t);
            // Every method is plain RoPE at factor 1: measured once.
            if let Some(same) = points.iter().find(|p| p.factor == factor && p.scaling == scaling && p.method != method)
            {
                points.push(LengthPoint { method, ..same.clone() });
                continue;
            }
            let started = std::time::Instant::now();
            let m = model.clone().with_rope(theta, scaling)?;
            let Scores { loss, tokens, segment_loss, accuracy } = score(&m, &valid, t);
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
                    DepthResult {
                        depth: ps[0].depth,
                        accuracy: right as f64 / tokens,
                        exact: exact as f64 / ps.len() as f64,
                        control: control as f64 / tokens,
                        samples: ps.len(),
                    }
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
                accuracy: Some(accuracy),
                first_token_attention: stats.layers.iter().map(|l| l.first_token_attention[1]).collect(),
                chance: stats.chance_first_token_attention[1],
                retrieval_accuracy: over_depths(|d| d.accuracy),
                control_accuracy: over_depths(|d| d.control),
                retrieval,
            };
            progress(&format!(
                "{variant} {}×T={length} {}: ppl {:.3}, accuracy {:.3}, F-Attn {:.3}, retrieval {:.3} (control {:.3}) [{:.1} s]",
                factor,
                method.name(),
                point.perplexity,
                accuracy,
                point.mean_first_token_attention(),
                point.retrieval_accuracy,
                point.control_accuracy,
                started.elapsed().as_secs_f64()
            ));
            points.push(point);
        }
    }
    let eval = LengthEval {
        run: run.path.clone(),
        variant,
        seed,
        train_length: t,
        rope_theta: theta,
        held_out_clean: clean,
        recall_chance,
        options: options.clone(),
        points,
    };
    write_run_files(run, &eval)?;
    Ok(eval)
}

fn write_run_files(run: &RunDir, eval: &LengthEval) -> Result<()> {
    write_json(&run.file(LENGTH), &LengthEval { run: run.name().into(), ..eval.clone() })?;
    let mut csv = String::from(
        "method,factor,length,loss,perplexity,accuracy,last_segment_loss,first_token_attention,chance,retrieval_accuracy,control_accuracy\n",
    );
    for p in &eval.points {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{}",
            p.method.name(),
            p.factor,
            p.length,
            p.loss,
            p.perplexity,
            p.accuracy.unwrap_or(f64::NAN),
            p.segment_loss.last().copied().unwrap_or(f64::NAN),
            p.mean_first_token_attention(),
            p.chance,
            p.retrieval_accuracy,
            p.control_accuracy
        );
    }
    write_atomic(&run.file("length.csv"), csv.as_bytes())?;
    let mut csv = String::from("method,length,depth,accuracy,exact,control,samples\n");
    for p in &eval.points {
        for d in &p.retrieval {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{}",
                p.method.name(),
                p.length,
                d.depth,
                d.accuracy,
                d.exact,
                d.control,
                d.samples
            );
        }
    }
    Ok(write_atomic(&run.file("retrieval.csv"), csv.as_bytes())?)
}

/// The `length.json` of every run under `sweep` that has one, each naming the folder it was
/// read from (whatever path it was written with).
pub fn read_evals(sweep: &Path) -> Result<Vec<LengthEval>> {
    let mut evals = Vec::new();
    for run in runs_under(sweep)? {
        let path = run.file(LENGTH);
        if path.is_file() {
            let eval: LengthEval = gatelab_rundir::read_json(&path)?;
            evals.push(LengthEval { run: run.path.clone(), ..eval });
        }
    }
    Ok(evals)
}
