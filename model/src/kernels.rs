//! CPU kernels on contiguous `f32` slices, shared by the backends with fused operations (flex's
//! tensors and libtorch's CPU tensors are both plain memory): the exponential, and the forward and
//! backward passes of RMSNorm, the SwiGLU activation, the sigmoid gate and rotary position
//! embedding, each one pass
//! (or two) over its rows, in parallel on rayon's pool (the one flex uses).
//!
//! Written as Burn tensor operations, each of these is a chain of elementwise operations that
//! autodiff differentiates one by one (RMSNorm: square, mean, add, sqrt, divide, multiply, each
//! with its own backward), every one a full pass over memory; here the chain is one loop whose
//! closed-form backward is another. `model/tests/model/fused.rs` checks every kernel against the
//! decomposed Burn operations on the same inputs.

use rayon::prelude::*;

/// Rows per rayon task: enough work per task to amortise scheduling for short rows.
fn rows_per_task(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

/// `x ← exp(x)` over a slice, with AVX-512 or AVX2/FMA where the CPU has them.
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            unsafe { exp_avx512(x) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            unsafe { exp_avx2(x) };
            return;
        }
    }
    exp_portable(x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn exp_avx512(x: &mut [f32]) {
    exp_portable(x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_avx2(x: &mut [f32]) {
    exp_portable(x);
}

/// Cephes' `expf`: `2ⁿ · p(r)` with `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, a degree-6 polynomial,
/// evaluated in f64 so the result is within one unit in the last place of `f32::exp` (tested;
/// evaluated in f32 it was two, enough to tip the most ill-conditioned PyTorch parity case,
/// softpick with a G1 gate, over its tolerance), without branches so the compiler vectorises it. Underflows to 0 below −87.3 (so `−∞ → 0`), saturates above 88.3.
#[inline(always)]
fn exp_portable(x: &mut [f32]) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2: f64 = std::f64::consts::LN_2;
    const P: [f64; 6] =
        [1.987_569_15e-4, 1.398_199_95e-3, 8.333_451_9e-3, 4.166_579_59e-2, 1.666_666_55e-1, 5.000_000_12e-1];
    for v in x.iter_mut() {
        let underflow = *v < -87.3;
        let xc = v.clamp(-87.3, 88.3) as f64;
        let n = (xc * LOG2E + 0.5).floor();
        let r = xc - n * LN2;
        let mut y = P[0];
        for c in &P[1..] {
            y = y * r + c;
        }
        let y = y * (r * r) + r + 1.0;
        let pow = f64::from_bits(((n as i64 + 1023) as u64) << 52);
        *v = if underflow { 0.0 } else { (y * pow) as f32 };
    }
}

/// `σ(x)` into `out`, through [`exp_in_place`].
fn sigmoid_into(x: &[f32], out: &mut [f32]) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = -v);
    exp_in_place(out);
    out.iter_mut().for_each(|o| *o = 1.0 / (1.0 + *o));
}

/// RMSNorm over rows of `width`: `y = x · r · γ` with `r = 1/√(mean(x²) + eps)`; writes `y` and
/// `r` (one per row, for the backward pass).
pub fn rms_norm_forward(x: &[f32], gamma: &[f32], eps: f32, y: &mut [f32], r: &mut [f32]) {
    let d = gamma.len();
    let chunk = rows_per_task(d);
    y.par_chunks_mut(chunk * d).zip(r.par_chunks_mut(chunk)).zip(x.par_chunks(chunk * d)).for_each(|((y, r), x)| {
        for ((y, r), x) in y.chunks_mut(d).zip(r.iter_mut()).zip(x.chunks(d)) {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
            *r = 1.0 / (ms + eps).sqrt();
            y.iter_mut().zip(x).zip(gamma).for_each(|((y, &x), &g)| *y = x * *r * g);
        }
    });
}

/// RMSNorm's backward pass: with `g = dy ⊙ γ` and `c = mean(g ⊙ x)` per row,
/// `dx = r·g − x·r³·c` and `dγ = Σ_rows dy ⊙ x · r`. Writes `dx`; returns `dγ`, summed over fixed
/// chunks of rows and then over the chunks in order, so it does not depend on how rayon scheduled
/// them (a run is the same run every time).
pub fn rms_norm_backward(x: &[f32], gamma: &[f32], r: &[f32], dy: &[f32], dx: &mut [f32]) -> Vec<f32> {
    let d = gamma.len();
    let chunk = rows_per_task(d);
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(chunk * d)
        .zip(x.par_chunks(chunk * d))
        .zip(dy.par_chunks(chunk * d))
        .zip(r.par_chunks(chunk))
        .map(|(((dx, x), dy), r)| {
            let mut d_gamma = vec![0f32; d];
            for (((dx, x), dy), &r) in dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d)).zip(r) {
                let c = dy.iter().zip(gamma).zip(x).map(|((dy, g), x)| dy * g * x).sum::<f32>() / d as f32;
                let k = r * r * r * c;
                for (j, dx) in dx.iter_mut().enumerate() {
                    *dx = r * dy[j] * gamma[j] - x[j] * k;
                    d_gamma[j] += dy[j] * x[j] * r;
                }
            }
            d_gamma
        })
        .collect();
    partial.into_iter().fold(vec![0f32; d], |mut a, b| {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        a
    })
}

/// Elements per rayon task of the elementwise kernels.
const ELEMENTS_PER_TASK: usize = 16_384;

