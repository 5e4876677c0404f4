//! gatelab's analysis: the paper's measurements computed from the model's probes, and the
//! reports that compare variants. It reads run folders (typed in `gatelab_rundir`) or a model it
//! is handed, never the training code.
//!
//! - [`stats`]: per-layer, per-head statistics accumulated over batches (F-Attn, α(k), Sink_1^ε,
//!   massive activations, gate statistics, entropy, value drain); definitions in
//!   `docs/metrics.md`.
//! - [`run`]: analysing a run folder's held-out split into `analysis.json`.
//! - [`intervene`]: the first token's peak activation set to zero and to its mean (Sun et al.
//!   2024), with the loss and F-Attn measured again.
//! - [`eval`]: held-out perplexity of a run or a text file, and the streaming probe (first token
//!   kept or evicted from a sliding window).
//! - [`dynamics`]: the per-layer snapshot the harness records during training.
//! - [`length`]: perplexity, first-token attention and needle retrieval beyond the training
//!   length under each RoPE scaling method.
//! - [`imported`]: analysing an imported Hugging Face checkpoint on a text file, into a folder the
//!   report reads like a run.
//! - [`summary`]: a sweep's runs grouped by configuration, with intervals over seeds and paired
//!   differences to the baseline.
//! - [`report`]: `summary.md`, `summary.csv`, the figures and `report.html`.
//! - [`charts`]: dot charts, line charts with bands and error bars, heat maps.
//! - [`error`]: the crate's error type, [`AnalysisError`].

pub mod charts;
pub mod dynamics;
pub mod error;
pub mod eval;
pub mod imported;
pub mod intervene;
pub mod length;
pub mod report;
pub mod run;
pub mod stats;
pub mod summary;

pub use error::AnalysisError;
