//! [`DataError`]: one line that names the file (and line) or the field at fault, for the CLI to
//! print before it exits non-zero.

use std::fmt;
use std::path::{Path, PathBuf};

/// A data problem, such as `corpus.jsonl:3: no "text" field` or
/// `data.corpus.alpha: must be a positive number`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct DataError {
    /// The file at fault, if any.
    pub path: Option<PathBuf>,
    /// Its line (from 1), if known.
    pub line: Option<usize>,
    /// The config field at fault (dotted), if any.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl DataError {
    /// A message with no file or field attached.
    pub fn new(message: impl Into<String>) -> Self {
        Self { path: None, line: None, field: None, message: message.into() }
    }

    /// `field: message`, for a refused config field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(message) }
    }

    /// `PATH: message`.
    pub fn in_file(path: &Path, message: impl fmt::Display) -> Self {
        Self { path: Some(path.to_path_buf()), ..Self::new(message.to_string()) }
    }

    /// `PATH:LINE: message` (lines count from 1).
    pub fn at_line(path: &Path, line: usize, message: impl fmt::Display) -> Self {
        Self { line: Some(line), ..Self::in_file(path, message) }
    }

    /// An I/O error on `path`, worded for people (`no such file or directory`).
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::InvalidData => "not valid UTF-8".to_string(),
            _ => e.to_string(),
        };
        Self::in_file(path, message)
    }

    fn render(&self) -> String {
        match (&self.path, self.line, &self.field) {
            (Some(p), Some(l), _) => format!("{}:{l}: {}", p.display(), self.message),
            (Some(p), None, _) => format!("{}: {}", p.display(), self.message),
            (None, _, Some(f)) => format!("{f}: {}", self.message),
            (None, _, None) => self.message.clone(),
        }
    }
}
