//! RMSNorm, the SwiGLU activation and rotary position embedding as single operations with
//! handwritten backward passes: on flex, gatelab's own kernels ([`crate::kernels`]); on libtorch's
//! CPU device (cargo feature `tch`), RMSNorm and SwiGLU as libtorch's own operations ([`tch`]).
//! Elsewhere (wgpu, libtorch on a GPU, other dtypes than f32, rotary embedding on libtorch) the
//! public functions here run Burn's own operations instead, the same math.
//!
//! | operation | forward | backward |
//! |---|---|---|
//! | [`rms_norm`] | `y = x·r·γ`, `r = 1/√(mean(x²) + ε)` (keeps `r`) | `dx = r·g − x·r³·mean(g ⊙ x)`, `g = dy ⊙ γ`; `dγ = Σ dy ⊙ x·r` |
//! | [`swiglu`] | `h = silu(a) ⊙ b` | `da = dh ⊙ b ⊙ σ(a)(1 + a(1 − σ(a)))`, `db = dh ⊙ silu(a)` |
//! | [`sigmoid_gate`] | `h = y ⊙ σ(s)` (the paper's G1) | `dy = dh ⊙ σ(s)`, `ds = dh ⊙ y ⊙ σ(s)(1 − σ(s))` |
//! | [`rope`] | `y = x·cos + rot(x)·sin` | `dx = dy·cos + rotᵀ(dy·sin)` |

// burn-tch (`LibTorch`) is deprecated upstream; gatelab keeps its libtorch backend.
#![allow(deprecated)]

mod flex;
#[cfg(feature = "tch")]
mod tch;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::nn::RmsNorm;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{DType, Tensor};

/// The fused operations, on the backends that have their kernels.
#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait FusedOps: Backend {
    /// `x [n, d]`, `gamma [d]` → `(y [n, d], r [n])`.
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// → `(dx [n, d], dgamma [d])`.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        r: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `a`, `b` of one shape → `silu(a) ⊙ b`.
    fn swiglu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
    /// → `(da, db)`.
    fn swiglu_backward(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `y`, `s` of one shape → `y ⊙ σ(s)`.
    fn sigmoid_gate(y: FloatTensor<Self>, s: FloatTensor<Self>) -> FloatTensor<Self>;
    /// → `(dy, ds)`.
    fn sigmoid_gate_backward(
        y: FloatTensor<Self>,
        s: FloatTensor<Self>,
        dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `x [b, t, h, d]`, `cos`, `sin` `[t, d]` → `y [b, t, h, d]`; with `transpose`, the backward
    /// pass (`x` then being `dy`).
    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>, transpose: bool)
    -> FloatTensor<Self>;
}

/// `impl FusedOps for $backend`, each operation `$module::operation` (the two CPU backends
/// differ only in their module of kernels).
macro_rules! delegate_to {
    ($backend:ty, $module:ident) => {
        impl FusedOps for $backend {
            fn rms_norm(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                eps: f64,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                $module::rms_norm(x, gamma, eps)
            }
            fn rms_norm_backward(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                r: FloatTensor<Self>,
                dy: FloatTensor<Self>,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                $module::rms_norm_backward(x, gamma, r, dy)
            }
            fn swiglu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
                $module::swiglu(a, b)
            }
            fn swiglu_backward(
                a: FloatTensor<Self>,
                b: FloatTensor<Self>,
                dh: FloatTensor<Self>,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                $module::swiglu_backward(a, b, dh)
            }
            fn sigmoid_gate(y: FloatTensor<Self>, s: FloatTensor<Self>) -> FloatTensor<Self> {
                $module::sigmoid_gate(y, s)
            }
            fn sigmoid_gate_backward(
                y: FloatTensor<Self>,
                s: FloatTensor<Self>,
                dh: FloatTensor<Self>,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                $module::sigmoid_gate_backward(y, s, dh)
            }
            fn rope(
                x: FloatTensor<Self>,
                cos: FloatTensor<Self>,
                sin: FloatTensor<Self>,
                transpose: bool,
            ) -> FloatTensor<Self> {
                $module::rope(x, cos, sin, transpose)
            }
        }
    };
}

