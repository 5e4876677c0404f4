//! gatelab's model: a Qwen3-style decoder whose attention takes any point of the gating design
//! space of Qiu et al. 2025 as data ([`GateSpec`]), with probes for attention maps, gate scores
//! and hidden states. It knows nothing of training, data or files beyond its own weights.
//!
//! - [`gate`]: the design space (position G1–G5, granularity, sharing, combination, activation,
//!   input dependence, SDPA non-linearity ablations).
//! - [`cure`]: the attention-sink cures ([`SinkCure`]): how scores become weights.
//! - [`config`]: the model config, [`ModelConfig`], its validation and exact parameter counts.
//! - [`attention`], [`transformer`]: the modules; [`rope`]: rotary embeddings; [`sdpa`]: the
//!   attention core as one operation with a handwritten backward pass.
//! - [`moe`]: the mixture-of-experts FFN ([`MoeSpec`]) and Switch-Head attention ([`SwitchHeadSpec`]).
//! - [`precision`]: mixed precision (a bf16 forward pass on f32 master weights).
//! - [`probe`]: what [`Transformer::forward_probed`] returns.
//! - [`recompute`]: a training step's gradients with each block recomputed in the backward pass
//!   (activation checkpointing per block).
//! - [`error`]: the error types, [`ConfigError`] and [`ModelError`].
//! - [`weights`]: safetensors interchange with PyTorch, names documented there.
//! - [`hf`]: Hugging Face Qwen3-format checkpoint directories in and out (plain, the paper's
//!   gated layout, Qwen3-Next's).

pub mod attention;
pub mod config;
pub mod cure;
pub mod error;
pub mod fused;
pub mod gate;
pub mod hf;
pub mod kernels;
pub mod moe;
pub mod precision;
pub mod probe;
pub mod recompute;
pub mod rope;
pub mod sdpa;
pub mod transformer;
pub mod weights;

pub use config::{ModelConfig, ParamCount};
pub use cure::SinkCure;
pub use error::{ConfigError, ModelError};
pub use gate::{
    Combination, GateActivation, GateInit, GateInput, GatePosition, GateSpec, Granularity, HeadSharing, InputDims,
    SdpaNonlinearity,
};
pub use moe::{MoeSpec, Routing, SharedGate, SwitchHeadSpec};
pub use probe::{LayerProbe, Probes};
pub use rope::RopeScaling;
pub use transformer::{ResidualEdit, Transformer, cross_entropy, masked_cross_entropy, token_nll};
