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
//! The slot cures (`crate::cure`: softmax+1, a learned sink logit, a key/value bias) add one
//! column to the softmax, a slot with a logit `c` per query row and a value `v_slot` per KV head:
//! `[P_slot | P] = softmax([c | S])`, `O = P·V + P_slot·v_slot`. Its closed-form backward adds
//!
//! ```text
//! dc = P_slot ⊙ (dO·v_slotᵀ − D)     dv_slot = P_slotᵀ·dO
//! ```
//!
//! with the same `D`, which now includes the slot's term; the learned sink logit and key/value
//! bias get their gradients from `dc` and `dv_slot` through the autodiff graph that built them.
//!
//! It is registered as a Burn backend extension for flex, libtorch (cargo feature `tch`) and the
//! CubeCL backends (cargo features `wgpu`, `cuda`; through Burn's fusion, which queues the fused
//! causal operations as custom operations), each with the forward above, and for autodiff with
//! the backward above.
//!
//! # The fused causal path
//!
//! Training and plain forward passes need neither `P` nor a mask other than the causal one, so
//! they take a second operation, [`causal_sdpa`]: `out = softmax(Q·Kᵀ·scale, causal)·V` whose
//! forward returns, beside `out`, a *residual* the backend chooses, and whose backward takes it
//! back. Backends with a fused kernel keep only the row log-sum-exp `L` there, `[b, kv, g·t]`,
//! and recompute `P = exp(S − L)` tile by tile in the backward pass, so the `[batch, heads, seq,
//! seq]` probabilities are never stored:
//!
//! - flex: [`flex`], a tiled kernel in Rust (query tiles × the keys they can see, the causal half
//!   skipped), parallel over heads;
//! - libtorch on the CPU: [`tch`], libtorch's own flash attention
//!   (`_scaled_dot_product_flash_attention_for_cpu` and its backward);
//! - libtorch on CUDA: [`tch`], `scaled_dot_product_attention`, whose dispatcher picks flash,
//!   memory-efficient or cuDNN attention, differentiated by libtorch's autograd;
//! - the CubeCL backends (wgpu, CUDA): [`cube`], three CubeCL kernels (forward; dQ; dK and dV),
//!   tested on Mesa's lavapipe;
//! - any other backend: the reference forward above with `P` as the residual and the closed-form
//!   backward, i.e. what [`sdpa`] does.
//!
//! The slot cures (softmax+1, a learned sink logit, a key/value bias) and every non-causal mask
//! take [`sdpa`], the reference path, on every backend: the fused kernels are causal attention
//! without a slot.
//!
//! The probes keep [`sdpa`]: they need `P`. `model/tests/model/sdpa.rs` checks every path's
//! output and gradients against the reference on the same inputs.

// burn-tch (`LibTorch`) is deprecated upstream; gatelab keeps its libtorch backend.
#![allow(deprecated)]

#[cfg(feature = "cube")]
mod cube;
mod flex;
#[cfg(feature = "tch")]
mod tch;
#[cfg(feature = "tch")]
pub use self::tch::cuda_kernel;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Bool, DType, Tensor};

/// The forward pass on any backend: `(P·V + P_slot·v_slot, P, P_slot)` with
/// `[P_slot | P] = softmax([c | Q·Kᵀ·scale], masked)` when `slot`, else `P = softmax(Q·Kᵀ·scale,
/// masked)` and `P_slot` a `[1, 1, 1, 1]` zero.
#[allow(clippy::too_many_arguments)]
fn forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    masked: BoolTensor<B>,
    slot_logit: FloatTensor<B>,
    slot_value: FloatTensor<B>,
    scale: f64,
    slot: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let logits = B::float_mul_scalar(B::float_matmul(q, B::float_swap_dims(k, 2, 3)), scale.into());
    let logits = B::float_mask_fill(logits, masked, f32::NEG_INFINITY.into());
    if !slot {
        let probs = B::softmax(logits, 3);
        let none = B::float_zeros([1, 1, 1, 1].into(), &probs.device(), probs.dtype().into());
        return (B::float_matmul(probs.clone(), v), probs, none);
    }
    let [b, kv, rows, t] = logits.shape().dims();
    let all = B::softmax(B::float_cat(vec![slot_logit, logits], 3), 3);
    let slot_probs = B::float_slice(all.clone(), &[(0..b).into(), (0..kv).into(), (0..rows).into(), (0..1).into()]);
    let probs = B::float_slice(all, &[(0..b).into(), (0..kv).into(), (0..rows).into(), (1..t + 1).into()]);
    let out = B::float_add(B::float_matmul(probs.clone(), v), B::float_matmul(slot_probs.clone(), slot_value));
    (out, probs, slot_probs)
}

