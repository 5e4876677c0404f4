//! The fused causal attention (`gatelab_model::sdpa::causal_sdpa`) against the reference operation
//! (`sdpa`, the one the PyTorch parity tests check through the probes' path) on the same inputs:
//! output and the gradients of q, k and v, on every backend with a fused kernel (flex; libtorch
//! with the `tch` feature; the CubeCL kernels on wgpu, which Mesa's lavapipe runs on a CPU), over
//! shapes that cross the kernels' tile edges (64 query rows on flex; 64, 32 or 16 rows per cube
//! on CubeCL, by head dimension), with grouped queries, and a sequence of one token.

use crate::common::Lcg;
use burn::backend::{Dispatch, TensorMetadata};
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};
use gatelab_model::sdpa::{SdpaOps, causal_sdpa, sdpa};

/// `(b, kv, groups, t, hd)`.
const SHAPES: [(usize, usize, usize, usize, usize); 6] =
    [(2, 2, 1, 70, 16), (1, 2, 2, 130, 8), (2, 1, 3, 5, 4), (1, 1, 1, 64, 32), (1, 2, 2, 1, 8), (1, 1, 4, 129, 64)];

fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut out = vec![("flex", Device::flex())];
    #[cfg(feature = "tch")]
    #[allow(deprecated)] // burn-tch is deprecated upstream; gatelab keeps it
    out.push(("tch", Device::libtorch()));
    // The child run of libtorch's CUDA path (below) checks tch alone.
    if std::env::var("GATELAB_TCH_SDPA").is_ok() {
        return out;
    }
    #[cfg(feature = "wgpu")]
    out.extend(cube("wgpu", Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)));
    #[cfg(feature = "cuda")]
    out.extend(cube("cuda", Device::cuda(0)));
    out
}

/// A CubeCL backend's device (wgpu's default adapter, lavapipe on a machine without a GPU; CUDA
/// device 0) where it works: skipped with the reason otherwise, unless `GATELAB_REQUIRE_BACKENDS`
/// names it.
#[cfg(feature = "cube")]
fn cube(name: &'static str, device: Device) -> Option<(&'static str, Device)> {
    let probe = device.clone();
    let works =
        std::panic::catch_unwind(move || Tensor::<1>::from_floats([1.0, 2.0], &probe).sum().into_scalar::<f32>());
    let required = std::env::var("GATELAB_REQUIRE_BACKENDS").unwrap_or_default();
    match works {
        Ok(3.0) => Some((name, device)),
        _ => {
            assert!(!required.split(',').any(|b| b == name), "{name} is required but does not work here");
            println!("SKIPPED {name}: no working device (wgpu: install Mesa's lavapipe; cuda: an NVIDIA driver)");
            None
        }
    }
}

/// The largest absolute value of `x`.
fn largest(x: &Tensor<4>) -> f32 {
    x.clone().abs().max().into_scalar::<f32>()
}

/// The largest absolute difference, relative to the largest absolute value of `want`.
fn rel_diff(got: Tensor<4>, want: Tensor<4>) -> f32 {
    let scale = largest(&want).max(1e-6);
    (got - want).abs().max().into_scalar::<f32>() / scale
}

/// `q, k, v` and a weight `w` for the loss `Σ out ⊙ w`, on `device`, from the test's own generator
/// (a device's seed is shared by the tests running beside this one).
fn inputs(shape: (usize, usize, usize, usize, usize), device: &Device, seed: u64) -> [Tensor<4>; 4] {
    let (b, kv, g, t, hd) = shape;
    let mut rng = Lcg(seed);
    let mut normal = |dims: [usize; 4]| {
        // Sums of uniforms, near enough to normal for attention inputs.
        let n = dims.iter().product::<usize>();
        let values: Vec<f32> = (0..n)
            .map(|_| (0..4).map(|_| rng.below(1 << 20) as f32 / (1 << 20) as f32 - 0.5).sum::<f32>() * 1.7)
            .collect();
        Tensor::<4>::from_data(TensorData::new(values, dims), device)
    };
    [normal([b, kv, g * t, hd]), normal([b, kv, t, hd]), normal([b, kv, t, hd]), normal([b, kv, g * t, hd])]
}

/// `logsumexp(Q·Kᵀ·scale, masked)` per query row, `[b, kv, g·t, 1]`: the residual of the fused
/// kernels.
fn reference_lse(q: Tensor<4>, k: Tensor<4>, masked: Tensor<4, Bool>, scale: f64) -> Tensor<4> {
    let scores = q.matmul(k.transpose()).mul_scalar(scale).mask_fill(masked, f32::NEG_INFINITY);
    let max = scores.clone().max_dim(3);
    (scores - max.clone()).exp().sum_dim(3).log() + max
}

fn stacked_causal_mask(g: usize, t: usize, device: &Device) -> Tensor<2, Bool> {
    Tensor::<2, Bool>::tril_mask([t, t], 0, device).repeat_dim(0, g)
}

