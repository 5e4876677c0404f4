//! Rotary position embedding (Su et al. 2021) in the rotate-half layout of Qwen/Llama in
//! `transformers`: dimension `i` of the first half is paired with dimension `i + d/2`, and
//! `rope(x) = x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [-x2, x1]`.

use burn::tensor::{Device, Tensor, TensorData};

/// `cos` and `sin` tables of shape `[seq_len, head_dim]` for positions `start..start + seq_len`:
/// `θ_i = base^(-2i/d)`, `angle(p, i) = p·θ_i`, repeated over both halves (as `transformers`'
/// `emb = cat(freqs, freqs)`).
pub fn rope_tables(head_dim: usize, base: f64, start: usize, seq_len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f64> = (0..half).map(|i| base.powf(-((2 * i) as f64) / head_dim as f64)).collect();
    let mut cos = Vec::with_capacity(seq_len * head_dim);
    let mut sin = Vec::with_capacity(seq_len * head_dim);
    for p in start..start + seq_len {
        for _half in 0..2 {
            for f in &inv_freq {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    let shape = [seq_len, head_dim];
    (
        Tensor::from_data(TensorData::new(cos, shape), device),
        Tensor::from_data(TensorData::new(sin, shape), device),
    )
}

/// Applies RoPE to `x`.
///
/// # Shapes
/// - x: `[batch, heads, seq_len, head_dim]`
/// - cos, sin: `[seq_len, head_dim]`
/// - output: `[batch, heads, seq_len, head_dim]`
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, half..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let cos = cos.clone().unsqueeze::<4>();
    let sin = sin.clone().unsqueeze::<4>();
    x * cos + rotated * sin
}
