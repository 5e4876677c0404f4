//! The model crate's integration tests, in one binary (one link of Burn instead of several).

mod common;
mod forward;
mod hf;
mod parity;
mod rope;