delegate_to!(Flex, flex);
#[cfg(feature = "tch")]
delegate_to!(burn::backend::LibTorch, tch);

#[derive(Debug)]
struct RmsNormBackward;

impl<B: Backend + FusedOps> Backward<B, 2> for RmsNormBackward {
    /// `x, gamma, r`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, r) = ops.state;
        let (dx, d_gamma) = B::rms_norm_backward(x, gamma, r, dy);
        let [node_x, node_gamma] = ops.parents;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, d_gamma);
        }
    }
}

/// The two binary elementwise operations, `silu(a) ⊙ b` and `a ⊙ σ(b)`: both inputs kept, the
/// backend's closed-form backward.
#[derive(Debug, Clone, Copy)]
enum Pair {
    Swiglu,
    SigmoidGate,
}

impl Pair {
    fn forward<B: FusedOps>(self, a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            Pair::Swiglu => B::swiglu(a, b),
            Pair::SigmoidGate => B::sigmoid_gate(a, b),
        }
    }

    /// The operation on autodiff tensors, recorded for [`Backward`].
    fn tracked<B: Backend + FusedOps, C: CheckpointStrategy>(
        self,
        a: FloatTensor<Autodiff<B, C>>,
        b: FloatTensor<Autodiff<B, C>>,
    ) -> FloatTensor<Autodiff<B, C>> {
        let nodes = [a.node(), b.node()];
        let (a, b) = (a.into_primitive(), b.into_primitive());
        match self.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let h = self.forward::<B>(a.clone(), b.clone());
                prep.finish((a, b), h)
            }
            OpsKind::UnTracked(prep) => prep.finish(self.forward::<B>(a, b)),
        }
    }
}

impl<B: Backend + FusedOps> Backward<B, 2> for Pair {
    /// `a, b`.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dh = grads.consume::<B>(&ops.node);
        let (a, b) = ops.state;
        let (da, db) = match self {
            Pair::Swiglu => B::swiglu_backward(a, b, dh),
            Pair::SigmoidGate => B::sigmoid_gate_backward(a, b, dh),
        };
        let [node_a, node_b] = ops.parents;
        if let Some(node) = node_a {
            grads.register::<B>(node.id, da);
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, db);
        }
    }
}

#[derive(Debug)]
struct RopeBackward;

impl<B: Backend + FusedOps> Backward<B, 1> for RopeBackward {
    /// `cos, sin` (constants: no gradient).
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (cos, sin) = ops.state;
        let [node_x] = ops.parents;
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::rope(dy, cos, sin, true));
        }
    }
}

impl<B: Backend + FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [x.node(), gamma.node()];
        let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
        match RmsNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, r) = B::rms_norm(x.clone(), gamma.clone(), eps);
                (prep.finish((x, gamma, r.clone()), y), Self::from_inner(r))
            }
            OpsKind::UnTracked(prep) => {
                let (y, r) = B::rms_norm(x, gamma, eps);
                (prep.finish(y), Self::from_inner(r))
            }
        }
    }

    fn rms_norm_backward(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _r: FloatTensor<Self>,
        _dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("the backward passes are not themselves differentiated")
    }

    fn swiglu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Pair::Swiglu.tracked::<B, C>(a, b)
    }

    fn swiglu_backward(
        _a: FloatTensor<Self>,
        _b: FloatTensor<Self>,
        _dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("the backward passes are not themselves differentiated")
    }

    fn sigmoid_gate(y: FloatTensor<Self>, s: FloatTensor<Self>) -> FloatTensor<Self> {
        Pair::SigmoidGate.tracked::<B, C>(y, s)
    }

    fn sigmoid_gate_backward(
        _y: FloatTensor<Self>,
        _s: FloatTensor<Self>,
        _dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("the backward passes are not themselves differentiated")
    }

    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        transpose: bool,
    ) -> FloatTensor<Self> {
        let (cos, sin) = (cos.into_primitive(), sin.into_primitive());
        let nodes = [x.node()];
        let x = x.into_primitive();
        match RopeBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                assert!(!transpose, "the backward pass is not itself differentiated");
                let y = B::rope(x, cos.clone(), sin.clone(), false);
                prep.finish((cos, sin), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::rope(x, cos, sin, transpose)),
        }
    }
}

