//! Analysing an imported Hugging Face checkpoint (the paper's released models, or any Qwen3-format
//! directory; [`gatelab_model::hf`]) on a text file, into a folder that reads like a finished run
//! — `config.json`, `status.json`, `eval.jsonl`, `analysis.json`, `attention_maps.*` — so
//! `gatelab report` puts released models beside trained ones. No weights are copied.
//!
//! The text is tokenised with the checkpoint's `tokenizer.json` into one stream cut into windows
//! of `seq_len` tokens, each after the tokenizer's BOS (for Qwen's tokenizer, which has none, its
//! `<|endoftext|>`), and streamed a batch at a time; windows longer than a query tile are probed
//! lean, so memory holds one batch's activations, not every layer's attention maps.

use crate::error::{AnalysisError, Result};
use crate::run::{ANALYSIS, Analysis, AnalyzeOptions};
use crate::stats::Accumulator;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_data::{CorpusSpec, DataConfig, Packing, Tokenizer, TokenizerSpec};
use gatelab_model::token_nll;
use gatelab_rundir::{EvalRecord, RunConfig, RunDir, RunFile, RunMeta, Status, TrainConfig, write_json};
use std::path::Path;

/// What to import and analyse.
#[derive(Debug, Clone, Copy)]
pub struct Import<'a> {
    /// The checkpoint folder.
    pub checkpoint: &'a Path,
    /// The text to analyse on: a file, a folder of `.txt`, or JSONL.
    pub text: &'a Path,
    /// Its name in reports.
    pub name: &'a str,
    /// Tokens per window, after BOS.
    pub seq_len: usize,
}

/// Imports `source.checkpoint`, analyses it on `source.text` and writes the folder `out`.
/// `progress` hears (sequences done, sequences in all).
pub fn analyze_checkpoint(
    source: &Import,
    out: &Path,
    device: &Device,
    options: &AnalyzeOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Analysis> {
    let Import { checkpoint, text, name, seq_len } = *source;
    let tokenizer_path = checkpoint.join("tokenizer.json");
    if !checkpoint.is_dir() {
        let what = if checkpoint.exists() { "not a checkpoint folder" } else { "no such checkpoint folder" };
        return Err(AnalysisError::run(checkpoint, what));
    }
    if !tokenizer_path.is_file() {
        return Err(AnalysisError::run(checkpoint, "no tokenizer.json beside the checkpoint"));
    }
    let tokenizer = Tokenizer::load(&tokenizer_path)?;
    let (model, hf) = gatelab_model::hf::import(checkpoint, device)?;
    if tokenizer.vocab_size() > hf.config.vocab_size {
        return Err(AnalysisError::run(
            checkpoint,
            format!(
                "the tokenizer has {} ids, the model's vocabulary {}",
                tokenizer.vocab_size(),
                hf.config.vocab_size
            ),
        ));
    }
    let windows = crate::eval::text_windows(&tokenizer, text, seq_len, options.max_sequences)?;
    std::fs::create_dir_all(out).map_err(|e| gatelab_rundir::RunDirError::io(out, e))?;
    let (mut acc, mut nll, mut count) = (Accumulator::new(options.stats.clone()), 0.0, 0usize);
    let batch = options.batch_size.max(1);
    for (k, chunk) in windows.chunks(batch).enumerate() {
        let ids: Vec<i64> = chunk.iter().flat_map(|w| w.iter().copied()).collect();
        let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), seq_len + 1]), device);
        let (inputs, targets) =
            (all.clone().slice([0..chunk.len(), 0..seq_len]), all.slice([0..chunk.len(), 1..seq_len + 1]));
        let logits = acc.observe(&model, inputs);
        nll += token_nll(logits, targets).sum().into_scalar::<f32>() as f64;
        count += chunk.len() * seq_len;
        progress((k * batch + chunk.len()).min(windows.len()), windows.len());
    }
    // One sequence's maps: the drawn first 64 positions need only the first 64 tokens (causal).
    let t = seq_len.min(64);
    let first = Tensor::<2, Int>::from_data(TensorData::new(windows[0][..t].to_vec(), [1, t]), device);
    crate::run::draw_attention_maps(&model, first, out, name)?;
    let loss = nll / count.max(1) as f64;
    let data = DataConfig {
        corpus: CorpusSpec::Text { path: text.to_path_buf() },
        tokenizer: TokenizerSpec::File { path: tokenizer_path },
        seq_len,
        packing: Packing::Packed,
        ..DataConfig::default()
    };
    let run = RunDir::new(out);
    let meta = RunMeta {
        variant: name.into(),
        paper: format!("imported: {}", checkpoint.display()),
        source: Some(checkpoint.to_path_buf()),
        model_type: Some(hf.model_type),
        ..RunMeta::default()
    };
    run.write_file(&RunFile { meta, config: RunConfig { model: hf.config, data, train: TrainConfig::default() } })?;
    let _ = std::fs::remove_file(run.file(gatelab_rundir::folder::EVAL));
    run.log_eval(&EvalRecord { step: 0, loss, perplexity: loss.exp(), tokens: count })?;
    // No interventions on an imported checkpoint: a full-size model would take three more passes.
    let analysis =
        Analysis { run: out.to_path_buf(), options: options.clone(), stats: acc.finish(), interventions: None };
    write_json(&run.file(ANALYSIS), &analysis)?;
    run.set_status(&Status::Done)?;
    Ok(analysis)
}
