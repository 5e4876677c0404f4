//! gatelab's experiments: grids of variants, presets, Hydra-style overrides, sweeps of runs in
//! resumable run folders, on a backend chosen at run time. The `gatelab` binary (src/main.rs and
//! src/cli/) is its command-line face.
//!
//! - [`bench`]: training, forward and analysis throughput, measured one case per process.
//! - [`backend`]: `--backend flex|wgpu|tch|tch-cuda`.
//! - [`config`]: [`config::RunConfig`] and the presets of scale.
//! - [`grid`]: grid files, overrides, expansion into runs, shards.
//! - [`train`]: one training run.
//! - [`rundir`]: the run folder (the contract with analysis).
//! - [`sweep`]: runs a grid.
//! - [`extend`]: continued training of finished runs at a longer length (new runs naming their
//!   parent).

pub mod backend;
pub mod bench;
pub mod config;
pub mod extend;
pub mod grid;
pub mod rundir;
pub mod sweep;
pub mod train;
