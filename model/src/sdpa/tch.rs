//! The fused causal attention on libtorch's CPU device: libtorch's own flash attention,
//! `_scaled_dot_product_flash_attention_for_cpu` and its backward (what PyTorch's
//! `scaled_dot_product_attention` runs on a CPU), called through tch on burn-tch's tensors.
//!
//! libtorch takes `[b, heads, t, hd]` with as many key/value heads as query heads, so the stacked
//! grouped queries `[b, kv, g·t, hd]` are viewed as `[b, kv·g, t, hd]` (the same memory), keys
//! and values are expanded over the group, and their gradients summed back over it. The residual
//! is libtorch's log-sum-exp, `[b, kv·g, t]`, as it returns it.

use burn::backend::libtorch::TchTensor;
use tch::{Device, Kind, Tensor};

/// Whether libtorch's CPU kernel takes these tensors (CPU, f32 or f64; else the reference path).
pub(super) fn fused(q: &TchTensor) -> bool {
    q.tensor.device() == Device::Cpu && matches!(q.tensor.kind(), Kind::Float | Kind::Double)
}

/// `(b, kv, g, t, hd)` of `q [b, kv, g·t, hd]` against `k [b, kv, t, hd]`.
fn dims(q: &Tensor, k: &Tensor) -> (i64, i64, i64, i64, i64) {
    let (b, kv, gt, hd) = q.size4().expect("q is 4-d");
    let t = k.size4().expect("k is 4-d").2;
    assert!(t > 0 && gt % t == 0, "causal attention: {gt} query rows against {t} keys");
    (b, kv, gt / t, t, hd)
}

/// `[b, kv, t, hd]` → `[b, kv·g, t, hd]`, each KV head repeated for its `g` query heads.
fn per_query_head(x: &Tensor, g: i64) -> Tensor {
    if g == 1 {
        return x.shallow_clone();
    }
    let (b, kv, t, hd) = x.size4().expect("4-d");
    x.unsqueeze(2).expand([b, kv, g, t, hd], false).reshape([b, kv * g, t, hd])
}

/// `[b, kv·g, t, hd]` → `[b, kv, t, hd]`, summed over each group.
fn per_kv_head(x: Tensor, kv: i64, g: i64) -> Tensor {
    if g == 1 {
        return x;
    }
    let (b, _, t, hd) = x.size4().expect("4-d");
    x.reshape([b, kv, g, t, hd]).sum_dim_intlist([2i64].as_slice(), false, None::<Kind>)
}

/// The forward pass: `(out [b, kv, g·t, hd], L [b, kv·g, t])`.
pub(super) fn forward(q: TchTensor, k: TchTensor, v: TchTensor, scale: f64) -> (TchTensor, TchTensor) {
    let (b, kv, g, t, hd) = dims(&q.tensor, &k.tensor);
    let q4 = q.tensor.reshape([b, kv * g, t, hd]);
    let (out, lse) = Tensor::internal_scaled_dot_product_flash_attention_for_cpu(
        &q4,
        &per_query_head(&k.tensor, g),
        &per_query_head(&v.tensor, g),
        0.0,
        true,
        None::<Tensor>,
        scale,
    );
    (TchTensor::new(out.reshape([b, kv, g * t, hd])), TchTensor::new(lse))
}

/// The backward pass: `(dq, dk, dv)`, shaped as `q`, `k`, `v`.
pub(super) fn backward(
    q: TchTensor,
    k: TchTensor,
    v: TchTensor,
    out: TchTensor,
    lse: TchTensor,
    d_out: TchTensor,
    scale: f64,
) -> (TchTensor, TchTensor, TchTensor) {
    let (b, kv, g, t, hd) = dims(&q.tensor, &k.tensor);
    let heads = [b, kv * g, t, hd];
    let (dq, dk, dv) = Tensor::internal_scaled_dot_product_flash_attention_for_cpu_backward(
        &d_out.tensor.reshape(heads),
        &q.tensor.reshape(heads),
        &per_query_head(&k.tensor, g),
        &per_query_head(&v.tensor, g),
        &out.tensor.reshape(heads),
        &lse.tensor,
        0.0,
        true,
        None::<Tensor>,
        scale,
    );
    (
        TchTensor::new(dq.reshape([b, kv, g * t, hd])),
        TchTensor::new(per_kv_head(dk, kv, g)),
        TchTensor::new(per_kv_head(dv, kv, g)),
    )
}
