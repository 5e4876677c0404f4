//! Held-out perplexity of a finished run, and the streaming probe (StreamingLLM, Xiao et al. 2023,
//! arXiv 2309.17453): the same positions scored under a sliding window of `W` keys with the first
//! token kept in the window and with it evicted, against full attention. A model that leans on
//! its sink loses much more when the first token is evicted; the ratio of the two perplexities
//! says how much. Definitions: `docs/metrics.md`.
//!
//! Text is scored as `analyze --hf` reads it: the run's tokenizer turns the file into one stream
//! (an EOS after each document), cut into windows of `seq_len` tokens, each after BOS; a window's
//! `seq_len` targets are its tokens, predicted from BOS and the tokens before them.

use crate::error::{AnalysisError, Result};
use crate::run::{load_model, require_done};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use gatelab_data::corpus::load_text;
use gatelab_data::{LmBatcher, Tokenizer};
use gatelab_model::{Transformer, token_nll};
use gatelab_rundir::RunDir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `gatelab eval` leaves its result on the run's validation split in a run folder (the
/// report reads the streaming ratio from it). A `--text` result goes beside it, in
/// [`result_file`]'s name for that text, and never replaces it.
pub const PERPLEXITY: &str = "perplexity.json";

/// The file in a run folder for a result on `text` (`perplexity-text-<name>.json`, the text's
/// file name with anything but letters, digits, `-`, `_` and `.` as `_`), or on the validation
/// split ([`PERPLEXITY`]).
pub fn result_file(text: Option<&Path>) -> String {
    let Some(text) = text else { return PERPLEXITY.into() };
    let name = text.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "text".into());
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    format!("perplexity-text-{name}.json")
}

/// Why the streaming probe's `window` does not fit windows of `t` tokens, if it does not: it
/// needs keys to leave out, so `1 ≤ W < t`.
pub fn window_problem(window: usize, t: usize) -> Option<String> {
    (window == 0 || window >= t).then(|| {
        format!("--window {window} needs 1 ≤ W < the run's sequence length {t}: give --window {}", (t / 2).max(1))
    })
}

/// A run's `perplexity.json` (its validation split's result), if it has one.
pub fn read_eval(run: &RunDir) -> Result<Option<EvalResult>> {
    let path = run.file(PERPLEXITY);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(gatelab_rundir::read_json(&path)?))
}

/// What to score.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// A text file (or folder of `.txt`, or JSONL) instead of the run's validation split.
    pub text: Option<PathBuf>,
    /// Tokens per window for `text` (default: the run's training length).
    pub seq_len: Option<usize>,
    /// At most this many windows.
    pub sequences: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// The streaming probe's window `W` (keys per query), if wanted.
    pub window: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { text: None, seq_len: None, sequences: 256, batch_size: 16, window: None }
    }
}

/// The streaming probe's result over the positions `i ≥ window` (where a window leaves keys out).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Streaming {
    /// Keys per query, `W`.
    pub window: usize,
    /// Targets scored (positions ≥ `W` of every window).
    pub tokens: usize,
    /// Perplexity with full causal attention.
    #[serde(with = "gatelab_rundir::finite")]
    pub full: f64,
    /// With keys `i−W+1..=i` and the first token.
    #[serde(with = "gatelab_rundir::finite")]
    pub first_kept: f64,
    /// With keys `i−W+1..=i` only: the first token evicted.
    #[serde(with = "gatelab_rundir::finite")]
    pub first_evicted: f64,
    /// `first_evicted / first_kept`: how much the model leans on its first token.
    #[serde(with = "gatelab_rundir::finite")]
    pub ratio: f64,
}

/// `gatelab eval`'s result for one run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// The run folder (its name only in the file, so that a sweep folder can move).
    pub run: PathBuf,
    /// What was scored: `validation split` or the text file.
    pub source: String,
    /// Windows scored.
    pub sequences: usize,
    /// Their length.
    pub seq_len: usize,
    /// Targets scored.
    pub tokens: usize,
    /// Mean negative log-likelihood per target (nats).
    #[serde(with = "gatelab_rundir::finite")]
    pub loss: f64,
    /// `exp(loss)`.
    #[serde(with = "gatelab_rundir::finite")]
    pub perplexity: f64,
    /// The streaming probe, when asked and it fits the run.
    pub streaming: Option<Streaming>,
    /// Why the streaming probe was asked for but not run (the window does not fit this run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming_skipped: Option<String>,
}

/// Token windows with their targets, `[BOS, x_1, …]` of `seq_len + 1` ids each.
struct Windows {
    ids: Vec<Vec<i64>>,
    seq_len: usize,
    source: String,
    /// Targets equal to it are padding and not scored.
    pad: u32,
}

