//! The fused causal attention on the CubeCL backends (wgpu, CUDA): three CubeCL kernels that
//! never store the `[b, heads, t, t]` probabilities.
//!
//! The layout is the parent module's: `q [b, kv, g·t, hd]` (the `g` query heads of a KV head
//! stacked along the sequence axis, so row `r` is position `r mod t`), `k`, `v` `[b, kv, t, hd]`.
//! One cube of `block` units works on `block` rows of one `(batch, KV head)`; each unit owns one
//! row and keeps it, and its accumulators, in registers; the cube stages tiles of `block` rows of
//! the other operand in shared memory. Arithmetic is f32 whatever the storage dtype.
//!
//! - [`forward_kernel`]: a unit per query row, over the key tiles its cube can see (the causal
//!   half is skipped), with the online softmax of FlashAttention (running max `m`, sum `l`,
//!   output rescaled once per tile). It writes `O` and the row log-sum-exp `L = m + ln l`.
//! - [`dq_kernel`]: a unit per query row recomputes `P = exp(S − L)` key by key and sums
//!   `dQ = Σ_j P_j (dP_j − D)·k_j·scale` with `dP_j = dO·v_j` and `D = rowsum(dO ⊙ O)`.
//! - [`dkv_kernel`]: a unit per key row, over the query tiles of every query head of its KV head
//!   that can see it, sums `dV = Σ_r P_r·dO_r` and `dK = Σ_r P_r (dP_r − D_r)·q_r·scale`: the query
//!   heads sharing a KV head (grouped-query attention) are summed inside the unit, so no two units
//!   write the same row and nothing is atomic.
//!
//! This is FlashAttention-2's split of the backward pass (a dQ pass and a dK/dV pass) with one
//! row per unit instead of tensor-core tiles: correct everywhere CubeCL runs (it is tested on
//! Mesa's lavapipe, `model/tests/model/sdpa.rs`), not tuned. Its speed on a GPU is measured by
//! `bench/gpu.sh`; none is claimed here, and none was tuned on lavapipe.
//!
//! The loops over the head dimension are unrolled (`hd` is a compile-time constant of the
//! kernel): a unit's rows then stay in registers, which a loop's dynamic index would push to
//! local memory, and a unit's loops run about `rows·(1 + 2·hd/block)` times in all. The second
//! matters on lavapipe, whose llvmpipe stops a shader's loops after 65,535 iterations counted over
//! all of them (`LP_MAX_TGSI_LOOP_ITERATIONS`), quietly: with the head-dimension loops rolled, the
//! kernels returned wrong gradients from `t·hd ≈ 25,000` on (measured: t = 387, hd = 64).

use burn::backend::TensorMetadata;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// A score no row has: the running max before the first key (WGSL has no infinity literal).
const NEG_BIG: f32 = -1.0e30;

/// Shared-memory budget of one staged tile, in f32 elements (8 KiB: two tiles fit the 32 KiB
/// every Vulkan, Metal and CUDA device offers).
const TILE_ELEMS: usize = 2048;

/// Rows per cube for head dimension `hd`: a power of two in 8..=64 whose `block × hd` tile fits
/// [`TILE_ELEMS`].
fn block_for(hd: usize) -> usize {
    let mut block = 64;
    while block > 8 && block * hd > TILE_ELEMS {
        block /= 2;
    }
    block
}

/// The key rows a cube of query rows `r0 .. r0 + block` (of `rows`) can see: `0 ..= last`. Rows
/// in one query head see up to their last position; a cube spanning two heads sees every key.
#[cube]
fn last_key(r0: usize, block: usize, rows: usize, t: usize) -> usize {
    let mut end = r0 + block;
    if end > rows {
        end = rows;
    }
    let last_row = end - 1;
    let mut last = t - 1;
    if r0 / t == last_row / t {
        last = last_row % t;
    }
    last
}

/// Copies rows `first .. first + block` of the `[rows, hd]` matrix at `base` into `tile`
/// (zeros past `rows`), all units of the cube together.
#[cube]
fn stage<F: Float>(
    src: &Tensor<F>,
    tile: &mut Shared<[f32]>,
    base: usize,
    first: usize,
    rows: usize,
    #[comptime] block: usize,
    #[comptime] hd: usize,
) {
    let mut i = UNIT_POS_X as usize;
    while i < block * hd {
        let row = first + i / hd;
        let mut x = 0.0f32;
        if row < rows {
            x = f32::cast_from(src[base + row * hd + i % hd]);
        }
        tile[i] = x;
        i += block;
    }
}

/// `Σ_d a[d]·tile[row·hd + d]`.
#[cube]
fn dot_row(a: &Array<f32>, tile: &Shared<[f32]>, row: usize, #[comptime] hd: usize) -> f32 {
    let mut acc = 0.0f32;
    #[unroll]
    for d in 0..hd {
        acc += a[d] * tile[row * hd + d];
    }
    acc
}