/// `dS = P ⊙ (dO·Vᵀ − D)·scale`, the gradient of the scaled scores, with `D = rowsum(dO ⊙ O)`
/// `[b, kv, g·t, 1]`.
fn d_scores<B: Backend>(
    probs: FloatTensor<B>,
    d_out: FloatTensor<B>,
    v: FloatTensor<B>,
    rowsum: FloatTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let d_probs = B::float_matmul(d_out, B::float_swap_dims(v, 2, 3));
    B::float_mul_scalar(B::float_mul(probs, B::float_sub(d_probs, rowsum)), scale.into())
}

/// The reference causal path: `(out, P)`, `P` being the residual.
fn reference_causal<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    masked: BoolTensor<B>,
    scale: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let none = B::float_zeros([1, 1, 1, 1].into(), &q.device(), q.dtype().into());
    let (out, probs, _) = forward::<B>(q, k, v, masked, none.clone(), none, scale, false);
    (out, probs)
}

/// The reference causal backward from `P`: `(dq, dk, dv)`.
fn reference_causal_backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    out: FloatTensor<B>,
    probs: FloatTensor<B>,
    d_out: FloatTensor<B>,
    scale: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let dv = B::float_matmul(B::float_swap_dims(probs.clone(), 2, 3), d_out.clone());
    let rowsum = B::float_sum_dim(B::float_mul(d_out.clone(), out), 3);
    let ds = d_scores::<B>(probs, d_out, v, rowsum, scale);
    (B::float_matmul(ds.clone(), k), B::float_matmul(B::float_swap_dims(ds, 2, 3), q), dv)
}

/// The operations, per backend.
#[backend_extension(
    Flex,
    LibTorch: cfg(feature = "tch"),
    Cube: cfg(feature = "cube"),
    Fusion: cfg(feature = "cube"),
    Autodiff
)]
pub trait SdpaOps: Backend {
    /// `q [b, kv, g·t, hd]`, `k`, `v` `[b, kv, t, hd]`, `masked` broadcast to `[b, kv, g·t, t]`
    /// (true: not attended); with `slot`, `slot_logit [b, kv, g·t, 1]` and `slot_value
    /// [b, kv, 1, hd]` (else ignored) → `(out [b, kv, g·t, hd], probs [b, kv, g·t, t], slot_probs
    /// [b, kv, g·t, 1])`; `probs` and `slot_probs` carry no gradient.
    #[allow(clippy::too_many_arguments)]
    #[fusion(default)]
    fn sdpa(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        slot_logit: FloatTensor<Self>,
        slot_value: FloatTensor<Self>,
        scale: f64,
        slot: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        forward::<Self>(q, k, v, masked, slot_logit, slot_value, scale, slot)
    }

    /// Causal attention for training and plain forward passes: `q [b, kv, g·t, hd]`, `k`, `v`
    /// `[b, kv, t, hd]`, `masked` the causal mask stacked as in [`SdpaOps::sdpa`] (read only by
    /// backends without a fused kernel) → `(out [b, kv, g·t, hd], residual)`, the residual being
    /// whatever this backend's [`SdpaOps::causal_sdpa_backward`] needs (module docs).
    #[fusion(meta = fused_meta::causal)]
    fn causal_sdpa(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference_causal::<Self>(q, k, v, masked, scale)
    }

