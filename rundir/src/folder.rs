//! [`RunDir`]: one run folder, read and written through typed files.

use crate::digest::FileDigest;
use crate::error::{RunDirError, one_line};
use crate::fs::{append_jsonl, read_json, read_jsonl, write_atomic, write_json};
use crate::lock::{Holder, RunLock};
use crate::meta::RunFile;
use crate::records::{DynamicsRecord, EvalRecord, StepRecord};
use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
/// `checkpoint.json`: the run's newest checkpoint; each `checkpoint-<step>/` holds its own too.
pub const CHECKPOINT: &str = "checkpoint.json";
/// `weights.json`: the size and checksum of `model.safetensors`, written after it.
pub const WEIGHTS_MANIFEST: &str = "weights.json";
/// A checkpoint's model file.
pub const MODEL_BPK: &str = "model.bpk";
/// A checkpoint's optimiser file.
pub const OPTIM_BPK: &str = "optim.bpk";

/// The latest checkpoint, as `checkpoint.json` records it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Steps done when it was taken.
    pub step: usize,
    /// Loss spikes counted so far.
    pub spikes: usize,
    /// Running mean of the loss (for spike detection).
    pub mean_loss: Option<f64>,
    /// The size and checksum of each of its files (`model.bpk`, `optim.bpk`); empty in
    /// checkpoints written before gatelab recorded them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileDigest>,
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

    /// The newest checkpoint whose manifest reads, without checking its files (cheap: for
    /// planning; [`RunDir::resume_point`] checks them).
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, RunDirError> {
        Ok(self.checkpoint_steps()?.into_iter().find_map(|step| self.manifest(step).ok()))
    }

    /// The steps of the `checkpoint-<step>/` folders, newest first.
    fn checkpoint_steps(&self) -> Result<Vec<usize>, RunDirError> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RunDirError::io(&self.path, e)),
        };
        let mut steps: Vec<usize> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("checkpoint-")?.parse().ok())
            .collect();
        steps.sort_unstable_by(|a, b| b.cmp(a));
        Ok(steps)
    }

    /// The manifest of `checkpoint-<step>/`: its own `checkpoint.json`, or, for a folder written
    /// before checkpoints had manifests, the run's `checkpoint.json` when it names that step.
    fn manifest(&self, step: usize) -> Result<Checkpoint, String> {
        let own = self.checkpoint_dir(step).join(CHECKPOINT);
        if own.exists() {
            return read_json::<Checkpoint>(&own).map_err(|e| one_line(&e));
        }
        match read_json::<Checkpoint>(&self.file(CHECKPOINT)) {
            Ok(c) if c.step == step && c.files.is_empty() => Ok(c),
            _ => Err(format!("checkpoint-{step}/ was not finished (it has no {CHECKPOINT})")),
        }
    }

    /// Why checkpoint `ckpt` cannot be resumed from (`None` when it can): a file missing, cut
    /// short or changed since its manifest recorded it, naming the file.
    pub fn checkpoint_problem(&self, ckpt: &Checkpoint) -> Option<String> {
        let files = [(MODEL_BPK, self.checkpoint_model(ckpt)), (OPTIM_BPK, self.checkpoint_optim(ckpt))];
        for (name, path) in files {
            let problem = match ckpt.files.get(name) {
                Some(digest) => digest.mismatch(&path),
                None if !path.is_file() => Some(format!("{name} is missing")),
                None => None,
            };
            if let Some(p) = problem {
                return Some(format!("checkpoint-{}/{p}", ckpt.step));
            }
        }
        None
    }

    /// Where a rerun resumes: the newest checkpoint whose files match their manifest, and why
    /// each newer one was passed over. With none left, it starts from step 0.
    pub fn resume_point(&self) -> Result<Resume, RunDirError> {
        let mut passed_over = Vec::new();
        for step in self.checkpoint_steps()? {
            match self.manifest(step) {
                Ok(ckpt) => match self.checkpoint_problem(&ckpt) {
                    None => return Ok(Resume { checkpoint: Some(ckpt), passed_over }),
                    Some(problem) => passed_over.push(problem),
                },
                Err(problem) => passed_over.push(problem),
            }
        }
        Ok(Resume { checkpoint: None, passed_over })
    }

    fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.path.join(format!("checkpoint-{step}"))
    }

    /// The model's burnpack file of a checkpoint.
    pub fn checkpoint_model(&self, ckpt: &Checkpoint) -> PathBuf {
        self.checkpoint_dir(ckpt.step).join(MODEL_BPK)
    }

    /// The optimiser's burnpack file of a checkpoint.
    pub fn checkpoint_optim(&self, ckpt: &Checkpoint) -> PathBuf {
        self.checkpoint_dir(ckpt.step).join(OPTIM_BPK)
    }

    /// Writes a checkpoint: its files into `checkpoint-<step>/` (by `write`, given the model's and
    /// the optimiser's paths), then its manifest `checkpoint-<step>/checkpoint.json` with their
    /// checksums (the commit point), then the run's `checkpoint.json` pointing at it; removes all
    /// but this and the previous checkpoint (the fallback when this one is damaged).
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
        let (model, optim) = (self.checkpoint_model(ckpt), self.checkpoint_optim(ckpt));
        write(&model, &optim)?;
        let mut manifest = ckpt.clone();
        manifest.files = [(MODEL_BPK, &model), (OPTIM_BPK, &optim)]
            .into_iter()
            .map(|(name, path)| Ok((name.to_string(), FileDigest::of_file(path)?)))
            .collect::<Result<_, RunDirError>>()?;
        write_json(&dir.join(CHECKPOINT), &manifest)?;
        write_json(&self.file(CHECKPOINT), &manifest)?;
        self.set_status(&Status::Running { step: ckpt.step })?;
        let previous = self.checkpoint_steps()?.into_iter().find(|&s| s < ckpt.step);
        Ok(self.remove_checkpoints_except(&[Some(ckpt.step), previous].into_iter().flatten().collect::<Vec<_>>())?)
    }

    /// Removes checkpoint folders (all but the steps in `keep`).
    pub fn remove_checkpoints_except(&self, keep: &[usize]) -> Result<(), RunDirError> {
        for step in self.checkpoint_steps()? {
            if !keep.contains(&step) {
                let _ = std::fs::remove_dir_all(self.checkpoint_dir(step));
            }
        }
        Ok(())
    }

    /// Saves the final weights (safetensors, atomically), then their manifest `weights.json`.
    pub fn save_weights(&self, model: &gatelab_model::Transformer) -> Result<(), RunDirError> {
        let bytes = gatelab_model::weights::to_safetensors(model)?;
        write_atomic(&self.file(WEIGHTS), &bytes)?;
        write_json(&self.file(WEIGHTS_MANIFEST), &FileDigest::of_bytes(&bytes))
    }

    /// Whether the final weights are there and match their manifest.
    pub fn weights(&self) -> Weights {
        let path = self.file(WEIGHTS);
        let manifest = self.file(WEIGHTS_MANIFEST);
        if !manifest.exists() {
            return if path.is_file() { Weights::Unverified } else { Weights::Missing };
        }
        match read_json::<FileDigest>(&manifest) {
            Err(e) => Weights::Damaged(format!("{WEIGHTS_MANIFEST} cannot be read: {}", one_line(&e))),
            Ok(digest) => match digest.mismatch(&path) {
                None => Weights::Verified,
                Some(_) if !path.exists() => Weights::Missing,
                Some(problem) => Weights::Damaged(problem),
            },
        }
    }

    /// Takes this folder's lock for `doing` ([`crate::lock`]); `Ok(Err(holder))` when another
    /// process holds it. The folder is created if needed.
    pub fn try_lock(&self, doing: &str) -> Result<Result<RunLock, Holder>, RunDirError> {
        std::fs::create_dir_all(&self.path).map_err(|e| RunDirError::io(&self.path, e))?;
        crate::lock::try_lock(&self.path, doing)
    }

    /// Before a done run is trained again (its weights missing or damaged): removes what came
    /// from its old weights, `weights.json`, what is left of `model.safetensors` and
    /// `analysis.json`, and marks it pending. (Training is deterministic, so the runs's other
    /// evaluations, made from the same weights, stay.)
    pub fn forget_results(&self) -> Result<(), RunDirError> {
        for name in [WEIGHTS_MANIFEST, WEIGHTS, "analysis.json"] {
            match std::fs::remove_file(self.file(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RunDirError::io(self.file(name), e)),
                _ => {}
            }
        }
        self.set_status(&Status::Pending)
    }

    /// Takes this folder's lock for `doing`, waiting while another process holds it.
    pub fn lock(&self, doing: &str) -> Result<RunLock, RunDirError> {
        crate::lock::lock(&self.path, doing)
    }

    /// Closes a finished run: records the final status (the commit point), then removes its
    /// checkpoints.
    pub fn finish(&self, status: &Status) -> Result<(), RunDirError> {
        self.set_status(status)?;
        let _ = std::fs::remove_file(self.file(CHECKPOINT));
        self.remove_checkpoints_except(&[])
    }
}

