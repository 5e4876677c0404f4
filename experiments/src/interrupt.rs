//! Stopping cleanly on Ctrl-C (SIGINT) or SIGTERM (Slurm's preemption): the first signal asks the
//! training loop to finish its step, checkpoint and mark the run `interrupted`; a second one ends
//! the process at once (the run then resumes from its last periodic checkpoint).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// An error when a stop was asked for (analysis and reports check between runs): `doing` names
/// the command, `gatelab report`.
pub fn check(doing: &str) -> crate::Result<()> {
    if requested() { Err(crate::ExperimentError::Stopped(doing.into())) } else { Ok(()) }
}

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    REQUESTED.store(true, Ordering::Relaxed);
    // SAFETY: signal() is async-signal-safe; the next signal of this kind takes the default action.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Installs the handlers of SIGINT and SIGTERM (the commands that train, analyse or report).
#[cfg(unix)]
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic and resets itself, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Installs nothing where there are no Unix signals.
#[cfg(not(unix))]
pub fn install() {}
