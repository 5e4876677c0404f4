//! Rotary position embedding (Su et al. 2021) in the rotate-half layout of Qwen/Llama in
//! `transformers`: dimension `i` of the first half is paired with dimension `i + d/2`, and
//! `rope(x) = x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [-x2, x1]`.

use crate::error::ConfigError;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How RoPE's frequencies are rescaled to run a model beyond its training length, chosen at
/// evaluation time without retraining. `factor` is the ratio of the new to the original length.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum RopeScaling {
    /// Plain RoPE: positions beyond training are extrapolated.
    #[default]
    None,
    /// Position interpolation (Chen et al. 2023, arXiv 2306.15595): every frequency divided by
    /// `factor`, `θ_i' = θ_i / s`.
    Linear {
        /// `s`.
        factor: f64,
    },
    /// NTK-aware base scaling (bloc97 2023; Peng et al. 2023, arXiv 2309.00071, §3.1): the base
    /// raised to `b' = b · s^(d/(d−2))`, so high frequencies barely move and the lowest is
    /// interpolated by `s`.
    Ntk {
        /// `s`.
        factor: f64,
    },
    /// YaRN (Peng et al. 2023, arXiv 2309.00071, §3.2–3.4, Eq. 18–21, as in `transformers`'
    /// `_compute_yarn_parameters`): per frequency, a linear ramp `γ` between interpolation
    /// (`θ_i / s`, wavelengths longer than the original context) and extrapolation (`θ_i`, short
    /// wavelengths), with the ramp's ends at the dimensions that rotate `beta_fast` and
    /// `beta_slow` times over `original_max_position`; and an attention temperature
    /// `√(1/t) = 0.1·ln(s) + 1` applied to cos and sin.
    Yarn {
        /// `s`.
        factor: f64,
        /// The training length.
        original_max_position: usize,
        /// Rotations above which a dimension is only extrapolated (32 in the paper).
        #[serde(default = "yarn_beta_fast")]
        beta_fast: f64,
        /// Rotations below which a dimension is only interpolated (1 in the paper).
        #[serde(default = "yarn_beta_slow")]
        beta_slow: f64,
    },
}

fn yarn_beta_fast() -> f64 {
    32.0
}

fn yarn_beta_slow() -> f64 {
    1.0
}

impl RopeScaling {
    /// Plain RoPE (for `skip_serializing_if`: configs without scaling keep their JSON and hash).
    pub fn is_none(&self) -> bool {
        *self == RopeScaling::None
    }

    /// Checks the parameters; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            RopeScaling::None => Ok(()),
            RopeScaling::Linear { factor } | RopeScaling::Ntk { factor } | RopeScaling::Yarn { factor, .. }
                if !(factor >= 1.0 && factor.is_finite()) =>
            {
                Err(ConfigError::new("rope_scaling.factor", format!("must be a number ≥ 1, got {factor}")))
            }
            RopeScaling::Yarn { original_max_position: 0, .. } => {
                Err(ConfigError::new("rope_scaling.original_max_position", "must be at least 1"))
            }
            RopeScaling::Yarn { beta_fast, beta_slow, .. } if !(beta_fast > beta_slow && beta_slow > 0.0) => {
                Err(ConfigError::new("rope_scaling.beta_fast", "must exceed beta_slow, which must be positive"))
            }
            _ => Ok(()),
        }
    }
}

/// The inverse frequencies `θ_i` (`i < head_dim/2`) and the factor applied to cos and sin.
pub fn inv_freq(head_dim: usize, base: f64, scaling: RopeScaling) -> (Vec<f64>, f64) {
    let d = head_dim as f64;
    let plain = |base: f64| (0..head_dim / 2).map(|i| base.powf(-((2 * i) as f64) / d)).collect::<Vec<f64>>();
    match scaling {
        RopeScaling::None => (plain(base), 1.0),
        RopeScaling::Linear { factor } => (plain(base).into_iter().map(|f| f / factor).collect(), 1.0),
        RopeScaling::Ntk { factor } => (plain(base * factor.powf(d / (d - 2.0))), 1.0),
        RopeScaling::Yarn { factor, original_max_position, beta_fast, beta_slow } => {
            // The dimension that rotates `rotations` times over the original context.
            let dim_of = |rotations: f64| {
                d * (original_max_position as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln())
            };
            let low = dim_of(beta_fast).floor().max(0.0);
            let high = dim_of(beta_slow).ceil().min(d - 1.0);
            let high = if low == high { high + 0.001 } else { high };
            let freqs = plain(base)
                .into_iter()
                .enumerate()
                .map(|(i, extrapolated)| {
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                    let keep = 1.0 - ramp; // share of extrapolation
                    extrapolated / factor * (1.0 - keep) + extrapolated * keep
                })
                .collect();
            let temperature = if factor <= 1.0 { 1.0 } else { 0.1 * factor.ln() + 1.0 };
            (freqs, temperature)
        }
    }
}

/// `cos` and `sin` tables of shape `[seq_len, head_dim]` for positions `start..start + seq_len`:
/// `angle(p, i) = p·θ_i` with `θ` from [`inv_freq`], repeated over both halves (as
/// `transformers`' `emb = cat(freqs, freqs)`), times the scaling's attention factor.
pub fn rope_tables(
    head_dim: usize,
    base: f64,
    scaling: RopeScaling,
    start: usize,
    seq_len: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let (inv_freq, factor) = inv_freq(head_dim, base, scaling);
    let mut cos = Vec::with_capacity(seq_len * head_dim);
    let mut sin = Vec::with_capacity(seq_len * head_dim);
    for p in start..start + seq_len {
        for _half in 0..2 {
            for f in &inv_freq {
                let angle = p as f64 * f;
                cos.push((factor * angle.cos()) as f32);
                sin.push((factor * angle.sin()) as f32);
            }
        }
    }
    let shape = [seq_len, head_dim];
    (Tensor::from_data(TensorData::new(cos, shape), device), Tensor::from_data(TensorData::new(sin, shape), device))
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
