//! `status.json`: where a run stands.

use serde::{Deserialize, Serialize};

/// Where a run stands.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    /// Planned, not started.
    Pending,
    /// Training now, or stopped without a word (a crash, SIGKILL); resumes from its checkpoint.
    Running {
        /// The step of the checkpoint it would resume from.
        step: usize,
    },
    /// Stopped on request (Ctrl-C, SIGTERM) at its last checkpoint; resumes from there.
    Interrupted {
        /// The step of the checkpoint it resumes from.
        step: usize,
    },
    /// Finished every step.
    Done,
    /// The loss diverged at `step`.
    Diverged {
        /// Step of the divergence.
        step: usize,
        /// Loss seen there (NaN or infinite losses are stored as null).
        #[serde(deserialize_with = "crate::records::nan_if_null")]
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

    /// Whether it finished every step.
    pub fn is_done(&self) -> bool {
        matches!(self, Status::Done)
    }

    /// One word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running { .. } => "running",
            Status::Interrupted { .. } => "interrupted",
            Status::Done => "done",
            Status::Diverged { .. } => "diverged",
            Status::Failed { .. } => "failed",
        }
    }

    /// One line for people: `diverged at step 120 (loss inf)`.
    pub fn describe(&self) -> String {
        match self {
            Status::Pending => "pending".into(),
            Status::Running { step } => format!("unfinished (checkpoint at step {step})"),
            Status::Interrupted { step } => format!("interrupted (checkpoint at step {step})"),
            Status::Done => "done".into(),
            Status::Diverged { step, loss } => format!("diverged at step {step} (loss {loss:.4})"),
            Status::Failed { reason } => format!("failed: {reason}"),
        }
    }
}
