//! The subcommands of `gatelab`, one module each.

pub mod data;
pub mod sweep;
