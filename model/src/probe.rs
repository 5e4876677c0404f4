//! What [`crate::Transformer::forward_probed`] exposes, per layer, to the analysis crate.

use crate::attention::AttentionProbe;
use crate::moe::Routing;
use burn::tensor::Tensor;

/// One layer's internals for one batch.
#[derive(Debug, Clone)]
pub struct LayerProbe {
    /// Attention maps, values, gate scores and SDPA outputs (see [`AttentionProbe`]).
    pub attention: AttentionProbe,
    /// Residual stream after this block, `[batch, seq, d_model]`.
    pub residual: Tensor<3>,
    /// The mixture-of-experts FFN's routing (router probabilities, chosen experts, auxiliary
    /// losses); `None` for a dense FFN.
    pub routing: Option<Routing>,
}

/// Every layer's probe, first layer first.
#[derive(Debug, Clone)]
pub struct Probes {
    /// One entry per decoder block.
    pub layers: Vec<LayerProbe>,
}
