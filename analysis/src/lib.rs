//! gatelab's analysis: statistics computed from the model's probes. It reads models and run
//! folders, never the training code. For now the first-token attention share (F-Attn); the full
//! set of sink, activation and gate statistics and the reports follow (issue "Attention-sink
//! analysis and reports").

pub mod layer;
pub mod sink;
pub mod stats;
