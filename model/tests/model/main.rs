//! The model crate's integration tests, in one binary (one link of Burn instead of several).

mod common;
mod forward;
mod fused;
mod hf;
mod parity;
mod recompute;
mod rope;
mod sdpa;
