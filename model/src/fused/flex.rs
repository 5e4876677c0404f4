//! The fused operations on flex's f32 tensors: contiguous slices in, [`crate::kernels`], new
//! tensors out.

use crate::kernels;
use crate::kernels::flex::{contiguous, tensor, values};
use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;

pub(super) fn rms_norm(x: FlexTensor, gamma: FlexTensor, eps: f64) -> (FlexTensor, FlexTensor) {
    let shape = x.shape().to_vec();
    let [x, gamma] = [x, gamma].map(contiguous);
    let (xs, gs) = (values(&x), values(&gamma));
    let mut y = vec![0f32; xs.len()];
    let mut r = vec![0f32; xs.len() / gs.len().max(1)];
    kernels::rms_norm_forward(xs, gs, eps as f32, &mut y, &mut r);
    let rows = r.len();
    (tensor(y, shape), tensor(r, vec![rows]))
}

pub(super) fn rms_norm_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    r: FlexTensor,
    dy: FlexTensor,
) -> (FlexTensor, FlexTensor) {
    let (shape, d) = (x.shape().to_vec(), gamma.shape().to_vec());
    let [x, gamma, r, dy] = [x, gamma, r, dy].map(contiguous);
    let mut dx = vec![0f32; values(&x).len()];
    let d_gamma = kernels::rms_norm_backward(values(&x), values(&gamma), values(&r), values(&dy), &mut dx);
    (tensor(dx, shape), tensor(d_gamma, d))
}

/// A binary elementwise kernel on two tensors of one shape.
fn binary(a: FlexTensor, b: FlexTensor, kernel: fn(&[f32], &[f32], &mut [f32])) -> FlexTensor {
    let shape = a.shape().to_vec();
    let [a, b] = [a, b].map(contiguous);
    let mut h = vec![0f32; values(&a).len()];
    kernel(values(&a), values(&b), &mut h);
    tensor(h, shape)
}

/// A backward kernel of [`binary`]'s: `(a, b, dh, da, db)`.
type BackwardKernel = fn(&[f32], &[f32], &[f32], &mut [f32], &mut [f32]);

/// The backward kernel of [`binary`]: `(da, db)` from `a`, `b` and `dh`.
fn binary_backward(a: FlexTensor, b: FlexTensor, dh: FlexTensor, kernel: BackwardKernel) -> (FlexTensor, FlexTensor) {
    let shape = a.shape().to_vec();
    let [a, b, dh] = [a, b, dh].map(contiguous);
    let n = values(&a).len();
    let (mut da, mut db) = (vec![0f32; n], vec![0f32; n]);
    kernel(values(&a), values(&b), values(&dh), &mut da, &mut db);
    (tensor(da, shape.clone()), tensor(db, shape))
}

pub(super) fn swiglu(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    binary(a, b, kernels::swiglu_forward)
}

pub(super) fn swiglu_backward(a: FlexTensor, b: FlexTensor, dh: FlexTensor) -> (FlexTensor, FlexTensor) {
    binary_backward(a, b, dh, kernels::swiglu_backward)
}

pub(super) fn sigmoid_gate(y: FlexTensor, s: FlexTensor) -> FlexTensor {
    binary(y, s, kernels::sigmoid_gate_forward)
}

pub(super) fn sigmoid_gate_backward(y: FlexTensor, s: FlexTensor, dh: FlexTensor) -> (FlexTensor, FlexTensor) {
    binary_backward(y, s, dh, kernels::sigmoid_gate_backward)
}

pub(super) fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor, transpose: bool) -> FlexTensor {
    let shape = x.shape().to_vec();
    let [x, cos, sin] = [x, cos, sin].map(contiguous);
    let mut y = vec![0f32; values(&x).len()];
    kernels::rope(values(&x), values(&cos), values(&sin), shape[1], shape[2], transpose, &mut y);
    tensor(y, shape)
}
