//! [`ExperimentError`]: what can stop a sweep, a run or a command, naming the grid, variant,
//! key, option or file at fault. The binary prints it, with its causes, on one line.

use std::path::PathBuf;

/// An experiments problem.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A run folder (or another file gatelab writes) that cannot be read or written.
    #[error(transparent)]
    RunDir(#[from] gatelab_rundir::RunDirError),
    /// The model's weights or checkpoints.
    #[error(transparent)]
    Model(#[from] gatelab_model::ModelError),
    /// A refused model config.
    #[error(transparent)]
    Config(#[from] gatelab_model::ConfigError),
    /// The data.
    #[error(transparent)]
    Data(#[from] gatelab_data::DataError),
    /// Analysis and reports.
    #[error(transparent)]
    Analysis(#[from] gatelab_analysis::AnalysisError),
    /// A grid file that cannot be used, e.g. `grid core: no variants`.
    #[error("{source_name}: {message}")]
    Grid {
        /// `grid NAME` (built in) or the file's path.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A `key=value` override that cannot be applied.
    #[error("override {key}: {message}")]
    Override {
        /// The dotted key.
        key: String,
        /// Why.
        message: String,
    },
    /// A problem in one variant of a grid; the cause follows.
    #[error("grid {grid}, variant {variant}")]
    Variant {
        /// The grid.
        grid: String,
        /// The variant.
        variant: String,
        /// What went wrong.
        source: Box<ExperimentError>,
    },
    /// A backend that cannot be used here.
    #[error("backend {backend}: {message}")]
    Backend {
        /// Its name.
        backend: String,
        /// Why.
        message: String,
    },
    /// A command-line option or setting that makes no sense, e.g. `--shard 4/3: …`.
    #[error("{option}: {message}")]
    Option {
        /// The option (`--shard 4/3`) or setting.
        option: String,
        /// Why.
        message: String,
    },
    /// A file or folder and what is wrong with it.
    #[error("{}: {message}", path.display())]
    File {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Training could not go on (a checkpoint that will not load, a device error).
    #[error("{0}")]
    Training(String),
    /// Training stopped on request (SIGINT, SIGTERM) at a checkpoint.
    #[error("interrupted: {} stopped at step {step} and checkpointed; rerun the same command to resume", run.display())]
    Interrupted {
        /// The run that was training.
        run: PathBuf,
        /// Its checkpoint's step.
        step: usize,
    },
    /// A command other than training (analysis, a report) stopped on request (SIGINT, SIGTERM)
    /// before it was done; what it had written stays whole.
    #[error("interrupted: {0} stopped before it was done; rerun the same command to finish")]
    Stopped(String),
    /// A command line that cannot be carried out, in one sentence.
    #[error("{0}")]
    Usage(String),
}

impl ExperimentError {
    /// A refused option.
    pub fn option(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Option { option: option.into(), message: message.into() }
    }

    /// A refused override.
    pub fn override_key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Override { key: key.into(), message: message.into() }
    }

    /// A problem with a file or folder.
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::File { path: path.into(), message: message.to_string() }
    }

    /// A problem in a variant of a grid.
    pub fn in_variant(grid: &str, variant: &str, source: ExperimentError) -> Self {
        Self::Variant { grid: grid.into(), variant: variant.into(), source: Box::new(source) }
    }

    /// The error and its causes on one line, as the binary prints it.
    pub fn one_line(&self) -> String {
        gatelab_rundir::one_line(self)
    }
}

/// The experiments' results.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;