    /// The backward pass of [`SdpaOps::causal_sdpa`], from its inputs, `out`, the residual and
    /// `d_out [b, kv, g·t, hd]` → `(dq, dk, dv)`, shaped as `q`, `k`, `v`.
    #[fusion(meta = fused_meta::causal_backward)]
    fn causal_sdpa_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        out: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        d_out: FloatTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference_causal_backward::<Self>(q, k, v, out, residual, d_out, scale)
    }
}

/// `impl SdpaOps for $backend` with its fused causal kernel `$module::{fused, forward, backward}`
/// where `$module::fused` takes the tensors, the reference path elsewhere.
macro_rules! fused_causal {
    ($backend:ty, $module:ident) => {
        impl SdpaOps for $backend {
            fn causal_sdpa(
                q: FloatTensor<Self>,
                k: FloatTensor<Self>,
                v: FloatTensor<Self>,
                masked: BoolTensor<Self>,
                scale: f64,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                if $module::fused(&q) {
                    $module::forward(q, k, v, scale)
                } else {
                    reference_causal::<Self>(q, k, v, masked, scale)
                }
            }

            fn causal_sdpa_backward(
                q: FloatTensor<Self>,
                k: FloatTensor<Self>,
                v: FloatTensor<Self>,
                out: FloatTensor<Self>,
                residual: FloatTensor<Self>,
                d_out: FloatTensor<Self>,
                scale: f64,
            ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
                if $module::fused(&q) {
                    $module::backward(q, k, v, out, residual, d_out, scale)
                } else {
                    reference_causal_backward::<Self>(q, k, v, out, residual, d_out, scale)
                }
            }
        }
    };
}

fused_causal!(Flex, flex);
#[cfg(feature = "tch")]
fused_causal!(burn::backend::LibTorch, tch);

/// The CubeCL kernels take every causal call (any float dtype, any head dimension): Burn's fusion
/// is told the residual's shape before they run (`fused_meta`), so there is no fallback to `P`.
#[cfg(feature = "cube")]
impl SdpaOps for burn_cubecl::CubeBackend {
    fn causal_sdpa(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        _masked: BoolTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        cube::forward(q, k, v, scale)
    }

    fn causal_sdpa_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        out: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        d_out: FloatTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        cube::backward(q, k, v, out, residual, d_out, scale)
    }
}

/// What the fused causal operations return, for Burn's fusion of the CubeCL backends, which
/// queues them as custom operations and runs [`cube`]'s kernels when the queue is executed.
#[cfg(feature = "cube")]
mod fused_meta {
    use burn::backend::fusion::custom::TensorSpec;
    use burn::tensor::{DType, Shape};

    /// `(out, lse [b, kv, g·t] f32)`: the residual of [`super::cube`], which takes every float
    /// dtype, so no input falls back to the reference path's `P` on a CubeCL backend.
    pub fn causal(
        q: &TensorSpec,
        _k: &TensorSpec,
        _v: &TensorSpec,
        _m: &TensorSpec,
        _s: &f64,
    ) -> (TensorSpec, TensorSpec) {
        let [b, kv, rows, _] = q.shape.dims::<4>();
        (q.clone(), TensorSpec::new(Shape::new([b, kv, rows]), DType::F32))
    }

    /// `(dq, dk, dv)`, shaped as `q`, `k`, `v`.
    #[allow(clippy::too_many_arguments)]
    pub fn causal_backward(
        q: &TensorSpec,
        k: &TensorSpec,
        v: &TensorSpec,
        _out: &TensorSpec,
        _residual: &TensorSpec,
        _d_out: &TensorSpec,
        _scale: &f64,
    ) -> (TensorSpec, TensorSpec, TensorSpec) {
        (q.clone(), k.clone(), v.clone())
    }
}

/// The backward pass (module docs), from the forward's inputs and outputs.
#[derive(Debug)]
struct SdpaBackward;

