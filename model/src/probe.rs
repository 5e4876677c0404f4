//! What [`crate::Transformer::forward_probed`] exposes, per layer, to the analysis crate.

use crate::attention::AttentionProbe;
use burn::tensor::Tensor;

/// One layer's internals for one batch.
#[derive(Debug, Clone)]
pub struct LayerProbe {
    /// Attention maps, values, gate scores and SDPA outputs (see [`AttentionProbe`]).
    pub attention: AttentionProbe,
    /// Residual stream after this block, `[batch, seq, d_model]`.
    pub residual: Tensor<3>,
}

/// Every layer's probe, first layer first.
#[derive(Debug, Clone)]
pub struct Probes {
    /// One entry per decoder block.
    pub layers: Vec<LayerProbe>,
}
