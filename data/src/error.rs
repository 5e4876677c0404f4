//! [`DataError`]: one line that names the file (and line) at fault, for the CLI to print before it
//! exits non-zero.

use std::fmt;
use std::path::Path;

/// A data problem, as one line such as `corpus.jsonl:3: no "text" field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError(String);

impl DataError {
    /// A message with no file attached.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// `PATH: message`.
    pub fn in_file(path: &Path, message: impl fmt::Display) -> Self {
        Self(format!("{}: {message}", path.display()))
    }

    /// `PATH:LINE: message` (lines count from 1).
    pub fn at_line(path: &Path, line: usize, message: impl fmt::Display) -> Self {
        Self(format!("{}:{line}: {message}", path.display()))
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

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataError {}