/// The run's tokenizer: its `tokenizer.json`, else the one its data config builds.
fn run_tokenizer(run: &RunDir, data: &gatelab_data::DataConfig) -> Result<Tokenizer> {
    let path = run.file(gatelab_rundir::folder::TOKENIZER);
    if path.is_file() {
        return Ok(Tokenizer::load(&path)?);
    }
    data.prepare()?.tokenizer.ok_or_else(|| {
        AnalysisError::run(
            &run.path,
            "trained on a synthetic corpus, which has no tokenizer: --text needs a run trained on text",
        )
    })
}

/// `text` as windows of `seq_len` tokens after BOS (module docs), at most `max`.
pub fn text_windows(tokenizer: &Tokenizer, text: &Path, seq_len: usize, max: usize) -> Result<Vec<Vec<i64>>> {
    let mut stream = Vec::new();
    for doc in load_text(text)? {
        stream.extend(tokenizer.encode(&doc)?);
        stream.push(tokenizer.eos);
    }
    let windows: Vec<Vec<i64>> = stream
        .chunks_exact(seq_len)
        .take(max)
        .map(|w| std::iter::once(tokenizer.bos).chain(w.iter().copied()).map(i64::from).collect())
        .collect();
    if windows.is_empty() {
        return Err(AnalysisError::run(text, format!("{} tokens, fewer than one window of {seq_len}", stream.len())));
    }
    Ok(windows)
}

fn windows(run: &RunDir, data: &gatelab_data::DataConfig, options: &EvalOptions) -> Result<Windows> {
    if let Some(text) = &options.text {
        let seq_len = options.seq_len.unwrap_or(data.seq_len);
        if seq_len < 2 {
            return Err(AnalysisError::option("--seq-len", "must be at least 2"));
        }
        let ids = text_windows(&run_tokenizer(run, data)?, text, seq_len, options.sequences)?;
        return Ok(Windows { ids, seq_len, source: text.display().to_string(), pad: u32::MAX });
    }
    if options.seq_len.is_some_and(|n| n != data.seq_len) {
        return Err(AnalysisError::option(
            "--seq-len",
            format!(
                "the validation split has windows of the run's length {}; give --text to score other lengths",
                data.seq_len
            ),
        ));
    }
    let seq_len = data.seq_len;
    let data = data.prepare()?;
    let n = options.sequences.min(data.valid.len());
    let ids = (0..n)
        .map(|i| {
            data.valid
                .get(i)
                .map(|e| e.tokens.iter().map(|&t| i64::from(t)).collect())
                .map_err(|e| gatelab_data::DataError::new(e.to_string()).into())
        })
        .collect::<Result<Vec<Vec<i64>>>>()?;
    if ids.is_empty() {
        return Err(AnalysisError::run(&run.path, "the validation split is empty"));
    }
    Ok(Windows { ids, seq_len, source: "validation split".into(), pad: data.vocab.pad })
}

/// `[t, t]`, true where query `i` may not see key `j`: the future, and with a window `W` the keys
/// before `i − W + 1` (all but the first token, when `keep_first`).
pub fn window_mask(t: usize, window: Option<usize>, keep_first: bool, device: &Device) -> Tensor<2, Bool> {
    let hidden: Vec<bool> = (0..t * t)
        .map(|k| {
            let (i, j) = (k / t, k % t);
            let outside = window.is_some_and(|w| i - j.min(i) >= w && !(keep_first && j == 0));
            j > i || outside
        })
        .collect();
    Tensor::from_data(TensorData::new(hidden, [t, t]), device)
}

/// Per position of the window, the Σ NLL and the count of its real targets over every window,
/// under `mask`, or (`None`) the causal mask alone: the plain forward, whose softmax attention runs
/// the fused causal operation that training uses.
fn position_nll(
    model: &Transformer,
    w: &Windows,
    mask: Option<&Tensor<2, Bool>>,
    options: &EvalOptions,
    device: &Device,
) -> (Vec<f64>, Vec<f64>) {
    let batcher = LmBatcher { pad: w.pad };
    let (mut sums, mut counts) = (vec![0.0; w.seq_len], vec![0.0; w.seq_len]);
    for chunk in w.ids.chunks(options.batch_size.max(1)) {
        let items =
            chunk.iter().map(|ids| gatelab_data::LmExample::new(ids.iter().map(|&x| x as u32).collect())).collect();
        let batch = batcher.batch(items, device);
        let logits = match mask {
            Some(mask) => model.forward_masked(batch.inputs, mask.clone()),
            None => model.forward(batch.inputs),
        };
        let nll = (token_nll(logits, batch.targets) * batch.mask.clone()).sum_dim(0);
        let real = batch.mask.sum_dim(0);
        for (acc, v) in sums.iter_mut().zip(nll.into_data().iter::<f32>()) {
            *acc += f64::from(v);
        }
        for (acc, v) in counts.iter_mut().zip(real.into_data().iter::<f32>()) {
            *acc += f64::from(v);
        }
    }
    (sums, counts)
}

/// Mean NLL over the positions `from..` of per-position sums and counts, and the count.
fn mean_from((sums, counts): &(Vec<f64>, Vec<f64>), from: usize) -> (f64, usize) {
    let (s, n): (f64, f64) = (sums[from..].iter().sum(), counts[from..].iter().sum());
    (s / n.max(1.0), n as usize)
}

