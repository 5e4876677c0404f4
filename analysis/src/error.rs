//! [`AnalysisError`]: what can stop an analysis, naming the run, file or option at fault.

use std::path::PathBuf;

/// An analysis problem.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A run folder that cannot be read or written.
    #[error(transparent)]
    RunDir(#[from] gatelab_rundir::RunDirError),
    /// The model's weights or config.
    #[error(transparent)]
    Model(#[from] gatelab_model::ModelError),
    /// A refused model config.
    #[error(transparent)]
    Config(#[from] gatelab_model::ConfigError),
    /// The run's data.
    #[error(transparent)]
    Data(#[from] gatelab_data::DataError),
    /// A run (or sweep, or checkpoint) folder that cannot be analysed as asked.
    #[error("{}: {message}", path.display())]
    Run {
        /// The folder.
        path: PathBuf,
        /// Why, and what would fix it.
        message: String,
    },
    /// A chart that could not be drawn.
    #[error("chart {chart}: {message}")]
    Chart {
        /// The chart's file stem.
        chart: String,
        /// What went wrong.
        message: String,
    },
    /// An option that makes no sense, e.g. `--methods: unknown method foo`.
    #[error("{option}: {message}")]
    Option {
        /// The option or field.
        option: String,
        /// Why it was refused.
        message: String,
    },
}

impl AnalysisError {
    /// A problem with the folder `path`.
    pub fn run(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Run { path: path.into(), message: message.into() }
    }

    /// A chart that could not be drawn.
    pub fn chart(chart: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Chart { chart: chart.into(), message: message.to_string() }
    }

    /// A refused option.
    pub fn option(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Option { option: option.into(), message: message.into() }
    }
}

/// The analysis's results.
pub type Result<T, E = AnalysisError> = std::result::Result<T, E>;
