//! The fused operations on libtorch's CPU device, as libtorch operations: `_fused_rms_norm`
//! (one kernel that also returns `r`) and the closed-form backward; `silu(a) ⊙ b` with
//! `silu_backward`; `y ⊙ σ(s)` with `sigmoid_backward`. Fewer kernels than Burn's decomposition
//! and its autodiff, each parallel on libtorch's own OpenMP threads: gatelab's Rust kernels
//! ([`crate::kernels`]) are not used here, because libtorch's OpenMP workers spin between its
//! operations and took the cores from a second thread pool (a prototype trained slower;
//! docs/throughput.md).
//! Rotary embedding stays Burn's operations on libtorch ([`super::fused_here`]).

use burn::backend::libtorch::TchTensor;
use tch::{Kind, Tensor};

pub(super) fn rms_norm(x: TchTensor, gamma: TchTensor, eps: f64) -> (TchTensor, TchTensor) {
    let d = *x.tensor.size().last().expect("x has a last axis");
    let (y, r) = x.tensor.internal_fused_rms_norm([d].as_slice(), Some(&gamma.tensor), eps);
    (TchTensor::new(y), TchTensor::new(r))
}

pub(super) fn rms_norm_backward(x: TchTensor, gamma: TchTensor, r: TchTensor, dy: TchTensor) -> (TchTensor, TchTensor) {
    let (x, r, dy) = (&x.tensor, &r.tensor, &dy.tensor); // x, dy [n, d]; r [n, 1]
    let g = dy * &gamma.tensor;
    let c = (&g * x).mean_dim([-1i64].as_slice(), true, None::<Kind>);
    let dx = r * &g - x * (r.pow_tensor_scalar(3) * c);
    let d_gamma = (dy * x * r).sum_dim_intlist([0i64].as_slice(), false, None::<Kind>);
    (TchTensor::new(dx), TchTensor::new(d_gamma))
}

pub(super) fn swiglu(a: TchTensor, b: TchTensor) -> TchTensor {
    TchTensor::new(a.tensor.silu() * &b.tensor)
}

pub(super) fn swiglu_backward(a: TchTensor, b: TchTensor, dh: TchTensor) -> (TchTensor, TchTensor) {
    let da = a.tensor.silu_backward(&(&dh.tensor * &b.tensor));
    let db = &dh.tensor * a.tensor.silu();
    (TchTensor::new(da), TchTensor::new(db))
}

pub(super) fn sigmoid_gate(y: TchTensor, s: TchTensor) -> TchTensor {
    TchTensor::new(&y.tensor * s.tensor.sigmoid())
}

pub(super) fn sigmoid_gate_backward(y: TchTensor, s: TchTensor, dh: TchTensor) -> (TchTensor, TchTensor) {
    let sig = s.tensor.sigmoid();
    let ds = Tensor::sigmoid_backward(&(&dh.tensor * &y.tensor), &sig);
    (TchTensor::new(&dh.tensor * &sig), TchTensor::new(ds))
}

pub(super) fn rope(_x: TchTensor, _cos: TchTensor, _sin: TchTensor, _transpose: bool) -> TchTensor {
    unreachable!("rotary embedding on libtorch runs Burn's operations (fused::fused_here)")
}
