//! gatelab's analysis: the paper's measurements computed from the model's probes. It reads run
//! folders (or a model it is handed), never the training code.
//!
//! - [`stats`]: per-layer, per-head statistics accumulated over batches (F-Attn, α(k), Sink_1^ε,
//!   massive activations, gate statistics, entropy, value drain).
//! - [`charts`]: line charts as SVG and PNG with CSV sidecars.
//! - [`report`]: a sweep's summary (`summary.csv`, `summary.md`), honest about missing sinks.
//! - [`run`]: analysing a run folder's held-out split into `analysis.json`.
//! - [`length`]: perplexity, first-token attention and needle retrieval beyond the training
//!   length under each RoPE scaling method.
//! - [`imported`]: analysing an imported Hugging Face checkpoint on a text file, into a folder the
//!   report reads like a run.
//! - [`layer`]: the per-layer snapshot the harness records during training.

pub mod charts;
pub mod imported;
pub mod layer;
pub mod length;
pub mod report;
pub mod run;
pub mod stats;

/// Writes `text` to `path` through a temporary file and a rename, so no reader sees half a file.
pub(crate) fn write_atomic(path: &std::path::Path, text: &str) -> Result<(), String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| format!("{}: {e}", path.display()))
}