/// `h = f(σ(z), z, o)` elementwise: the forward pass of the two operations that gate one input
/// by the sigmoid of another (or of itself).
fn sigmoid_product(z: &[f32], o: &[f32], h: &mut [f32], f: impl Fn(f32, f32, f32) -> f32 + Sync) {
    let n = ELEMENTS_PER_TASK;
    h.par_chunks_mut(n).zip(z.par_chunks(n)).zip(o.par_chunks(n)).for_each(|((h, z), o)| {
        sigmoid_into(z, h);
        h.iter_mut().zip(z).zip(o).for_each(|((h, &z), &o)| *h = f(*h, z, o));
    });
}

/// `(dz, do) = f(σ(z), z, o, dh)` elementwise: the backward pass of [`sigmoid_product`].
fn sigmoid_product_backward(
    z: &[f32],
    o: &[f32],
    dh: &[f32],
    dz: &mut [f32],
    d_o: &mut [f32],
    f: impl Fn(f32, f32, f32, f32) -> (f32, f32) + Sync,
) {
    let n = ELEMENTS_PER_TASK;
    dz.par_chunks_mut(n)
        .zip(d_o.par_chunks_mut(n))
        .zip(z.par_chunks(n))
        .zip(o.par_chunks(n))
        .zip(dh.par_chunks(n))
        .for_each(|((((dz, d_o), z), o), dh)| {
            sigmoid_into(z, dz);
            dz.iter_mut().zip(d_o.iter_mut()).zip(z).zip(o).zip(dh).for_each(|((((dz, d_o), &z), &o), &dh)| {
                (*dz, *d_o) = f(*dz, z, o, dh);
            });
        });
}

/// SwiGLU's activation `h = silu(a) ⊙ b` (`silu(a) = a·σ(a)`).
pub fn swiglu_forward(a: &[f32], b: &[f32], h: &mut [f32]) {
    sigmoid_product(a, b, h, |s, a, b| s * (a * b));
}

/// SwiGLU's backward pass: `da = dh ⊙ b ⊙ σ(a)·(1 + a·(1 − σ(a)))`, `db = dh ⊙ silu(a)`.
pub fn swiglu_backward(a: &[f32], b: &[f32], dh: &[f32], da: &mut [f32], db: &mut [f32]) {
    sigmoid_product_backward(a, b, dh, da, db, |s, a, b, dh| (dh * b * s * (1.0 + a * (1.0 - s)), dh * a * s));
}

/// The paper's gate, `h = y ⊙ σ(s)`.
pub fn sigmoid_gate_forward(y: &[f32], s: &[f32], h: &mut [f32]) {
    sigmoid_product(s, y, h, |sg, _, y| sg * y);
}

/// The gate's backward pass: `dy = dh ⊙ σ(s)`, `ds = dh ⊙ y ⊙ σ(s)(1 − σ(s))`.
pub fn sigmoid_gate_backward(y: &[f32], s: &[f32], dh: &[f32], dy: &mut [f32], ds: &mut [f32]) {
    sigmoid_product_backward(s, y, dh, ds, dy, |sg, _, y, dh| (dh * y * sg * (1.0 - sg), dh * sg));
}

/// Rotary embedding on rows of `d = cos.len() / seq` (`d` even), row `i` at position
/// `(i / heads) % seq` (`x` laid out `[batch, seq, heads, d]`): `y = x·cos + rot(x)·sin` with
/// `rot([x₁, x₂]) = [−x₂, x₁]`. With `transpose`, the backward pass instead: `dx = dy·cos +
/// rotᵀ(dy·sin)`, `rotᵀ([z₁, z₂]) = [z₂, −z₁]`.
pub fn rope(x: &[f32], cos: &[f32], sin: &[f32], seq: usize, heads: usize, transpose: bool, y: &mut [f32]) {
    let d = cos.len() / seq;
    let half = d / 2;
    let row = heads * d; // one position of one sequence
    y.par_chunks_mut(row).zip(x.par_chunks(row)).enumerate().for_each(|(i, (y, x))| {
        let pos = i % seq;
        let (c, s) = (&cos[pos * d..][..d], &sin[pos * d..][..d]);
        for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
            let (x1, x2) = x.split_at(half);
            let (y1, y2) = y.split_at_mut(half);
            if transpose {
                for j in 0..half {
                    y1[j] = x1[j] * c[j] + x2[j] * s[half + j];
                    y2[j] = x2[j] * c[half + j] - x1[j] * s[j];
                }
            } else {
                for j in 0..half {
                    y1[j] = x1[j] * c[j] - x2[j] * s[j];
                    y2[j] = x2[j] * c[half + j] + x1[j] * s[half + j];
                }
            }
        }
    });
}

/// flex's f32 tensors as the slices the kernels take, and back.
pub(crate) mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::tensor::TensorData;

    /// A contiguous copy (or the tensor itself, when already contiguous).
    pub fn contiguous(x: FlexTensor) -> FlexTensor {
        x.to_contiguous()
    }

    /// The values of a contiguous f32 tensor.
    pub fn values(x: &FlexTensor) -> &[f32] {
        x.as_slice::<f32>().expect("a contiguous f32 tensor")
    }

    /// A tensor of `shape` holding `data`.
    pub fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(data, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::exp_in_place;

    /// Within one unit in the last place of `f32::exp` (normal results), 0 below its range.
    #[test]
    fn exp_matches_std() {
        let xs: Vec<f32> =
            (-2000..=2000).map(|i| i as f32 * 0.044).chain([f32::NEG_INFINITY, -100.0, 0.0, 100.0]).collect();
        let mut ys = xs.clone();
        exp_in_place(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = x.min(88.3).exp();
            if want < f32::MIN_POSITIVE {
                assert!(y < f32::MIN_POSITIVE, "exp({x}) = {y}, want {want}");
            } else {
                let ulps = (y.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(ulps <= 1, "exp({x}) = {y}, want {want} ({ulps} ulp apart)");
            }
        }
    }
}
