//! The subcommands of `gatelab`, one module each.

pub mod analyze;
pub mod bench;
pub mod data;
pub mod sweep;