/// What the backward pass keeps: `q, k, v, probs, out, scale`, and with a slot `(slot_probs,
/// slot_value)`.
type SdpaState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f64,
    Option<(FloatTensor<B>, FloatTensor<B>)>,
);

impl<B: Backend> Backward<B, 5> for SdpaBackward {
    type State = SdpaState<B>;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_q, node_k, node_v, node_c, node_sv] = ops.parents;
        let d_out = grads.consume::<B>(&ops.node);
        let (q, k, v, probs, out, scale, slot) = ops.state;
        if let Some(node) = node_v {
            grads.register::<B>(node.id, B::float_matmul(B::float_swap_dims(probs.clone(), 2, 3), d_out.clone()));
        }
        let slot_wanted = slot.is_some() && (node_c.is_some() || node_sv.is_some());
        if node_q.is_none() && node_k.is_none() && !slot_wanted {
            return;
        }
        // D = rowsum(dO ⊙ O) = Σ_j P_j dP_j, the slot's term included.
        let rowsum = B::float_sum_dim(B::float_mul(d_out.clone(), out), 3);
        if let Some((slot_probs, slot_value)) = slot {
            if let Some(node) = node_sv {
                // dv_slot = P_slotᵀ · dO.
                grads.register::<B>(
                    node.id,
                    B::float_matmul(B::float_swap_dims(slot_probs.clone(), 2, 3), d_out.clone()),
                );
            }
            if let Some(node) = node_c {
                // dc = P_slot ⊙ (dO·v_slotᵀ − D).
                let d_slot = B::float_matmul(d_out.clone(), B::float_swap_dims(slot_value, 2, 3));
                grads.register::<B>(node.id, B::float_mul(slot_probs, B::float_sub(d_slot, rowsum.clone())));
            }
        }
        if node_q.is_none() && node_k.is_none() {
            return;
        }
        let d_scores = d_scores::<B>(probs, d_out, v, rowsum, scale);
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
        slot_logit: FloatTensor<Self>,
        slot_value: FloatTensor<Self>,
        scale: f64,
        slot: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [q.node(), k.node(), v.node(), slot_logit.node(), slot_value.node()];
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        let (c, sv) = (slot_logit.into_primitive(), slot_value.into_primitive());
        match SdpaBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, probs, slot_probs) =
                    B::sdpa(q.clone(), k.clone(), v.clone(), masked, c, sv.clone(), scale, slot);
                let kept = slot.then(|| (slot_probs.clone(), sv));
                let state = (q, k, v, probs.clone(), out.clone(), scale, kept);
                (prep.finish(state, out), Self::from_inner(probs), Self::from_inner(slot_probs))
            }
            OpsKind::UnTracked(prep) => {
                let (out, probs, slot_probs) = B::sdpa(q, k, v, masked, c, sv, scale, slot);
                (prep.finish(out), Self::from_inner(probs), Self::from_inner(slot_probs))
            }
        }
    }

    fn causal_sdpa(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        scale: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [q.node(), k.node(), v.node()];
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        match CausalBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, residual) = B::causal_sdpa(q.clone(), k.clone(), v.clone(), masked, scale);
                let state = (q, k, v, out.clone(), residual.clone(), scale);
                (prep.finish(state, out), Self::from_inner(residual))
            }
            OpsKind::UnTracked(prep) => {
                let (out, residual) = B::causal_sdpa(q, k, v, masked, scale);
                (prep.finish(out), Self::from_inner(residual))
            }
        }
    }
}

/// The backward pass of the causal operation: the backend's own, from its residual.
#[derive(Debug)]
struct CausalBackward;

/// `q, k, v, out, residual, scale`.
type CausalState<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f64);

