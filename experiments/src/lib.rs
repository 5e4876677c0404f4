//! gatelab's experiments: grids of variants, presets, Hydra-style overrides, sweeps of runs in
//! resumable run folders, on a backend chosen at run time. The `gatelab` binary (src/main.rs and
//! src/cli/) is its command-line face.
//!
//! - [`backend`]: `--backend flex|wgpu|tch|tch-cuda`.
//! - [`config`]: [`config::RunConfig`] and the presets of scale.
//! - [`grid`]: grid files, overrides, expansion into runs, shards.
//! - [`train`]: one training run.
//! - [`rundir`]: the run folder (the contract with analysis).
//! - [`sweep`]: runs a grid.

pub mod backend;
pub mod config;
pub mod grid;
pub mod rundir;
pub mod sweep;
pub mod train;