/// Which fused operations a float tensor on `device` of `dtype` takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fused {
    /// None: Burn's operations.
    No,
    /// RMSNorm, SwiGLU and the gate (libtorch's CPU device).
    #[cfg_attr(not(feature = "tch"), allow(dead_code))]
    NormAndActivation,
    /// All four, RoPE included (flex).
    All,
}

/// What [`Fused`] operations run for a tensor on `device` of `dtype` (f32 only).
fn fused_here(device: &burn::tensor::Device, dtype: DType) -> Fused {
    if dtype != DType::F32 {
        return Fused::No;
    }
    match device.clone().inner().as_dispatch() {
        DispatchDevice::Flex(_) => Fused::All,
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(burn::backend::LibTorchDevice::Cpu) => Fused::NormAndActivation,
        _ => Fused::No,
    }
}

/// Whether a float tensor on `device` of `dtype` is on a CPU backend with gatelab's fused
/// operations (flex, or libtorch's CPU device; f32): the training loop's fused AdamW asks too.
pub fn on_fused_cpu(device: &burn::tensor::Device, dtype: DType) -> bool {
    fused_here(device, dtype) != Fused::No
}

/// `norm(x)` over the last axis, fused where [`fused_here`], else [`RmsNorm::forward`].
///
/// # Shapes
/// - x: `[..., d]` → `[..., d]`
pub fn rms_norm<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    if fused_here(&x.device(), x.dtype()) == Fused::No {
        return norm.forward(x);
    }
    let dims = x.dims();
    let d = dims[D - 1];
    let rows = dims.iter().product::<usize>() / d.max(1);
    let (y, _) = <Dispatch as FusedOps>::rms_norm(
        x.reshape([rows, d]).into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.epsilon,
    );
    Tensor::<2>::from_dispatch(y).reshape(dims)
}

/// `silu(a) ⊙ b`, fused where [`fused_here`].
///
/// # Shapes
/// - a, b: `[...]` (the same) → `[...]`
pub fn swiglu<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    if fused_here(&a.device(), a.dtype()) == Fused::No || a.dims() != b.dims() {
        return silu(a) * b;
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::swiglu(a.into_dispatch(), b.into_dispatch()))
}

/// The paper's gate `y ⊙ σ(s)`, fused where [`fused_here`].
///
/// # Shapes
/// - y, s: `[...]` (the same) → `[...]`
pub fn sigmoid_gate<const D: usize>(y: Tensor<D>, s: Tensor<D>) -> Tensor<D> {
    if fused_here(&y.device(), y.dtype()) == Fused::No || y.dims() != s.dims() {
        return y * sigmoid(s);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::sigmoid_gate(y.into_dispatch(), s.into_dispatch()))
}

/// Rotary embedding of queries or keys laid out `[b, t, heads, d]`: `x·cos + rot(x)·sin`, the
/// same as [`crate::rope::apply_rope`] on `[b, heads, t, d]`, fused where [`fused_here`].
///
/// # Shapes
/// - x: `[batch, seq, heads, head_dim]`; cos, sin: `[seq, head_dim]` → `[batch, seq, heads, head_dim]`
pub fn rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    if fused_here(&x.device(), x.dtype()) != Fused::All {
        return crate::rope::apply_rope(x.swap_dims(1, 2), cos, sin).swap_dims(1, 2);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::rope(
        x.into_dispatch(),
        cos.clone().into_dispatch(),
        sin.clone().into_dispatch(),
        false,
    ))
}
