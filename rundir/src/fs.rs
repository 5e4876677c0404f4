//! Files of a run folder (and of the reports beside it): whole files are written to a temporary
//! name, flushed to disk and renamed, so a reader never sees half of one and a crash leaves the
//! previous version; JSONL logs are appended a line at a time.

use crate::error::RunDirError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::Path;

/// A temporary name beside `path`, unique to this process and call (`.name.<pid>.<n>.tmp`), so
/// two processes (or threads) writing the same file never share one.
pub fn temporary_beside(path: &Path) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (unique to this process),
/// flushed to disk, then renamed over `path`. The one atomic write of gatelab.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let tmp = temporary_beside(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(|e| RunDirError::io(&tmp, e));
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| RunDirError::io(path, e)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Writes `value` as pretty JSON (with a final newline), atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunDirError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|error| RunDirError::Json {
        path: path.into(),
        line: None,
        error,
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RunDirError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunDirError::io(path, e))?;
    serde_json::from_str(&text).map_err(|error| RunDirError::Json { path: path.into(), line: None, error })
}

/// Reads the records of a JSONL log. A missing file is an empty log; a last line that does not
/// parse is a write cut short by a crash and is skipped; any other bad line is an error naming
/// its line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, RunDirError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunDirError::io(path, e)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut records = Vec::with_capacity(lines.len());
    for (k, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if k + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(error) => return Err(RunDirError::Json { path: path.into(), line: Some(k + 1), error }),
        }
    }
    Ok(records)
}

/// Appends one record as a JSON line.
pub fn append_jsonl(path: &Path, record: &impl Serialize) -> Result<(), RunDirError> {
    let mut line =
        serde_json::to_string(record).map_err(|error| RunDirError::Json { path: path.into(), line: None, error })?;
    line.push('\n');
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| RunDirError::io(path, e))?;
    file.write_all(line.as_bytes()).map_err(|e| RunDirError::io(path, e))
}
