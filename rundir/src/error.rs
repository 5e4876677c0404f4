//! [`RunDirError`]: what can go wrong reading or writing a run folder, naming the file or field.

use std::path::PathBuf;

/// A run-folder problem. Its message names the file (and line) or the config field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// Reading or writing a file.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A JSON file (or a JSONL line) that does not hold what its name promises.
    #[error("{}{}: {error}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Json {
        /// The file.
        path: PathBuf,
        /// The line of a JSONL file (from 1).
        line: Option<usize>,
        /// What the parser said.
        error: serde_json::Error,
    },
    /// A config field whose value makes no sense, e.g. `train.lr: must be a positive number`.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// Why it was refused.
        message: String,
    },
    /// A folder that is not what the caller needs (no runs in it, an unfinished run, …).
    #[error("{}: {message}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The model's weights or config.
    #[error(transparent)]
    Model(#[from] gatelab_model::ModelError),
    /// The data (a tokenizer the config names).
    #[error(transparent)]
    Data(#[from] gatelab_data::DataError),
}

impl RunDirError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io { path: path.into(), error }
    }

    /// A refused field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    /// A folder problem.
    pub fn folder(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Folder { path: path.into(), message: message.into() }
    }
}

/// An error and its causes on one line, `outer: cause: cause`, as the `gatelab` binary prints it.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        // A cause already spelled out by its wrapper is not repeated.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}
