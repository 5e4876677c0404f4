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

pub(super) fn swiglu(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    let shape = a.shape().to_vec();
    let [a, b] = [a, b].map(contiguous);
    let mut h = vec![0f32; values(&a).len()];
    kernels::swiglu_forward(values(&a), values(&b), &mut h);
    tensor(h, shape)
}

pub(super) fn swiglu_backward(a: FlexTensor, b: FlexTensor, dh: FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = a.shape().to_vec();
    let [a, b, dh] = [a, b, dh].map(contiguous);
    let n = values(&a).len();
    let (mut da, mut db) = (vec![0f32; n], vec![0f32; n]);
    kernels::swiglu_backward(values(&a), values(&b), values(&dh), &mut da, &mut db);
    (tensor(da, shape.clone()), tensor(db, shape))
}

pub(super) fn sigmoid_gate(y: FlexTensor, s: FlexTensor) -> FlexTensor {
    let shape = y.shape().to_vec();
    let [y, s] = [y, s].map(contiguous);
    let mut h = vec![0f32; values(&y).len()];
    kernels::sigmoid_gate_forward(values(&y), values(&s), &mut h);
    tensor(h, shape)
}

pub(super) fn sigmoid_gate_backward(y: FlexTensor, s: FlexTensor, dh: FlexTensor) -> (FlexTensor, FlexTensor) {
    let shape = y.shape().to_vec();
    let [y, s, dh] = [y, s, dh].map(contiguous);
    let n = values(&y).len();
    let (mut dy, mut ds) = (vec![0f32; n], vec![0f32; n]);
    kernels::sigmoid_gate_backward(values(&y), values(&s), values(&dh), &mut dy, &mut ds);
    (tensor(dy, shape.clone()), tensor(ds, shape))
}

pub(super) fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor, transpose: bool) -> FlexTensor {
    let shape = x.shape().to_vec();
    let [x, cos, sin] = [x, cos, sin].map(contiguous);
    let mut y = vec![0f32; values(&x).len()];
    kernels::rope(values(&x), values(&cos), values(&sin), shape[1], shape[2], transpose, &mut y);
    tensor(y, shape)
}
