//! The subcommands of `gatelab`, one module per family, and the arguments they share.

pub mod analyze;
pub mod bench;
pub mod data;
pub mod eval;
pub mod export;
pub mod length;
pub mod report;
pub mod retrofit;
pub mod sweep;

use gatelab::backend::{self, Backend};
use gatelab::{ExperimentError, Result};
use gatelab_rundir::{RunDir, runs_under};
use std::path::Path;

/// The finished runs under `path` (a run or sweep folder). Each other run is named on stderr with
/// its state and what would finish it; with none finished, an error says what could not be done
/// (`doing`: "analyse", "evaluate").
pub fn finished_runs(path: &Path, doing: &str) -> Result<Vec<RunDir>> {
    let (done, unfinished): (Vec<RunDir>, Vec<RunDir>) = runs_under(path)?.into_iter().partition(RunDir::is_done);
    for run in &unfinished {
        let why = gatelab_analysis::run::require_done(run).err().map(|e| e.to_string()).unwrap_or_default();
        eprintln!("{}: skipped: {why}", run.name());
    }
    if done.is_empty() {
        return Err(ExperimentError::file(path, format!("no finished run to {doing} (see the lines above)")));
    }
    Ok(done)
}

/// Where a command computes: the backend and its device.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Backend: flex (pure-Rust CPU), wgpu, tch, tch-cuda, or auto (a GPU through wgpu, else flex).
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// Device index (wgpu discrete GPU, CUDA device).
    #[arg(long, default_value_t = 0)]
    pub device_index: usize,
}

impl DeviceArgs {
    /// The device, checked to work here.
    pub fn open(&self) -> Result<burn::tensor::Device> {
        backend::open(self.backend, self.device_index)
    }
}

/// Where training runs: a device, or several for data-parallel training.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainDeviceArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Data-parallel training over these device indices (e.g. 0,1,2,3): each step's batch is
    /// split over them and the gradients summed on the first.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<usize>,
}
