//! The fused RMSNorm, SwiGLU activation and rotary embedding (`gatelab_model::fused`) against
//! Burn's own operations (`RmsNorm::forward`, `silu(a) * b`, `rope::apply_rope`) on the same
//! inputs: outputs and every gradient, on each backend with the kernels (flex; libtorch with the
//! `tch` feature), at widths that are not multiples of a vector.

use crate::common::{Lcg, devices};
use burn::nn::RmsNormConfig;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Device, Tensor, TensorData};
use gatelab_model::fused::{rms_norm, rope, sigmoid_gate, swiglu};
use gatelab_model::rope::{RopeScaling, apply_rope, rope_tables};

fn random<const D: usize>(dims: [usize; D], rng: &mut Lcg, device: &Device) -> Tensor<D> {
    let n = dims.iter().product::<usize>();
    let values: Vec<f32> = (0..n).map(|_| (rng.below(1 << 20) as f32 / (1 << 20) as f32 - 0.5) * 6.0).collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// Largest absolute difference relative to the largest absolute value of `want`.
fn rel<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> f32 {
    let scale = want.clone().abs().max().into_scalar::<f32>().max(1e-6);
    (got - want).abs().max().into_scalar::<f32>() / scale
}

fn check<const D: usize>(name: &str, what: &str, got: Tensor<D>, want: Tensor<D>, bound: f32) {
    let diff = rel(got, want);
    assert!(diff <= bound, "{name} {what}: differs by {diff:e} of its largest value");
}

#[test]
fn fused_rms_norm_equals_burns() {
    for (name, device) in devices() {
        let mut rng = Lcg(11);
        let norm = RmsNormConfig::new(37).with_epsilon(1e-6).init(&device);
        // A gamma that is not all ones, so its gradient and its use are both tested.
        let gamma = random([37], &mut rng, &device);
        let norm = burn::nn::RmsNorm { gamma: burn::module::Param::from_tensor(gamma), ..norm };
        let x = random([3, 5, 37], &mut rng, &device);
        let w = random([3, 5, 37], &mut rng, &device);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused { rms_norm(&norm, x.clone()) } else { norm.forward(x.clone()) };
            let grads = (y.clone() * w.clone()).sum().backward();
            (y.inner(), x.grad(&grads).unwrap(), norm.gamma.val().grad(&grads).unwrap())
        };
        let ((y, dx, dg), (y0, dx0, dg0)) = (run(true), run(false));
        check(name, "rms_norm y", y, y0, 1e-5);
        check(name, "rms_norm dx", dx, dx0, 1e-4);
        check(name, "rms_norm dgamma", dg, dg0, 1e-4);
    }
}

#[test]
fn fused_swiglu_equals_burns() {
    for (name, device) in devices() {
        let mut rng = Lcg(12);
        let [a, b, w] = [(); 3].map(|_| random([4, 7, 45], &mut rng, &device));
        let run = |fused: bool| {
            let (a, b) = (a.clone().require_grad(), b.clone().require_grad());
            let h = if fused { swiglu(a.clone(), b.clone()) } else { silu(a.clone()) * b.clone() };
            let grads = (h.clone() * w.clone()).sum().backward();
            (h.inner(), a.grad(&grads).unwrap(), b.grad(&grads).unwrap())
        };
        let ((h, da, db), (h0, da0, db0)) = (run(true), run(false));
        check(name, "swiglu h", h, h0, 1e-5);
        check(name, "swiglu da", da, da0, 1e-4);
        check(name, "swiglu db", db, db0, 1e-4);
    }
}

#[test]
fn fused_rope_equals_burns() {
    for (name, device) in devices() {
        let mut rng = Lcg(13);
        let (b, t, h, d) = (2, 9, 3, 12);
        let (cos, sin) = rope_tables(d, 1e4, RopeScaling::None, 0, t, &device);
        let x = random([b, t, h, d], &mut rng, &device);
        let w = random([b, t, h, d], &mut rng, &device);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused {
                rope(x.clone(), &cos, &sin)
            } else {
                apply_rope(x.clone().swap_dims(1, 2), &cos, &sin).swap_dims(1, 2)
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            (y.inner(), x.grad(&grads).unwrap())
        };
        let ((y, dx), (y0, dx0)) = (run(true), run(false));
        check(name, "rope y", y, y0, 1e-6);
        check(name, "rope dx", dx, dx0, 1e-6);
    }
}

#[test]
fn fused_sigmoid_gate_equals_burns() {
    for (name, device) in devices() {
        let mut rng = Lcg(14);
        let [y, s, w] = [(); 3].map(|_| random([2, 5, 3, 19], &mut rng, &device));
        let run = |fused: bool| {
            let (y, s) = (y.clone().require_grad(), s.clone().require_grad());
            let h = if fused { sigmoid_gate(y.clone(), s.clone()) } else { y.clone() * sigmoid(s.clone()) };
            let grads = (h.clone() * w.clone()).sum().backward();
            (h.inner(), y.grad(&grads).unwrap(), s.grad(&grads).unwrap())
        };
        let ((h, dy, ds), (h0, dy0, ds0)) = (run(true), run(false));
        check(name, "gate h", h, h0, 1e-5);
        check(name, "gate dy", dy, dy0, 1e-5);
        check(name, "gate ds", ds, ds0, 1e-4);
    }
}