impl<B: Backend + SdpaOps> Backward<B, 3> for CausalBackward {
    type State = CausalState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let d_out = grads.consume::<B>(&ops.node);
        let (q, k, v, out, residual, scale) = ops.state;
        let (dq, dk, dv) = B::causal_sdpa_backward(q, k, v, out, residual, d_out, scale);
        for (node, grad) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The slot of the slot cures (`crate::cure`): a logit per query row and a value per KV head.
#[derive(Debug, Clone)]
pub struct Slot {
    /// `[b, kv, g·t, 1]`.
    pub logit: Tensor<4>,
    /// `[b, kv, 1, hd]`.
    pub value: Tensor<4>,
}

/// Causal (or otherwise masked) attention on the model's tensors: `q [b, kv, g·t, hd]` (the
/// query heads of one KV group stacked along the sequence axis), `k`, `v` `[b, kv, t, hd]`,
/// `masked [g·t, t]` (true: not attended), and an optional [`Slot`] → `(out [b, kv, g·t, hd],
/// probs [b, kv, g·t, t], slot probs [b, kv, g·t, 1] with a slot)`. The probabilities are
/// detached from the autodiff graph: they are for the probes.
pub fn sdpa(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    masked: Tensor<2, Bool>,
    scale: f64,
    slot: Option<Slot>,
) -> (Tensor<4>, Tensor<4>, Option<Tensor<4>>) {
    // Computed in f32 whatever the inputs' dtype (`crate::precision`); `out` returns in theirs.
    let dtype = q.dtype();
    let has_slot = slot.is_some();
    let (logit, value) = match slot {
        Some(s) => (s.logit.cast(DType::F32), s.value.cast(DType::F32)),
        None => {
            let none = Tensor::<4>::zeros([1, 1, 1, 1], &q.device());
            (none.clone(), none)
        }
    };
    let (out, probs, slot_probs) = <Dispatch as SdpaOps>::sdpa(
        q.cast(DType::F32).into_dispatch(),
        k.cast(DType::F32).into_dispatch(),
        v.cast(DType::F32).into_dispatch(),
        masked.unsqueeze::<4>().into_dispatch(),
        logit.into_dispatch(),
        value.into_dispatch(),
        scale,
        has_slot,
    );
    let out = Tensor::<4>::from_dispatch(out).cast(dtype);
    (out, Tensor::from_dispatch(probs), has_slot.then(|| Tensor::from_dispatch(slot_probs)))
}

/// Causal attention without the probabilities (module docs, "The fused causal path"): `q [b, kv,
/// g·t, hd]` (the query heads of one KV group stacked along the sequence axis), `k`, `v` `[b, kv,
/// t, hd]`, `masked [g·t, t]` the causal mask stacked the same way (true: not attended; read only
/// where the backend has no fused kernel) → `out [b, kv, g·t, hd]`.
///
/// Inputs in a dtype the backend's fused kernel does not take ([`kernel_takes`]: bf16 on flex, or
/// anywhere on the reference path) are computed in f32 and the output cast back, so the softmax
/// is never bf16 (`crate::precision`).
pub fn causal_sdpa(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, masked: Tensor<2, Bool>, scale: f64) -> Tensor<4> {
    let dtype = q.dtype();
    let compute = if kernel_takes(&q.device(), dtype) { dtype } else { DType::F32 };
    let (out, _residual) = <Dispatch as SdpaOps>::causal_sdpa(
        q.cast(compute).into_dispatch(),
        k.cast(compute).into_dispatch(),
        v.cast(compute).into_dispatch(),
        masked.unsqueeze::<4>().into_dispatch(),
        scale,
    );
    Tensor::<4>::from_dispatch(out).cast(dtype)
}

/// Whether the fused causal kernel of `device`'s backend takes tensors of `dtype` as they are
/// (f32 anywhere; bf16 and f16 on libtorch, whose flash attention keeps its softmax in f32, and on
/// Burn's CUDA backend, whose CubeCL kernels compute in f32 from any storage dtype).
pub fn kernel_takes(device: &burn::tensor::Device, dtype: DType) -> bool {
    match dtype {
        DType::F32 => true,
        DType::BF16 | DType::F16 => match device.clone().inner().as_dispatch() {
            #[cfg(feature = "tch")]
            burn::backend::DispatchDevice::LibTorch(_) => true,
            _ => crate::precision::is_burn_cuda(device),
        },
        _ => false,
    }
}
