//! A run folder, `results/<sweep>/<variant>-<hash>/`: the contract between training and analysis.
//!
//! | file | what |
//! |---|---|
//! | `config.json` | the resolved config (`model`, `data`, `train`) and `meta` (grid, variant, paper row, overrides, seed, backend, git commit, hash) |
//! | `status.json` | `pending` / `running` / `done` / `diverged` (with its step) / `failed` (with the reason) |
//! | `metrics.jsonl` | a line per `log_every` steps: step, loss, lr, gradient norm, tokens/s, spikes |
//! | `eval.jsonl` | validation loss and perplexity per `eval_every` steps and at the end |
//! | `dynamics.jsonl` | per-layer first-token attention, gate mean and max activation on a fixed analysis batch |
//! | `checkpoint.json`, `checkpoint-<step>/` | the latest checkpoint (model and optimiser, burnpack) |
//! | `model.safetensors` | final weights (names in `model/src/weights.rs`) |
//! | `tokenizer.json` | the tokenizer of a text corpus |
//!
//! Whole files are written to a temporary name and renamed, so a reader never sees half of one;
//! `status.json` says `done` only after everything else is in place. JSONL logs are appended, and
//! cut back to the checkpoint's step when a run resumes.

use gatelab_model::Transformer;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a run stands.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    /// Planned, not started.
    Pending,
    /// Started (or interrupted); resumes from its checkpoint.
    Running {
        /// The step of the checkpoint it would resume from.
        step: usize,
    },
    /// Finished every step.
    Done,
    /// The loss diverged at `step`.
    Diverged {
        /// Step of the divergence.
        step: usize,
        /// Loss seen there.
        loss: f64,
    },
    /// An error stopped it.
    Failed {
        /// The error, one line.
        reason: String,
    },
}

impl Status {
    /// Whether a rerun leaves it alone.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Done | Status::Diverged { .. })
    }

    /// One word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running { .. } => "running",
            Status::Done => "done",
            Status::Diverged { .. } => "diverged",
            Status::Failed { .. } => "failed",
        }
    }
}

/// The latest checkpoint, as `checkpoint.json` records it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Steps done when it was taken.
    pub step: usize,
    /// Loss spikes counted so far.
    pub spikes: usize,
    /// Running mean of the loss (for spike detection).
    pub mean_loss: Option<f64>,
}

impl Checkpoint {
    fn dir(&self, run: &RunDir) -> PathBuf {
        run.path.join(format!("checkpoint-{}", self.step))
    }

    /// The model's burnpack file.
    pub fn model_path(&self, run: &RunDir) -> PathBuf {
        self.dir(run).join("model.bpk")
    }

    /// The optimiser's burnpack file.
    pub fn optim_path(&self, run: &RunDir) -> PathBuf {
        self.dir(run).join("optim.bpk")
    }
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Writes `bytes` to `path` through a temporary file and a rename, flushed to disk first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| io_err(path, e))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads JSON.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| io_err(path, e))
}

impl RunDir {
    /// The folder at `path` (not created).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The status, `pending` when there is none yet.
    pub fn status(&self) -> Result<Status, String> {
        let path = self.path.join("status.json");
        if path.exists() { read_json(&path) } else { Ok(Status::Pending) }
    }

    /// Records the status.
    pub fn set_status(&self, status: &Status) -> Result<(), String> {
        write_json(&self.path.join("status.json"), status)
    }

    /// Appends one JSON line to a log.
    pub fn append(&self, file: &str, record: &impl Serialize) -> Result<(), String> {
        let path = self.path.join(file);
        let mut line = serde_json::to_string(record).map_err(|e| io_err(&path, e))?;
        line.push('\n');
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_err(&path, e))?;
        f.write_all(line.as_bytes()).map_err(|e| io_err(&path, e))
    }

    /// Drops log lines past `step` (written after the checkpoint a run resumes from) and any torn
    /// last line.
    pub fn truncate_logs(&self, step: usize) -> Result<(), String> {
        for file in ["metrics.jsonl", "eval.jsonl", "dynamics.jsonl"] {
            let path = self.path.join(file);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step))
                .map(|l| format!("{l}\n"))
                .collect();
            if kept != text {
                write_atomic(&path, kept.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The latest complete checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, String> {
        let path = self.path.join("checkpoint.json");
        if path.exists() { read_json(&path).map(Some) } else { Ok(None) }
    }

    /// Writes a checkpoint: its files into `checkpoint-<step>/`, then `checkpoint.json` pointing at
    /// it (the commit point), then removes older checkpoints.
    pub fn save_checkpoint(&self, ckpt: &Checkpoint, write: impl FnOnce(&Path, &Path) -> Result<(), String>) -> Result<(), String> {
        let dir = ckpt.dir(self);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        write(&ckpt.model_path(self), &ckpt.optim_path(self))?;
        write_json(&self.path.join("checkpoint.json"), ckpt)?;
        self.set_status(&Status::Running { step: ckpt.step })?;
        self.remove_checkpoints_except(Some(ckpt.step))
    }

    /// Removes checkpoint folders (all but `keep`).
    pub fn remove_checkpoints_except(&self, keep: Option<usize>) -> Result<(), String> {
        let entries = std::fs::read_dir(&self.path).map_err(|e| io_err(&self.path, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(step) = name.strip_prefix("checkpoint-").and_then(|s| s.parse::<usize>().ok()) {
                if Some(step) != keep {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Saves the final weights (safetensors, atomically).
    pub fn save_weights(&self, model: &Transformer) -> Result<(), String> {
        gatelab_model::weights::save_safetensors(model, &self.path.join("model.safetensors"))
    }

    /// Closes a finished run: records the final status (the commit point), then removes its
    /// checkpoints.
    pub fn finish(&self, status: &Status) -> Result<(), String> {
        self.set_status(status)?;
        let _ = std::fs::remove_file(self.path.join("checkpoint.json"));
        self.remove_checkpoints_except(None)
    }
}
