//! The lock of a run folder: an advisory lock on its `.lock` file, held while a process trains,
//! analyses or otherwise writes the folder, so two sweeps (a requeued job beside the old one, a
//! repeated shard, a sweep started twice) never write one run at once.
//!
//! The lock is the kernel's (`flock` on Unix, through [`std::fs::File::try_lock`]): it is released
//! when its holder exits, however it exits, so a lock left by a dead process is simply taken by
//! the next one. The file itself stays (removing it would let two processes lock two different
//! files of one name); it records who holds it, for the message of the one that is refused.

use crate::error::RunDirError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file of a run folder.
pub const LOCK: &str = ".lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds a lock, as its file says: `pid 4242 on host node07 since 2026-12-01T23:40:00Z
/// (training)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder(pub String);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() { write!(f, "another process") } else { write!(f, "{}", self.0) }
    }
}

/// Takes the lock of the folder `dir` (which must exist) for `doing` ("training", "analysing"),
/// without waiting: `Ok(Err(holder))` when another process holds it.
pub fn try_lock(dir: &Path, doing: &str) -> Result<Result<RunLock, Holder>, RunDirError> {
    let (path, mut file) = open(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Ok(held(path, file, doing)?)),
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Ok(Err(Holder(text.trim().to_string())))
        }
        Err(TryLockError::Error(e)) => Err(RunDirError::io(&path, e)),
    }
}

/// Takes the lock of the folder `dir` for `doing`, waiting while another process holds it (for
/// short work on a finished run, such as its analysis).
pub fn lock(dir: &Path, doing: &str) -> Result<RunLock, RunDirError> {
    let (path, file) = open(dir)?;
    file.lock().map_err(|e| RunDirError::io(&path, e))?;
    held(path, file, doing)
}

fn open(dir: &Path) -> Result<(PathBuf, File), RunDirError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| RunDirError::io(&path, e))?;
    Ok((path, file))
}

/// Records who holds the lock just taken.
fn held(path: PathBuf, mut file: File, doing: &str) -> Result<RunLock, RunDirError> {
    let line = format!("pid {} on host {} since {} ({doing})\n", std::process::id(), host(), now_utc());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(line.as_bytes()))
        .map_err(|e| RunDirError::io(&path, e))?;
    Ok(RunLock { _file: file, path })
}

/// This machine's name.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The time now, UTC, as `2026-12-01T23:40:00Z`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_with_the_holder_and_takes_it_once_released() {
        let dir = std::env::temp_dir().join(format!("gatelab-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = try_lock(&dir, "training").unwrap().unwrap();
        // A second open file description conflicts even within one process.
        let refused = try_lock(&dir, "analysing").unwrap().unwrap_err();
        assert!(refused.0.starts_with(&format!("pid {} on host ", std::process::id())), "{refused}");
        assert!(refused.0.ends_with("(training)"), "{refused}");
        drop(held);
        let again = try_lock(&dir, "analysing").unwrap().unwrap();
        assert!(std::fs::read_to_string(again.path()).unwrap().contains("(analysing)"));
    }

    #[test]
    fn the_date_is_civil() {
        let now = now_utc();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
