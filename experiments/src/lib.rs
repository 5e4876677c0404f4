//! gatelab's experiments: grids of variants, presets, Hydra-style overrides, sweeps of runs in
//! resumable run folders, on a backend chosen at run time. The `gatelab` binary (src/main.rs and
//! src/cli/) is its command-line face.
//!
//! - [`bench`]: training, forward and analysis throughput, measured one case per process.
//! - [`backend`]: `--backend flex|wgpu|cuda|tch|tch-cuda`.
//! - [`collective`]: data parallel through Burn's `all_reduce` (CUDA), or gatelab's loop.
//! - [`config`]: the presets of scale ([`config::RunConfig`] is the run folder's, `gatelab_rundir`).
//! - [`error`]: the error type, [`ExperimentError`].
//! - [`progress`]: progress bars of a sweep.
//! - [`grid`]: grid files, overrides, expansion into runs, shards.
//! - [`interrupt`]: stopping cleanly on SIGINT and SIGTERM.
//! - [`optim`]: AdamW as one fused update per parameter tensor.
//! - [`train`]: one training run.
//! - [`sweep`]: runs a grid.
//! - [`extend`]: continued training of finished runs at a longer length (new runs naming their
//!   parent).

pub mod backend;
pub mod bench;
pub mod collective;
pub mod config;
pub mod error;
pub mod extend;
pub mod grid;
pub mod interrupt;
pub mod optim;
pub mod progress;
pub mod retrofit;
pub mod sweep;
pub mod train;
pub mod trainable;

pub use error::{ExperimentError, Result};