/// `row[d] = src[at + d]·scale` for `d < hd`, or zeros where the unit has no row (`!valid`).
#[cube]
fn load_row<F: Float>(
    src: &Tensor<F>,
    row: &mut Array<f32>,
    at: usize,
    valid: bool,
    scale: f32,
    #[comptime] hd: usize,
) {
    #[unroll]
    for d in 0..hd {
        let mut x = 0.0f32;
        if valid {
            x = f32::cast_from(src[at + d]) * scale;
        }
        row[d] = x;
    }
}

/// `row[d] = 0` for `d < hd`.
#[cube]
fn zero_row(row: &mut Array<f32>, #[comptime] hd: usize) {
    #[unroll]
    for d in 0..hd {
        row[d] = 0.0f32;
    }
}

/// Forward pass: `out = softmax(q·kᵀ·scale, causal)·v` and `lse` (`[b·kv, rows]`, f32).
#[cube(launch_unchecked)]
fn forward_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    out: &mut Tensor<F>,
    lse: &mut Tensor<f32>,
    rows: u32,
    t: u32,
    scale: f32,
    #[comptime] block: usize,
    #[comptime] hd: usize,
    #[define(F)] _dtype: ElemType,
) {
    let (rows, t) = (rows as usize, t as usize);
    let head = CUBE_POS_Y as usize;
    let r0 = CUBE_POS_X as usize * block;
    let r = r0 + UNIT_POS_X as usize;
    let valid = r < rows;
    let pos = r % t;
    let (q_base, kv_base) = (head * rows * hd, head * t * hd);

    let mut q_row = Array::<f32>::new(hd);
    let mut acc = Array::<f32>::new(hd);
    let mut scores = Array::<f32>::new(block);
    load_row::<F>(q, &mut q_row, q_base + r * hd, valid, scale, hd);
    zero_row(&mut acc, hd);
    let mut m = f32::new(NEG_BIG);
    let mut l = 0.0f32;

    let mut k_tile = Shared::<[f32]>::new_slice(block * hd);
    let mut v_tile = Shared::<[f32]>::new_slice(block * hd);
    let tiles = last_key(r0, block, rows, t) / block + 1;
    for tile in 0..tiles {
        let j0 = tile * block;
        stage::<F>(k, &mut k_tile, kv_base, j0, t, block, hd);
        stage::<F>(v, &mut v_tile, kv_base, j0, t, block, hd);
        sync_cube();
        if valid && j0 <= pos {
            // This tile's scores and their max; keys past `pos` are masked.
            let mut tile_max = f32::new(NEG_BIG);
            for jj in 0..block {
                let mut s = f32::new(NEG_BIG);
                if j0 + jj <= pos {
                    s = dot_row(&q_row, &k_tile, jj, hd);
                }
                scores[jj] = s;
                if s > tile_max {
                    tile_max = s;
                }
            }
            let mut m_new = m;
            if tile_max > m_new {
                m_new = tile_max;
            }
            let rescale = (m - m_new).exp();
            l *= rescale;
            #[unroll]
            for d in 0..hd {
                acc[d] *= rescale;
            }
            for jj in 0..block {
                if j0 + jj <= pos {
                    let p = (scores[jj] - m_new).exp();
                    l += p;
                    #[unroll]
                    for d in 0..hd {
                        acc[d] += p * v_tile[jj * hd + d];
                    }
                }
            }
            m = m_new;
        }
        sync_cube();
    }
    if valid {
        #[unroll]
        for d in 0..hd {
            out[q_base + r * hd + d] = F::cast_from(acc[d] / l);
        }
        lse[head * rows + r] = m + l.ln();
    }
}