/// Scores a finished run (module docs).
pub fn eval_run(run: &RunDir, device: &Device, options: &EvalOptions) -> Result<EvalResult> {
    require_done(run)?;
    let config = run.read_file()?.config;
    let model = load_model(run, &config.model, device)?;
    let w = windows(run, &config.data, options)?;
    let t = w.seq_len;
    let full = position_nll(&model, &w, None, options, device);
    let (loss, count) = mean_from(&full, 0);
    let streaming_skipped = options.window.and_then(|w| window_problem(w, t));
    let streaming = match options.window {
        None => None,
        Some(_) if streaming_skipped.is_some() => None,
        Some(window) => {
            // The same positions i ≥ W under each mask; full attention's are in `full` already.
            let ppl = |per_position: &(Vec<f64>, Vec<f64>)| mean_from(per_position, window);
            let windowed = |keep_first| {
                position_nll(&model, &w, Some(&window_mask(t, Some(window), keep_first, device)), options, device)
            };
            let (full_loss, n) = ppl(&full);
            let (kept, evicted) = (ppl(&windowed(true)).0.exp(), ppl(&windowed(false)).0.exp());
            Some(Streaming {
                window,
                tokens: n,
                full: full_loss.exp(),
                first_kept: kept,
                first_evicted: evicted,
                ratio: evicted / kept,
            })
        }
    };
    Ok(EvalResult {
        run: run.path.clone(),
        source: w.source,
        sequences: w.ids.len(),
        seq_len: t,
        tokens: count,
        loss,
        perplexity: loss.exp(),
        streaming,
        streaming_skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelab_model::{ModelConfig, SinkCure};

    fn hidden(m: Tensor<2, Bool>) -> Vec<bool> {
        m.into_data().iter::<bool>().collect()
    }

    #[test]
    fn a_text_result_never_takes_the_validation_results_file_and_a_window_must_leave_keys_out() {
        assert_eq!(result_file(None), PERPLEXITY);
        assert_eq!(result_file(Some(Path::new("a/b/later text.txt"))), "perplexity-text-later_text.txt.json");
        assert_ne!(result_file(Some(Path::new("perplexity"))), PERPLEXITY);
        assert_eq!(window_problem(16, 32), None);
        assert!(window_problem(32, 32).unwrap().contains("sequence length 32: give --window 16"));
        assert!(window_problem(0, 32).is_some());
    }

    #[test]
    fn windows_hide_the_future_and_the_distant_past_and_keep_the_first_token_on_request() {
        let device = Device::flex();
        let t = 5;
        let causal = hidden(window_mask(t, None, false, &device));
        for i in 0..t {
            for j in 0..t {
                assert_eq!(causal[i * t + j], j > i);
            }
        }
        // W = 2: query 4 sees keys 3 and 4, and key 0 when it is kept.
        let evicted = hidden(window_mask(t, Some(2), false, &device));
        let kept = hidden(window_mask(t, Some(2), true, &device));
        assert_eq!(&evicted[4 * t..5 * t], &[true, true, true, false, false]);
        assert_eq!(&kept[4 * t..5 * t], &[false, true, true, false, false]);
        // Query 1 sees keys 0 and 1 either way.
        assert_eq!(&evicted[t..2 * t], &[false, false, true, true, true]);
    }

    #[test]
    fn the_causal_mask_given_explicitly_is_the_plain_forward_and_a_window_changes_far_positions() {
        let device = Device::flex();
        for cure in [SinkCure::Softmax, SinkCure::SinkLogit, SinkCure::Sigmoid { bias: Default::default() }] {
            let model = ModelConfig {
                vocab_size: 11,
                d_model: 16,
                n_layers: 1,
                n_heads: 2,
                n_kv_heads: 1,
                head_dim: 8,
                d_ff: 0,
                init_std: 0.5,
                cure,
                ..ModelConfig::default()
            }
            .init(&device)
            .unwrap();
            let tokens =
                Tensor::<2, burn::tensor::Int>::from_data(TensorData::new(vec![1i64, 4, 2, 7, 3, 9], [1, 6]), &device);
            let plain: Vec<f32> = model.forward(tokens.clone()).into_data().iter::<f32>().collect();
            let masked: Vec<f32> = model
                .forward_masked(tokens.clone(), window_mask(6, None, false, &device))
                .into_data()
                .iter::<f32>()
                .collect();
            assert_eq!(plain, masked, "{}", cure.name());
            let windowed: Vec<f32> = model
                .forward_masked(tokens, window_mask(6, Some(2), false, &device))
                .into_data()
                .iter::<f32>()
                .collect();
            // Positions 0 and 1 see everything they saw before; position 5 does not.
            assert_eq!(&plain[..2 * 11], &windowed[..2 * 11]);
            assert!(plain[5 * 11..].iter().zip(&windowed[5 * 11..]).any(|(a, b)| (a - b).abs() > 1e-6));
        }
    }
}
