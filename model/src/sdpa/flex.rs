//! The fused causal attention on flex (f32): FlashAttention's tiling without its online softmax.
//!
//! Each head is processed alone (heads in parallel on the rayon pool flex itself uses), one tile
//! of [`TILE`] query rows at a time against the keys those rows can see, `0..i1` for the tile
//! `i0..i1` (the causal half of the score matrix is never computed). A tile's scores fit in a
//! `TILE × t` buffer, so the softmax over a row is exact in one pass (no running maximum to
//! rescale by): forward, per tile,
//!
//! ```text
//! S = Q_tile·K[..i1]ᵀ·scale   P = exp(S − L), L = rowmax + ln Σ exp(S − rowmax)   O_tile = P·V[..i1]
//! ```
//!
//! keeping only `L` (`[b, kv, g·t]`) for the backward pass, which recomputes `P` per tile and
//! applies the closed form of the parent module: `dV += Pᵀ·dO`, `dS = P ⊙ (dO·Vᵀ − D)·scale`
//! with `D = rowsum(dO ⊙ O)`, `dQ = dS·K`, `dK += dSᵀ·Q`. The backward pass runs one task per
//! KV head, so the query heads sharing it (grouped-query attention) add into its `dK`, `dV`
//! without synchronisation. Products go through `gemm`, the crate flex's own matmul uses;
//! exponentials through [`crate::kernels::exp_in_place`], vectorised.
//!
//! Memory: two `TILE × t` buffers per task instead of the `[b, heads, t, t]` probabilities the
//! reference path keeps for its backward pass.

use crate::kernels::exp_in_place;
use crate::kernels::flex::{contiguous, tensor, values};
use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::DType;
use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Query rows per tile.
const TILE: usize = 64;

/// Whether the fused kernel takes these tensors (else the reference path does).
pub(super) fn fused(q: &FlexTensor) -> bool {
    q.dtype() == DType::F32
}

/// `q [b, kv, g·t, hd]` against `k [b, kv, t, hd]`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    groups: usize,
    t: usize,
    hd: usize,
}

impl Dims {
    fn of(q: &FlexTensor, k: &FlexTensor) -> Self {
        let [_, _, gt, hd] = q.shape().dims::<4>();
        let t = k.shape().dims::<4>()[2];
        assert!(t > 0 && gt % t == 0, "causal attention: {gt} query rows against {t} keys");
        Self { groups: gt / t, t, hd }
    }

    /// Elements of one head's `[t, hd]`.
    fn head(&self) -> usize {
        self.t * self.hd
    }
}

/// `dst (rows × n, row stride ld_dst) (+)= lhs · rhs`, with explicit row and column strides;
/// `accumulate` adds to `dst`, else overwrites it.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    ld_dst: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    scale: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The bounds gemm reads and writes, checked here so the unsafe call cannot leave them.
    assert!(dst.len() >= (m - 1) * ld_dst + n);
    if k > 0 {
        assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
        assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    }
    // SAFETY: the pointers come from slices that cover every index gemm touches (above), and dst
    // does not alias lhs or rhs (a `&mut` beside two `&`).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld_dst as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// `s[r·i1 + j] = scale · q_{i0+r} · k_j` for the tile `i0..i1` against keys `0..i1`.
fn scores(q: &[f32], k: &[f32], (i0, i1): (usize, usize), hd: usize, scale: f32, s: &mut [f32]) {
    // Kᵀ as a [hd, i1] view of the row-major [t, hd] keys: row stride 1, column stride hd.
    matmul((i1 - i0, i1, hd), s, i1, false, &q[i0 * hd..], (hd, 1), k, (1, hd), scale);
}

/// The forward pass: `(out [b, kv, g·t, hd], L [b, kv, g·t])`.
pub(super) fn forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, scale: f64) -> (FlexTensor, FlexTensor) {
    let d = Dims::of(&q, &k);
    let shape = q.shape().to_vec();
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let (qs, ks, vs) = (values(&q), values(&k), values(&v));
    let (t, hd, head) = (d.t, d.hd, d.head());
    let scale = scale as f32;
    let mut out = vec![0f32; qs.len()];
    let mut lse = vec![0f32; qs.len() / hd];
    out.par_chunks_mut(head).zip(lse.par_chunks_mut(t)).enumerate().for_each(|(h, (o, l))| {
        let kv = h / d.groups;
        let (qh, kh, vh) = (&qs[h * head..][..head], &ks[kv * head..][..head], &vs[kv * head..][..head]);
        let mut s = vec![0f32; TILE.min(t) * t];
        for i0 in (0..t).step_by(TILE) {
            let i1 = (i0 + TILE).min(t);
            scores(qh, kh, (i0, i1), hd, scale, &mut s);
            for (r, row) in s.chunks_mut(i1).take(i1 - i0).enumerate() {
                let i = i0 + r;
                let (seen, future) = row.split_at_mut(i + 1);
                let max = seen.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                seen.iter_mut().for_each(|x| *x -= max);
                exp_in_place(seen);
                let sum: f32 = seen.iter().sum();
                let inv = 1.0 / sum;
                seen.iter_mut().for_each(|x| *x *= inv);
                future.fill(0.0);
                l[i] = max + sum.ln();
            }
            matmul((i1 - i0, hd, i1), &mut o[i0 * hd..], hd, false, &s, (i1, 1), vh, (hd, 1), 1.0);
        }
    });
    let mut lse_shape = shape.clone();
    lse_shape.pop();
    (tensor(out, shape), tensor(lse, lse_shape))
}