/// Backward pass, query side: `dq` from `q, k, v, d_out`, `lse` and `delta = rowsum(dO ⊙ O)`
/// (`[b·kv, rows]`, f32).
#[cube(launch_unchecked)]
fn dq_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    d_out: &Tensor<F>,
    lse: &Tensor<f32>,
    delta: &Tensor<f32>,
    dq: &mut Tensor<F>,
    rows: u32,
    t: u32,
    scale: f32,
    #[comptime] block: usize,
    #[comptime] hd: usize,
    #[define(F)] _dtype: ElemType,
) {
    let (rows, t) = (rows as usize, t as usize);
    let head = CUBE_POS_Y as usize;
    let r0 = CUBE_POS_X as usize * block;
    let r = r0 + UNIT_POS_X as usize;
    let valid = r < rows;
    let pos = r % t;
    let (q_base, kv_base) = (head * rows * hd, head * t * hd);

    let mut q_row = Array::<f32>::new(hd);
    let mut do_row = Array::<f32>::new(hd);
    let mut acc = Array::<f32>::new(hd);
    load_row::<F>(q, &mut q_row, q_base + r * hd, valid, scale, hd);
    load_row::<F>(d_out, &mut do_row, q_base + r * hd, valid, 1.0f32, hd);
    zero_row(&mut acc, hd);
    let mut row_lse = 0.0f32;
    let mut row_delta = 0.0f32;
    if valid {
        row_lse = lse[head * rows + r];
        row_delta = delta[head * rows + r];
    }

    let mut k_tile = Shared::<[f32]>::new_slice(block * hd);
    let mut v_tile = Shared::<[f32]>::new_slice(block * hd);
    let tiles = last_key(r0, block, rows, t) / block + 1;
    for tile in 0..tiles {
        let j0 = tile * block;
        stage::<F>(k, &mut k_tile, kv_base, j0, t, block, hd);
        stage::<F>(v, &mut v_tile, kv_base, j0, t, block, hd);
        sync_cube();
        if valid && j0 <= pos {
            for jj in 0..block {
                if j0 + jj <= pos {
                    let p = (dot_row(&q_row, &k_tile, jj, hd) - row_lse).exp();
                    let ds = p * (dot_row(&do_row, &v_tile, jj, hd) - row_delta);
                    #[unroll]
                    for d in 0..hd {
                        acc[d] += ds * k_tile[jj * hd + d];
                    }
                }
            }
        }
        sync_cube();
    }
    if valid {
        #[unroll]
        for d in 0..hd {
            dq[q_base + r * hd + d] = F::cast_from(acc[d] * scale);
        }
    }
}

/// Backward pass, key side: `dk`, `dv` of each key row, summed over the query heads of its KV
/// head (`rows = groups·t` query rows).
#[cube(launch_unchecked)]
fn dkv_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    d_out: &Tensor<F>,
    lse: &Tensor<f32>,
    delta: &Tensor<f32>,
    dk: &mut Tensor<F>,
    dv: &mut Tensor<F>,
    rows: u32,
    t: u32,
    scale: f32,
    #[comptime] block: usize,
    #[comptime] hd: usize,
    #[define(F)] _dtype: ElemType,
) {
    let (rows, t) = (rows as usize, t as usize);
    let head = CUBE_POS_Y as usize;
    let j_first = CUBE_POS_X as usize * block;
    let j = j_first + UNIT_POS_X as usize;
    let valid = j < t;
    let (q_base, kv_base) = (head * rows * hd, head * t * hd);

    let mut k_row = Array::<f32>::new(hd);
    let mut v_row = Array::<f32>::new(hd);
    let mut dk_acc = Array::<f32>::new(hd);
    let mut dv_acc = Array::<f32>::new(hd);
    load_row::<F>(k, &mut k_row, kv_base + j * hd, valid, scale, hd);
    load_row::<F>(v, &mut v_row, kv_base + j * hd, valid, 1.0f32, hd);
    zero_row(&mut dk_acc, hd);
    zero_row(&mut dv_acc, hd);

    let mut q_tile = Shared::<[f32]>::new_slice(block * hd);
    let mut do_tile = Shared::<[f32]>::new_slice(block * hd);
    let mut lse_tile = Shared::<[f32]>::new_slice(block);
    let mut delta_tile = Shared::<[f32]>::new_slice(block);
    // The query tiles that can see the cube's first key: per query head, positions `j_first ..
    // t` in tiles of `block`, as one flat loop over (head, tile).
    let tiles = (t - j_first).div_ceil(block);
    let steps = (rows / t) * tiles;
    for step in 0..steps {
        let i0 = j_first + (step % tiles) * block;
        let first = (step / tiles) * t + i0;
        let end = first - i0 + t;
        stage::<F>(q, &mut q_tile, q_base, first, end, block, hd);
        stage::<F>(d_out, &mut do_tile, q_base, first, end, block, hd);
        let u = UNIT_POS_X as usize;
        let mut a = 0.0f32;
        let mut b = 0.0f32;
        if first + u < end {
            a = lse[head * rows + first + u];
            b = delta[head * rows + first + u];
        }
        lse_tile[u] = a;
        delta_tile[u] = b;
        sync_cube();
        if valid {
            for ii in 0..block {
                let pos = i0 + ii;
                if pos < t && pos >= j {
                    let p = (dot_row(&k_row, &q_tile, ii, hd) - lse_tile[ii]).exp();
                    let ds = p * (dot_row(&v_row, &do_tile, ii, hd) - delta_tile[ii]);
                    #[unroll]
                    for d in 0..hd {
                        dv_acc[d] += p * do_tile[ii * hd + d];
                        dk_acc[d] += ds * q_tile[ii * hd + d];
                    }
                }
            }
        }
        sync_cube();
    }
    if valid {
        #[unroll]
        for d in 0..hd {
            dk[kv_base + j * hd + d] = F::cast_from(dk_acc[d] * scale);
            dv[kv_base + j * hd + d] = F::cast_from(dv_acc[d]);
        }
    }
}

