//! Scaled dot-product attention, `softmax(Q·Kᵀ·scale, masked) · V`, as one differentiable
//! operation with a handwritten backward pass.
//!
//! Written as separate tensor operations, Burn's autodiff records the scale, the mask and each of
//! the five operations inside `softmax` as graph nodes, and differentiates them one by one:
//! about fifteen passes over the `[batch, heads, seq, seq]` scores per layer and step, the
//! largest tensors of the model at any useful sequence length. Here the forward pass runs the
//! backend's own (fused) softmax and the backward pass is the closed form FlashAttention uses,
//! with `O = P·V`:
//!
//! ```text
//! dV = Pᵀ·dO     dP = dO·Vᵀ     D = rowsum(dO ⊙ O)     dS = P ⊙ (dP − D)
//! dQ = dS·K·scale               dK = dSᵀ·Q·scale
//! ```
//!
//! so the backward pass touches the scores four times (two products, one subtract-and-multiply
//! pair). Masked entries have `P = 0`, hence `dS = 0`: the mask needs no backward of its own.
//! The same function serves the probes, which read `P` from it. The math is the same as the
//! decomposed form; the PyTorch parity tests (`model/tests/model/parity.rs`) check logits and
//! every gradient through it.
//!
//! It is registered as a Burn backend extension for flex, libtorch (cargo feature `tch`) and the
//! CubeCL backends (cargo feature `wgpu`), each with the forward above, and for autodiff with the
//! backward above.

// burn-tch (`LibTorch`) is deprecated upstream; gatelab keeps its libtorch backend.
#![allow(deprecated)]

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Bool, Tensor};

/// The forward pass on any backend: `(P·V, P)` with `P = softmax(Q·Kᵀ·scale, masked)`.
fn forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    masked: BoolTensor<B>,
    scale: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let logits = B::float_mul_scalar(B::float_matmul(q, B::float_swap_dims(k, 2, 3)), scale.into());
    let probs = B::softmax(B::float_mask_fill(logits, masked, f32::NEG_INFINITY.into()), 3);
    (B::float_matmul(probs.clone(), v), probs)
}

/// The operation, per backend.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait SdpaOps: Backend {
    /// `q [b, kv, g·t, hd]`, `k`, `v` `[b, kv, t, hd]`, `masked` broadcast to `[b, kv, g·t, t]`
    /// (true: not attended) → `(out [b, kv, g·t, hd], probs [b, kv, g·t, t])`; `probs` carries no
    /// gradient.
    fn sdpa(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        forward::<Self>(q, k, v, masked, scale)
    }
}

impl SdpaOps for Flex {}

#[cfg(feature = "tch")]
impl SdpaOps for burn::backend::LibTorch {}

#[cfg(feature = "wgpu")]
impl SdpaOps for burn::backend::Cube {}

/// The backward pass (module docs), from the forward's inputs and outputs.
#[derive(Debug)]
struct SdpaBackward;

impl<B: Backend> Backward<B, 3> for SdpaBackward {
    /// `(q, k, v, probs, out, scale)`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_out = grads.consume::<B>(&ops.node);
        let (q, k, v, probs, out, scale) = ops.state;
        if let Some(node) = node_v {
            grads.register::<B>(node.id, B::float_matmul(B::float_swap_dims(probs.clone(), 2, 3), d_out.clone()));
        }
        if node_q.is_none() && node_k.is_none() {
            return;
        }
        let d_probs = B::float_matmul(d_out.clone(), B::float_swap_dims(v, 2, 3));
        let rowsum = B::float_sum_dim(B::float_mul(d_out, out), 3);
        let d_scores = B::float_mul_scalar(B::float_mul(probs, B::float_sub(d_probs, rowsum)), scale.into());
        if let Some(node) = node_q {
            grads.register::<B>(node.id, B::float_matmul(d_scores.clone(), k));
        }
        if let Some(node) = node_k {
            grads.register::<B>(node.id, B::float_matmul(B::float_swap_dims(d_scores, 2, 3), q));
        }
    }
}

impl<B: Backend + SdpaOps, C: CheckpointStrategy> SdpaOps for Autodiff<B, C> {
    fn sdpa(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [q.node(), k.node(), v.node()];
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        match SdpaBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, probs) = B::sdpa(q.clone(), k.clone(), v.clone(), masked, scale);
                let state = (q, k, v, probs.clone(), out.clone(), scale);
                (prep.finish(state, out), Self::from_inner(probs))
            }
            OpsKind::UnTracked(prep) => {
                let (out, probs) = B::sdpa(q, k, v, masked, scale);
                (prep.finish(out), Self::from_inner(probs))
            }
        }
    }
}

/// Causal (or otherwise masked) attention on the model's tensors: `q [b, kv, g·t, hd]` (the
/// query heads of one KV group stacked along the sequence axis), `k`, `v` `[b, kv, t, hd]`,
/// `masked [g·t, t]` (true: not attended) → `(out [b, kv, g·t, hd], probs [b, kv, g·t, t])`.
/// `probs` is detached from the autodiff graph: it is for the probes.
pub fn sdpa(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, masked: Tensor<2, Bool>, scale: f64) -> (Tensor<4>, Tensor<4>) {
    let (out, probs) = <Dispatch as SdpaOps>::sdpa(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        masked.unsqueeze::<4>().into_dispatch(),
        scale,
    );
    (Tensor::from_dispatch(out), Tensor::from_dispatch(probs))
}
