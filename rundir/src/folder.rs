//! [`RunDir`]: one run folder, read and written through typed files.

use crate::error::RunDirError;
use crate::fs::{append_jsonl, read_json, read_jsonl, write_atomic, write_json};
use crate::meta::RunFile;
use crate::records::{DynamicsRecord, EvalRecord, StepRecord};
use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `config.json`.
pub const CONFIG: &str = "config.json";
/// `status.json`.
pub const STATUS: &str = "status.json";
/// `metrics.jsonl`.
pub const METRICS: &str = "metrics.jsonl";
/// `eval.jsonl`.
pub const EVAL: &str = "eval.jsonl";
/// `dynamics.jsonl`.
pub const DYNAMICS: &str = "dynamics.jsonl";
/// `model.safetensors`.
pub const WEIGHTS: &str = "model.safetensors";
/// `tokenizer.json`.
pub const TOKENIZER: &str = "tokenizer.json";
/// `checkpoint.json`.
pub const CHECKPOINT: &str = "checkpoint.json";

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

/// A run folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

impl RunDir {
    /// The folder at `path` (not created).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// A file of the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The folder's name (`<variant>-<hash>`).
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
    }

    /// Whether `path` is a run folder (it has a `config.json`).
    pub fn is_run(path: &Path) -> bool {
        path.join(CONFIG).is_file()
    }

    /// `config.json`: the resolved config and where the run comes from.
    pub fn read_file(&self) -> Result<RunFile, RunDirError> {
        read_json(&self.file(CONFIG))
    }

    /// Writes `config.json`.
    pub fn write_file(&self, file: &RunFile) -> Result<(), RunDirError> {
        write_json(&self.file(CONFIG), file)
    }

    /// The status, `pending` when there is none yet.
    pub fn status(&self) -> Result<Status, RunDirError> {
        let path = self.file(STATUS);
        if path.exists() { read_json(&path) } else { Ok(Status::Pending) }
    }

    /// Whether it finished every step (an unreadable status counts as not).
    pub fn is_done(&self) -> bool {
        self.status().is_ok_and(|s| s.is_done())
    }

    /// Records the status.
    pub fn set_status(&self, status: &Status) -> Result<(), RunDirError> {
        write_json(&self.file(STATUS), status)
    }

    /// `metrics.jsonl`.
    pub fn metrics(&self) -> Result<Vec<StepRecord>, RunDirError> {
        read_jsonl(&self.file(METRICS))
    }

    /// `eval.jsonl`.
    pub fn evals(&self) -> Result<Vec<EvalRecord>, RunDirError> {
        read_jsonl(&self.file(EVAL))
    }

    /// `dynamics.jsonl`.
    pub fn dynamics(&self) -> Result<Vec<DynamicsRecord>, RunDirError> {
        read_jsonl(&self.file(DYNAMICS))
    }

    /// The last validation record, the run's final one when it is done.
    pub fn last_eval(&self) -> Result<Option<EvalRecord>, RunDirError> {
        Ok(self.evals()?.pop())
    }

    /// Appends a line to `metrics.jsonl`.
    pub fn log_step(&self, record: &StepRecord) -> Result<(), RunDirError> {
        append_jsonl(&self.file(METRICS), record)
    }

    /// Appends a line to `eval.jsonl`.
    pub fn log_eval(&self, record: &EvalRecord) -> Result<(), RunDirError> {
        append_jsonl(&self.file(EVAL), record)
    }

    /// Appends a line to `dynamics.jsonl`.
    pub fn log_dynamics(&self, record: &DynamicsRecord) -> Result<(), RunDirError> {
        append_jsonl(&self.file(DYNAMICS), record)
    }

    /// Drops log lines past `step` (written after the checkpoint a run resumes from) and any torn
    /// line.
    pub fn truncate_logs(&self, step: usize) -> Result<(), RunDirError> {
        #[derive(Deserialize)]
        struct Stepped {
            step: usize,
        }
        for name in [METRICS, EVAL, DYNAMICS] {
            let path = self.file(name);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<Stepped>(l).is_ok_and(|s| s.step <= step))
                .map(|l| format!("{l}\n"))
                .collect();
            if kept != text {
                write_atomic(&path, kept.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The latest complete checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, RunDirError> {
        let path = self.file(CHECKPOINT);
        if path.exists() { read_json(&path).map(Some) } else { Ok(None) }
    }

    fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.path.join(format!("checkpoint-{step}"))
    }

    /// The model's burnpack file of a checkpoint.
    pub fn checkpoint_model(&self, ckpt: &Checkpoint) -> PathBuf {
        self.checkpoint_dir(ckpt.step).join("model.bpk")
    }

    /// The optimiser's burnpack file of a checkpoint.
    pub fn checkpoint_optim(&self, ckpt: &Checkpoint) -> PathBuf {
        self.checkpoint_dir(ckpt.step).join("optim.bpk")
    }

    /// Writes a checkpoint: its files into `checkpoint-<step>/` (by `write`, given the model's and
    /// the optimiser's paths), then `checkpoint.json` pointing at it (the commit point), then
    /// removes older checkpoints.
    pub fn save_checkpoint<E>(
        &self,
        ckpt: &Checkpoint,
        write: impl FnOnce(&Path, &Path) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<RunDirError>,
    {
        let dir = self.checkpoint_dir(ckpt.step);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| RunDirError::io(&dir, e))?;
        write(&self.checkpoint_model(ckpt), &self.checkpoint_optim(ckpt))?;
        write_json(&self.file(CHECKPOINT), ckpt)?;
        self.set_status(&Status::Running { step: ckpt.step })?;
        Ok(self.remove_checkpoints_except(Some(ckpt.step))?)
    }

    /// Removes checkpoint folders (all but `keep`).
    pub fn remove_checkpoints_except(&self, keep: Option<usize>) -> Result<(), RunDirError> {
        let entries = std::fs::read_dir(&self.path).map_err(|e| RunDirError::io(&self.path, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(step) = name.strip_prefix("checkpoint-").and_then(|s| s.parse::<usize>().ok())
                && Some(step) != keep
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Saves the final weights (safetensors, atomically).
    pub fn save_weights(&self, model: &gatelab_model::Transformer) -> Result<(), RunDirError> {
        write_atomic(&self.file(WEIGHTS), &gatelab_model::weights::to_safetensors(model)?)
    }

    /// Closes a finished run: records the final status (the commit point), then removes its
    /// checkpoints.
    pub fn finish(&self, status: &Status) -> Result<(), RunDirError> {
        self.set_status(status)?;
        let _ = std::fs::remove_file(self.file(CHECKPOINT));
        self.remove_checkpoints_except(None)
    }
}

/// The run folders under `path`: the folder itself if it is a run, else its run subfolders, in
/// name order.
pub fn runs_under(path: &Path) -> Result<Vec<RunDir>, RunDirError> {
    if RunDir::is_run(path) {
        return Ok(vec![RunDir::new(path)]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| RunDirError::io(path, e))?;
    let mut runs: Vec<RunDir> =
        entries.flatten().map(|e| e.path()).filter(|p| RunDir::is_run(p)).map(RunDir::new).collect();
    runs.sort();
    if runs.is_empty() {
        return Err(RunDirError::folder(path, "no run folders (with a config.json) here"));
    }
    Ok(runs)
}