/// `(b·kv, rows, t, hd)` of `q [b, kv, rows, hd]` against `k [b, kv, t, hd]`. Any head dimension
/// runs: a unit keeps four rows of it in registers, which spill past a few hundred.
fn dims(q: &CubeTensor, k: &CubeTensor) -> (usize, usize, usize, usize) {
    let [b, kv, rows, hd] = q.shape().dims::<4>();
    let t = k.shape().dims::<4>()[2];
    assert!(t > 0 && rows % t == 0, "causal attention: {rows} query rows against {t} keys");
    (b * kv, rows, t, hd)
}

fn empty_like(x: &CubeTensor, shape: Shape, dtype: DType) -> CubeTensor {
    empty_device_dtype(x.client.clone(), x.device.clone(), shape, dtype)
}

// The launches below are unchecked (no bounds test per access, as Burn's own kernels): every
// index is below the contiguous tensors' lengths by construction — rows `< rows`, keys `< t`,
// `d < hd`, each guarded where a tile runs past the end — and `model/tests/model/sdpa.rs` checks
// shapes that cross every tile edge.

/// The fused forward pass: `(out, lse [b, kv, rows])`.
pub(super) fn forward(q: CubeTensor, k: CubeTensor, v: CubeTensor, scale: f64) -> (CubeTensor, CubeTensor) {
    let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
    let (heads, rows, t, hd) = dims(&q, &k);
    let [b, kv, ..] = q.shape().dims::<4>();
    let block = block_for(hd);
    let out = empty_like(&q, q.shape(), q.dtype);
    let lse = empty_like(&q, Shape::new([b, kv, rows]), DType::F32);
    let dtype = q.dtype;
    unsafe {
        forward_kernel::launch_unchecked(
            &q.client.clone(),
            CubeCount::Static(rows.div_ceil(block) as u32, heads as u32, 1),
            CubeDim::new_1d(block as u32),
            q.into_tensor_arg(),
            k.into_tensor_arg(),
            v.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            rows as u32,
            t as u32,
            scale as f32,
            block,
            hd,
            burn::backend::cubecl::dtype_to_storage_type(dtype),
        );
    }
    (out, lse)
}

/// The fused backward pass from the forward's `out` and `lse`: `(dq, dk, dv)`.
pub(super) fn backward(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    out: CubeTensor,
    lse: CubeTensor,
    d_out: CubeTensor,
    scale: f64,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    use burn::backend::ops::FloatTensorOps;
    let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
    let (d_out, lse) = (into_contiguous(d_out), into_contiguous(lse));
    let (heads, rows, t, hd) = dims(&q, &k);
    let block = block_for(hd);
    let dtype = q.dtype;
    // D = rowsum(dO ⊙ O), in f32.
    let f32_of = |x: CubeTensor| CubeBackend::float_cast(x, DType::F32.into());
    let delta = CubeBackend::float_sum_dim(CubeBackend::float_mul(f32_of(d_out.clone()), f32_of(out)), 3);
    let delta = into_contiguous(delta);
    let dq = empty_like(&q, q.shape(), dtype);
    let dk = empty_like(&k, k.shape(), dtype);
    let dv = empty_like(&v, v.shape(), dtype);
    let client = q.client.clone();
    let storage = burn::backend::cubecl::dtype_to_storage_type(dtype);
    unsafe {
        dq_kernel::launch_unchecked(
            &client,
            CubeCount::Static(rows.div_ceil(block) as u32, heads as u32, 1),
            CubeDim::new_1d(block as u32),
            q.clone().into_tensor_arg(),
            k.clone().into_tensor_arg(),
            v.clone().into_tensor_arg(),
            d_out.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            delta.clone().into_tensor_arg(),
            dq.clone().into_tensor_arg(),
            rows as u32,
            t as u32,
            scale as f32,
            block,
            hd,
            storage,
        );
    }
    unsafe {
        dkv_kernel::launch_unchecked(
            &client,
            CubeCount::Static(t.div_ceil(block) as u32, heads as u32, 1),
            CubeDim::new_1d(block as u32),
            q.into_tensor_arg(),
            k.into_tensor_arg(),
            v.into_tensor_arg(),
            d_out.into_tensor_arg(),
            lse.into_tensor_arg(),
            delta.into_tensor_arg(),
            dk.clone().into_tensor_arg(),
            dv.clone().into_tensor_arg(),
            rows as u32,
            t as u32,
            scale as f32,
            block,
            hd,
            storage,
        );
    }
    (dq, dk, dv)
}
