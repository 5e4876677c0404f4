//! The run folder, `results/<sweep>/<variant>-<hash>/`: the contract between training
//! (`experiments`) and analysis, typed once for both.
//!
//! | file | type | what |
//! |---|---|---|
//! | `config.json` | [`RunFile`] | the resolved config ([`RunConfig`]: `model`, `data`, `train`) and [`RunMeta`] (grid, variant, paper row, preset, overrides, seed, backend, git commit, hash) |
//! | `status.json` | [`Status`] | `pending` / `running` / `interrupted` (with the checkpoint's step) / `done` / `diverged` (step, loss) / `failed` (reason) |
//! | `metrics.jsonl` | [`StepRecord`] | a line per `train.log_every` steps: step, loss, lr, gradient norm, tokens/s, spikes |
//! | `eval.jsonl` | [`EvalRecord`] | validation loss and perplexity per `train.eval_every` steps and at the end |
//! | `dynamics.jsonl` | [`DynamicsRecord`] | per-layer first-token attention, gate mean and max activation on a fixed held-out batch |
//! | `checkpoint.json`, `checkpoint-<step>/` | [`Checkpoint`] | the two newest checkpoints (model and optimiser, burnpack) while unfinished, each with its manifest `checkpoint-<step>/checkpoint.json` recording its files' sizes and SHA-256; `checkpoint.json` is the newest's |
//! | `model.safetensors`, `weights.json` | [`Weights`] | final weights (names in `model/src/weights.rs`); their size and SHA-256, written after them |
//! | `.lock` | [`RunLock`] | held (an advisory lock) by the process that trains or analyses the run; says who |
//! | `tokenizer.json` | | the tokenizer of a text corpus |
//! | `analysis.json`, `length.json`, … | | written by `analysis` from the files above |
//!
//! Whole files are written with [`write_atomic`] (a temporary file unique to the process, flushed,
//! renamed), so a reader never sees half of one and a crash leaves the previous version; a
//! checkpoint or weights file whose bytes no longer match its manifest counts as missing (a rerun
//! falls back to the previous checkpoint, or retrains); `status.json` says `done` only
//! after everything else is in place. JSONL logs are appended, and cut back to the checkpoint's
//! step when a run resumes.
//!
//! Folders written by earlier versions of gatelab read unchanged (`tests/fixtures/`).

pub mod config;
pub mod digest;
pub mod error;
pub mod finite;
pub mod folder;
pub mod fs;
pub mod lock;
pub mod meta;
pub mod records;
pub mod status;

pub use config::{RunConfig, TrainConfig};
pub use digest::FileDigest;
pub use error::{RunDirError, one_line};
pub use folder::{Checkpoint, Resume, RunDir, Weights, runs_under};
pub use fs::{append_jsonl, read_json, read_jsonl, write_atomic, write_json};
pub use lock::{Holder, RunLock};
pub use meta::{BaselineRun, OtherName, RunFile, RunMeta};
pub use records::{DynamicsRecord, EvalRecord, LayerSnapshot, StepRecord};
pub use status::Status;