#[test]
fn fused_causal_attention_equals_the_reference() {
    for (name, device) in devices() {
        let grad_device = device.clone().autodiff();
        for (i, &shape) in SHAPES.iter().enumerate() {
            let (_, _, g, t, hd) = shape;
            let scale = (hd as f64).powf(-0.5);
            let run = |fused: bool| {
                let [q, k, v, w] = inputs(shape, &grad_device, 7 + i as u64);
                let (q, k, v) = (q.require_grad(), k.require_grad(), v.require_grad());
                let masked = stacked_causal_mask(g, t, &grad_device);
                let out = if fused {
                    causal_sdpa(q.clone(), k.clone(), v.clone(), masked, scale)
                } else {
                    sdpa(q.clone(), k.clone(), v.clone(), masked, scale, None).0
                };
                let grads = (out.clone() * w).sum().backward();
                let grad = |x: &Tensor<4>| x.grad(&grads).expect("a gradient");
                [out.inner(), grad(&q), grad(&k), grad(&v)]
            };
            let (fused, reference) = (run(true), run(false));
            // The output against its own scale; a gradient against the largest of the three
            // (with one token dq is zero in exact arithmetic, so its own scale is rounding noise).
            let grad_scale = reference[1..].iter().map(largest).fold(1e-6, f32::max);
            for (what, (got, want)) in ["out", "dq", "dk", "dv"].iter().zip(fused.into_iter().zip(reference)) {
                let (scale, bound) = if *what == "out" { (largest(&want).max(1e-6), 1e-5) } else { (grad_scale, 1e-4) };
                let diff = largest(&(got - want)) / scale;
                assert!(diff <= bound, "{name} {shape:?}: {what} differs by {diff:e} of its scale");
            }
        }
    }
}

/// The fused kernels really run (rather than the reference path they fall back to): their
/// residual is the row log-sum-exp, `[b, heads·t]` worth of values, not the `[.., t, t]`
/// probabilities, and equals `logsumexp(S)` of the reference scores.
#[test]
fn fused_kernels_keep_the_log_sum_exp() {
    for (name, device) in devices() {
        let shape = (2, 2, 2, 70, 16);
        let (b, kv, g, t, hd) = shape;
        let scale = (hd as f64).powf(-0.5);
        let [q, k, v, _] = inputs(shape, &device, 3);
        let masked = stacked_causal_mask(g, t, &device).unsqueeze::<4>();
        let (_, residual) = <Dispatch as SdpaOps>::causal_sdpa(
            q.clone().into_dispatch(),
            k.clone().into_dispatch(),
            v.into_dispatch(),
            masked.clone().into_dispatch(),
            scale,
        );
        if name == "tch" && std::env::var("GATELAB_TCH_SDPA").as_deref() == Ok("autograd") {
            // libtorch's CUDA path, run on the CPU: no log-sum-exp kept, an unused `[1]`.
            assert_eq!(residual.shape().num_elements(), 1, "tch: the autograd path did not run");
            continue;
        }
        assert_eq!(residual.shape().num_elements(), b * kv * g * t, "{name}: the residual is not a log-sum-exp");
        let lse = Tensor::<3>::from_dispatch(residual).reshape([b, kv, g * t, 1]);
        let diff = rel_diff(lse, reference_lse(q, k, masked, scale));
        assert!(diff < 1e-5, "{name}: log-sum-exp differs by {diff:e}");
    }
}

/// libtorch's CUDA path (`scaled_dot_product_attention` differentiated by libtorch's autograd)
/// run on the CPU, where `GATELAB_TCH_SDPA=autograd` sends libtorch's tensors: this test binary
/// again, with the two tests above, which then check that path against the reference and that it
/// ran (its residual is the unused `[1]`).
#[cfg(feature = "tch")]
#[test]
fn libtorch_cuda_path_equals_the_reference_when_run_on_the_cpu() {
    if std::env::var("GATELAB_TCH_SDPA").is_ok() {
        return; // the child itself
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["sdpa::fused_", "--test-threads", "1"])
        .env("GATELAB_TCH_SDPA", "autograd")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 passed"), "{stdout}");
}