/// Where a run resumes ([`RunDir::resume_point`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// The checkpoint, or none: from step 0.
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints passed over, each with why (naming the file).
    pub passed_over: Vec<String>,
}

impl Resume {
    /// The step it resumes from.
    pub fn step(&self) -> usize {
        self.checkpoint.as_ref().map_or(0, |c| c.step)
    }

    /// What a person is told when checkpoints were passed over, else `None`: `checkpoint-40/
    /// model.bpk fails its checksum …; resuming from checkpoint-20` (or `restarting from step 0`).
    pub fn note(&self) -> Option<String> {
        if self.passed_over.is_empty() {
            return None;
        }
        let then = match &self.checkpoint {
            Some(c) => format!("resuming from the previous checkpoint, checkpoint-{}", c.step),
            None => "no good checkpoint is left: restarting from step 0".into(),
        };
        Some(format!("{}; {then}", self.passed_over.join("; ")))
    }
}

/// The state of a run's final weights (`model.safetensors` against `weights.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    /// There, and their bytes match the manifest.
    Verified,
    /// There, with no manifest (written before gatelab recorded one): trusted as they are.
    Unverified,
    /// Not there.
    Missing,
    /// There, but cut short or changed since they were written (or their manifest is unreadable).
    Damaged(String),
}

impl Weights {
    /// Whether they can be used.
    pub fn usable(&self) -> bool {
        matches!(self, Weights::Verified | Weights::Unverified)
    }

    /// What is wrong, for people (`None` when usable): `weights missing`, `weights damaged (…)`.
    pub fn problem(&self) -> Option<String> {
        match self {
            Weights::Verified | Weights::Unverified => None,
            Weights::Missing => Some(format!("weights missing ({WEIGHTS} is gone)")),
            Weights::Damaged(why) => Some(format!("weights damaged ({why})")),
        }
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
