//! The fused causal attention on libtorch, called through tch on burn-tch's tensors:
//!
//! - **CPU**: libtorch's own flash attention, `_scaled_dot_product_flash_attention_for_cpu` and
//!   its backward (what PyTorch's `scaled_dot_product_attention` runs on a CPU). The residual is
//!   its log-sum-exp, `[b, kv·g, t]`, as it returns it.
//! - **CUDA**: `scaled_dot_product_attention` itself, so libtorch's dispatcher picks the kernel
//!   for the shape and dtype (flash, memory-efficient or cuDNN attention; [`cuda_kernel`] names
//!   it). The forward runs without autograd and keeps nothing of `P`; the backward runs the same
//!   call again under libtorch's autograd and differentiates it (`run_backward`), so the kernel's
//!   own backward computes `dq, dk, dv`. That costs one more attention forward per backward pass
//!   (tch 0.22 binds the CUDA flash backward but not its forward, and the efficient forward but
//!   not its backward, so no pair can be called directly). The residual is unused, `[1]`.
//!   `GATELAB_TCH_SDPA=autograd` runs this path on the CPU too, which is how it is tested here.
//!
//! Both take f32, bf16 and f16 (f64 too on the CPU); a flash kernel keeps its softmax and
//! accumulators in f32 whatever the inputs' dtype.
//!
//! libtorch takes `[b, heads, t, hd]` with as many key/value heads as query heads, so the stacked
//! grouped queries `[b, kv, g·t, hd]` are viewed as `[b, kv·g, t, hd]` (the same memory), keys
//! and values are expanded over the group, and their gradients summed back over it.

use burn::backend::libtorch::TchTensor;
use tch::{Device, Kind, Tensor};

/// Which libtorch path takes these tensors, if any (else the reference path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The CPU flash kernel and its backward.
    CpuFlash,
    /// `scaled_dot_product_attention`, differentiated by libtorch's autograd.
    Autograd,
}

/// The path for `q`: by device and dtype, `GATELAB_TCH_SDPA=autograd` forcing the autograd one.
fn path(q: &Tensor) -> Option<Path> {
    static FORCE_AUTOGRAD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let forced = *FORCE_AUTOGRAD.get_or_init(|| std::env::var("GATELAB_TCH_SDPA").is_ok_and(|v| v == "autograd"));
    let kind = q.kind();
    match q.device() {
        Device::Cpu if matches!(kind, Kind::Float | Kind::Double | Kind::BFloat16 | Kind::Half) => {
            Some(if forced { Path::Autograd } else { Path::CpuFlash })
        }
        Device::Cuda(_) if matches!(kind, Kind::Float | Kind::BFloat16 | Kind::Half) => Some(Path::Autograd),
        _ => None,
    }
}

/// Whether a libtorch kernel takes these tensors (else the reference path).
pub(super) fn fused(q: &TchTensor) -> bool {
    path(&q.tensor).is_some()
}

/// The kernel libtorch's dispatcher picks for causal attention on `[b, heads, t, hd]` tensors of
/// this shape, dtype and device (`_fused_sdp_choice`): `"flash"`, `"efficient"`, `"cudnn"`, `"math"`
/// (which stores `P`) or `"none"`.
pub fn cuda_kernel(b: i64, heads: i64, t: i64, hd: i64, kind: Kind, device: Device) -> &'static str {
    let x = Tensor::zeros([b, heads, t, hd], (kind, device));
    match Tensor::internal_fused_sdp_choice(&x, &x, &x, None::<Tensor>, 0.0, true, None, false) {
        0 => "math",
        1 => "flash",
        2 => "efficient",
        3 => "cudnn",
        4 => "overrideable",
        _ => "none",
    }
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

/// `scaled_dot_product_attention` on the per-query-head views, causal.
fn autograd_sdpa(q4: &Tensor, k4: &Tensor, v4: &Tensor, scale: f64) -> Tensor {
    Tensor::scaled_dot_product_attention(q4, k4, v4, None::<Tensor>, 0.0, true, scale, false)
}

/// The forward pass: `(out [b, kv, g·t, hd], residual)`, the residual `L [b, kv·g, t]` on the
/// CPU flash path, an unused `[1]` on the autograd one.
pub(super) fn forward(q: TchTensor, k: TchTensor, v: TchTensor, scale: f64) -> (TchTensor, TchTensor) {
    let (b, kv, g, t, hd) = dims(&q.tensor, &k.tensor);
    let q4 = q.tensor.reshape([b, kv * g, t, hd]);
    if path(&q.tensor) == Some(Path::Autograd) {
        let out =
            tch::no_grad(|| autograd_sdpa(&q4, &per_query_head(&k.tensor, g), &per_query_head(&v.tensor, g), scale));
        let unused = Tensor::zeros([1], (q.tensor.kind(), q.tensor.device()));
        return (TchTensor::new(out.reshape([b, kv, g * t, hd])), TchTensor::new(unused));
    }
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
    if path(&q.tensor) == Some(Path::Autograd) {
        let (dq, dk, dv) =
            autograd_backward(&q.tensor.reshape(heads), &k.tensor, &v.tensor, &d_out.tensor.reshape(heads), g, scale);
        return (
            TchTensor::new(dq.reshape([b, kv, g * t, hd])),
            TchTensor::new(per_kv_head(dk, kv, g)),
            TchTensor::new(per_kv_head(dv, kv, g)),
        );
    }
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

/// `(dq [b, kv·g, t, hd], dk, dv [b, kv·g, t, hd])` by libtorch's autograd through the kernel its
/// dispatcher picks: the forward again on leaves that require a gradient, then `Σ out ⊙ dO`
/// differentiated (its gradient with respect to `out` is `dO`).
fn autograd_backward(
    q4: &Tensor,
    k: &Tensor,
    v: &Tensor,
    d_out: &Tensor,
    g: i64,
    scale: f64,
) -> (Tensor, Tensor, Tensor) {
    tch::with_grad(|| {
        let q = q4.detach().set_requires_grad(true);
        let k = per_query_head(k, g).detach().set_requires_grad(true);
        let v = per_query_head(v, g).detach().set_requires_grad(true);
        let out = autograd_sdpa(&q, &k, &v, scale);
        let objective = (out * d_out.detach()).sum(None::<Kind>);
        let mut grads = Tensor::run_backward(&[objective], &[&q, &k, &v], false, false).into_iter();
        let mut next = || grads.next().expect("one gradient per input");
        (next(), next(), next())
    })
}