/// The backward pass: `(dq, dk, dv)`, shaped as `q`, `k`, `v`.
pub(super) fn backward(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    lse: FlexTensor,
    d_out: FlexTensor,
    scale: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let d = Dims::of(&q, &k);
    let (q_shape, k_shape) = (q.shape().to_vec(), k.shape().to_vec());
    let [q, k, v, out, lse, d_out] = [q, k, v, out, lse, d_out].map(contiguous);
    let (qs, ks, vs, os, ls, dos) = (values(&q), values(&k), values(&v), values(&out), values(&lse), values(&d_out));
    let (t, hd, head, g) = (d.t, d.hd, d.head(), d.groups);
    let scale = scale as f32;
    let mut dq = vec![0f32; qs.len()];
    let mut dk = vec![0f32; ks.len()];
    let mut dv = vec![0f32; vs.len()];
    dq.par_chunks_mut(g * head).zip(dk.par_chunks_mut(head)).zip(dv.par_chunks_mut(head)).enumerate().for_each(
        |(kv, ((dq, dk), dv))| {
            let (kh, vh) = (&ks[kv * head..][..head], &vs[kv * head..][..head]);
            let mut p = vec![0f32; TILE.min(t) * t];
            let mut ds = vec![0f32; TILE.min(t) * t];
            for gi in 0..g {
                let h = kv * g + gi;
                let (qh, oh, doh) = (&qs[h * head..][..head], &os[h * head..][..head], &dos[h * head..][..head]);
                let lh = &ls[h * t..][..t];
                let dqh = &mut dq[gi * head..][..head];
                for i0 in (0..t).step_by(TILE) {
                    let i1 = (i0 + TILE).min(t);
                    let rows = i1 - i0;
                    // P = exp(S − L) on the seen keys, 0 on the future.
                    scores(qh, kh, (i0, i1), hd, scale, &mut p);
                    for (r, row) in p.chunks_mut(i1).take(rows).enumerate() {
                        let i = i0 + r;
                        let (seen, future) = row.split_at_mut(i + 1);
                        seen.iter_mut().for_each(|x| *x -= lh[i]);
                        exp_in_place(seen);
                        future.fill(0.0);
                    }
                    let d_o = &doh[i0 * hd..];
                    // dV[..i1] += Pᵀ·dO_tile (Pᵀ: row stride 1, column stride i1).
                    matmul((i1, hd, rows), dv, hd, true, &p, (1, i1), d_o, (hd, 1), 1.0);
                    // dP = dO_tile·V[..i1]ᵀ, then dS = P ⊙ (dP − D)·scale in place.
                    matmul((rows, i1, hd), &mut ds, i1, false, d_o, (hd, 1), vh, (1, hd), 1.0);
                    for (r, (row, pr)) in ds.chunks_mut(i1).zip(p.chunks(i1)).take(rows).enumerate() {
                        let i = i0 + r;
                        let dot: f32 = doh[i * hd..][..hd].iter().zip(&oh[i * hd..][..hd]).map(|(a, b)| a * b).sum();
                        row.iter_mut().zip(pr).for_each(|(x, &pv)| *x = pv * (*x - dot) * scale);
                    }
                    // dQ_tile = dS·K[..i1]; dK[..i1] += dSᵀ·Q_tile.
                    matmul((rows, hd, i1), &mut dqh[i0 * hd..], hd, false, &ds, (i1, 1), kh, (hd, 1), 1.0);
                    matmul((i1, hd, rows), dk, hd, true, &ds, (1, i1), &qh[i0 * hd..], (hd, 1), 1.0);
                }
            }
        },
    );
    (tensor(dq, q_shape), tensor(dk, k_shape.clone()), tensor(dv, k_shape))
}
