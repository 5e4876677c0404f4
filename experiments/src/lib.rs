//! gatelab's experiments: backends chosen at run time and training runs. The `gatelab` binary
//! (src/main.rs) is the command-line face of this crate; grids, sweeps and run folders follow
//! (issue "The sweep harness").

pub mod backend;
pub mod train;
