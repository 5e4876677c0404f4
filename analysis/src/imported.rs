//! Analysing an imported Hugging Face checkpoint (the paper's released models, or any Qwen3-format
//! directory; [`gatelab_model::hf`]) on a text file, into a folder that reads like a finished run
//! — `config.json`, `status.json`, `eval.jsonl`, `analysis.json`, `attention_maps.*` — so
//! `gatelab report` puts released models beside trained ones. No weights are copied.
//!
//! The text is tokenised with the checkpoint's `tokenizer.json` into one stream cut into windows
//! of `seq_len` tokens, each after the tokenizer's BOS (for Qwen's tokenizer, which has none, its
//! `<|endoftext|>`), and streamed a batch at a time; windows longer than a query tile are probed
//! lean, so memory holds one batch's activations, not every layer's attention maps.

use crate::run::{Analysis, AnalyzeOptions};
use crate::stats::Accumulator;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gatelab_data::corpus::load_text;
use gatelab_data::{CorpusSpec, DataConfig, Packing, Tokenizer, TokenizerSpec};
use gatelab_model::token_nll;
use std::path::Path;

/// Imports `checkpoint`, analyses it on `text` and writes the folder `out`. `progress` hears
/// (sequences done, sequences in all).
pub fn analyze_checkpoint(checkpoint: &Path, text: &Path, out: &Path, name: &str, seq_len: usize, device: &Device, options: &AnalyzeOptions, mut progress: impl FnMut(usize, usize)) -> Result<Analysis, String> {
    let tokenizer_path = checkpoint.join("tokenizer.json");
    if !tokenizer_path.is_file() {
        return Err(format!("{}: no tokenizer.json beside the checkpoint", checkpoint.display()));
    }
    let tokenizer = Tokenizer::load(&tokenizer_path).map_err(|e| e.to_string())?;
    let (model, hf) = gatelab_model::hf::import(checkpoint, device)?;
    if tokenizer.vocab_size() > hf.config.vocab_size {
        return Err(format!("{}: the tokenizer has {} ids, the model's vocabulary {}", checkpoint.display(), tokenizer.vocab_size(), hf.config.vocab_size));
    }
    let mut stream = Vec::new();
    for doc in load_text(text).map_err(|e| e.to_string())? {
        stream.extend(tokenizer.encode(&doc).map_err(|e| e.to_string())?);
        stream.push(tokenizer.eos);
    }
    let windows: Vec<Vec<i32>> = stream
        .chunks_exact(seq_len)
        .take(options.max_sequences)
        .map(|w| std::iter::once(tokenizer.bos).chain(w.iter().copied()).map(|t| t as i32).collect())
        .collect();
    if windows.is_empty() {
        return Err(format!("{}: {} tokens, fewer than one window of {seq_len}", text.display(), stream.len()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (mut acc, mut nll, mut count) = (Accumulator::new(options.stats.clone()), 0.0, 0usize);
    let batch = options.batch_size.max(1);
    for (k, chunk) in windows.chunks(batch).enumerate() {
        let ids: Vec<i32> = chunk.iter().flat_map(|w| w.iter().copied()).collect();
        let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), seq_len + 1]), device);
        let (inputs, targets) = (all.clone().slice([0..chunk.len(), 0..seq_len]), all.slice([0..chunk.len(), 1..seq_len + 1]));
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
    let data = DataConfig { corpus: CorpusSpec::Text { path: text.to_path_buf() }, tokenizer: TokenizerSpec::File { path: tokenizer_path }, seq_len, packing: Packing::Packed, ..DataConfig::default() };
    let config = serde_json::json!({
        "meta": { "variant": name, "paper": format!("imported: {}", checkpoint.display()), "seed": 0, "source": checkpoint, "model_type": hf.model_type },
        "config": { "model": hf.config, "data": data },
    });
    let analysis = Analysis { run: out.to_path_buf(), options: options.clone(), stats: acc.finish() };
    let write = |file: &str, text: String| crate::write_atomic(&out.join(file), &text);
    write("config.json", serde_json::to_string_pretty(&config).map_err(|e| e.to_string())? + "\n")?;
    write("eval.jsonl", serde_json::json!({ "step": 0, "loss": loss, "perplexity": loss.exp(), "tokens": count }).to_string() + "\n")?;
    write("analysis.json", serde_json::to_string_pretty(&analysis).map_err(|e| e.to_string())? + "\n")?;
    write("status.json", "{\"state\": \"done\"}\n".into())?;
    Ok(analysis)
}
