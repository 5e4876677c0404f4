//! The model crate's errors: [`ConfigError`] (a refused configuration field) and [`ModelError`]
//! (weights and checkpoints), each naming the field or the file at fault.

use std::path::{Path, PathBuf};

/// A configuration refused because one of its fields makes no sense; `field` is its dotted path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `gate.granularity`.
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Weights or a checkpoint that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A refused configuration (of the model, or one a checkpoint implies).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or folder of weights or of a checkpoint, and what is wrong with it.
    #[error("{}: {message}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model the Hugging Face format cannot hold, or a tensor that will not convert.
    #[error("{0}")]
    Unsupported(String),
}

impl ModelError {
    /// A problem with the file or folder `path`.
    pub fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::File { path: path.to_path_buf(), message: message.to_string() }
    }
}