/// bf16 inputs (mixed precision, `gatelab_model::precision`): every path computes a softmax in
/// f32 (libtorch's kernels inside, the others in f32 from the rounded inputs), so the output and
/// gradients stay within a few bf16 roundings (u = 2⁻⁸) of the f32 reference on the same values:
/// the inputs', the output's and, for a gradient, the backward products' — 4u for the output and
/// 8u for a gradient, relative to the scales above. Each differs from f32 somewhere (bf16 ran),
/// but for dq and dk at one key, which are exactly zero on every path.
#[test]
fn bf16_attention_stays_within_bf16_roundings_of_f32() {
    const U: f32 = 1.0 / 256.0;
    // WGSL has no bf16 (`gatelab_model::precision`): wgpu computes bf16 models in f32.
    for (name, device) in devices().into_iter().filter(|(name, _)| *name != "wgpu") {
        let grad_device = device.clone().autodiff();
        for (i, &shape) in SHAPES.iter().enumerate() {
            let (_, _, g, t, hd) = shape;
            let scale = (hd as f64).powf(-0.5);
            let run = |dtype: DType| {
                let [q, k, v, w] = inputs(shape, &grad_device, 7 + i as u64);
                let (q, k, v) = (q.require_grad(), k.require_grad(), v.require_grad());
                let masked = stacked_causal_mask(g, t, &grad_device);
                let out =
                    causal_sdpa(q.clone().cast(dtype), k.clone().cast(dtype), v.clone().cast(dtype), masked, scale);
                assert_eq!(out.dtype(), dtype, "{name}: the output keeps the inputs' dtype");
                let out = out.cast(DType::F32);
                let grads = (out.clone() * w).sum().backward();
                let grad = |x: &Tensor<4>| x.grad(&grads).expect("a gradient");
                [out.inner(), grad(&q), grad(&k), grad(&v)]
            };
            let (mixed, full) = (run(DType::BF16), run(DType::F32));
            let grad_scale = full[1..].iter().map(largest).fold(1e-6, f32::max);
            for (what, (got, want)) in ["out", "dq", "dk", "dv"].iter().zip(mixed.into_iter().zip(full)) {
                let (scale, bound) =
                    if *what == "out" { (largest(&want).max(1e-6), 4.0 * U) } else { (grad_scale, 8.0 * U) };
                let diff = largest(&(got - want)) / scale;
                assert!(
                    diff <= bound,
                    "{name} {shape:?}: bf16 {what} differs by {diff:e} of its scale (bound {bound:e})"
                );
                // With one key the softmax is constant: dq and dk are exactly zero on both paths.
                let exact_zero = matches!(*what, "dq" | "dk") && t == 1;
                assert!(
                    diff > 0.0 || exact_zero,
                    "{name} {shape:?}: bf16 {what} is exactly the f32 one: bf16 did not run"
                );
            }
        }
    }
}

/// The CubeCL kernels read any float storage dtype and compute in f32 (`sdpa/cube.rs`); the cuda
/// backend hands them bf16 and f16 as they are (`kernel_takes`). Here each half-precision dtype the
/// device stores is given to the operation directly, against the f32 reference on the same rounded
/// values: output within 2 roundings of its dtype, and the row log-sum-exp (f32) within 1e-5. On
/// lavapipe, f16 if its Vulkan has it; bf16 nowhere on wgpu (WGSL has none).
#[cfg(feature = "cube")]
#[test]
fn cube_kernels_take_half_precision_storage() {
    let mut ran = 0;
    for (name, device) in devices().into_iter().filter(|(name, _)| matches!(*name, "wgpu" | "cuda")) {
        for (dtype, u) in [(DType::F16, 1.0 / 1024.0), (DType::BF16, 1.0 / 128.0)] {
            if !device.supports_dtype(dtype) {
                println!("SKIPPED {name} {dtype:?}: the device does not store it");
                continue;
            }
            let shape = (1, 2, 2, 70, 16);
            let (b, kv, g, t, hd) = shape;
            let scale = (hd as f64).powf(-0.5);
            let [q, k, v, _] = inputs(shape, &device, 11);
            let (q, k, v) = (q.cast(dtype), k.cast(dtype), v.cast(dtype));
            let masked = stacked_causal_mask(g, t, &device).unsqueeze::<4>();
            let (out, lse) = <Dispatch as SdpaOps>::causal_sdpa(
                q.clone().into_dispatch(),
                k.clone().into_dispatch(),
                v.clone().into_dispatch(),
                masked.clone().into_dispatch(),
                scale,
            );
            let out = Tensor::<4>::from_dispatch(out);
            assert_eq!(out.dtype(), dtype, "{name}: the output keeps the storage dtype");
            let (q, k, v) = (q.cast(DType::F32), k.cast(DType::F32), v.cast(DType::F32));
            let want = sdpa(q.clone(), k.clone(), v, masked.clone().squeeze_dims::<2>(&[0, 1]), scale, None).0;
            let out_diff = rel_diff(out.cast(DType::F32), want);
            assert!(out_diff <= 2.0 * u, "{name} {dtype:?}: output differs by {out_diff:e} of its scale");
            let lse = Tensor::<3>::from_dispatch(lse).reshape([b, kv, g * t, 1]);
            let diff = rel_diff(lse, reference_lse(q, k, masked, scale));
            assert!(diff < 1e-5, "{name} {dtype:?}: log-sum-exp differs by {diff:e}");
            println!("{name} {dtype:?}: output within {out_diff:e} of its scale, log-sum-exp within {diff:e}");
            ran += 1;
        }
    }
    println!("half-precision cases run: {ran}");
}
