//! gatelab's data: corpora and tokenizers. For now the embedded synthetic default; local text
//! files, BPE and hub datasets follow (issue "Corpora and tokenizers").
//!
//! - [`synthetic`]: in-process corpora, deterministic by seed, no files.
//! - [`rng`]: the small deterministic generator they share.

pub mod rng;
pub mod synthetic;
