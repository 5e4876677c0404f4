//! The attention-sink cures: how an attention turns its scores into weights. A second axis of the
//! attention's design, beside the [`crate::GateSpec`] and combinable with every gate. Definitions
//! (with `s_j` the scaled, causally masked scores of one query row; `docs/cures.md` cites the
//! papers):
//!
//! | cure | weights | learned |
//! |---|---|---|
//! | `softmax` (default) | `exp(s_i) / Σ_j exp(s_j)` | – |
//! | `softmax_plus_one` | `exp(s_i) / (1 + Σ_j exp(s_j))`: a slot of logit 0 and value 0 | – |
//! | `sink_logit` | `exp(s_i) / (exp(b_h) + Σ_j exp(s_j))`: a slot of logit `b_h`, value 0 | `b_h` per query head, initialised to 0 |
//! | `kv_bias` | one more key/value pair `k′_h`, `v′_h` per KV head that every query sees (no RoPE) | `k′`, `v′`, normal(0, init_std) |
//! | `softpick` | `ReLU(exp(s_i) − 1) / (Σ_j |exp(s_j) − 1| + ε)`, ε = 1e-6 | – |
//! | `sigmoid` | `σ(s_i − ln(i + 1))`, query `i` seeing `i + 1` keys, or `σ(s_i − ln n)` with `bias = sequence`; no normalisation | – |
//! | `clipped_softmax` | `clip((ζ − γ)·softmax(s)_i + γ, 0, 1)`, ζ = 1, γ = −α/T (α = 4, T the run's length) | – |
//!
//! `softmax_plus_one`, `sink_logit` and `kv_bias` put the missing mass in an extra *slot*: the real keys' weights
//! sum to less than 1, and the slot's share is reported (where the sink went). `sigmoid` rows need
//! not sum to 1 at all; `softpick` rows sum to at most 1.

use crate::error::ConfigError;
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::{Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

/// softpick's ε (Zuhri et al. 2025).
pub const SOFTPICK_EPS: f64 = 1e-6;

/// How the attention's scores become weights.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(try_from = "CureRepr", into = "CureRepr")]
pub enum SinkCure {
    /// Plain softmax: every model before the cures.
    #[default]
    Softmax,
    /// softmax+1 ("off by one", E. Miller 2023).
    SoftmaxPlusOne,
    /// A learned sink logit per head in the softmax denominator (gpt-oss, 2025).
    SinkLogit,
    /// A learned key/value bias: one extra key and value per KV head (Sun et al. 2024, "Massive
    /// Activations in Large Language Models", explicit attention bias).
    KvBias,
    /// softpick, rectified softmax (Zuhri et al. 2025, arXiv 2504.20966).
    Softpick,
    /// Sigmoid attention (Ramapuram et al. 2024, arXiv 2409.04431) with a bias of `−ln n`.
    Sigmoid {
        /// Which `n`: the keys each query sees, or the sequence's length.
        bias: SigmoidBias,
    },
    /// Clipped softmax (Bondarenko et al. 2023, "Quantizable Transformers", arXiv 2306.12929).
    ClippedSoftmax {
        /// Stretch ζ ≥ 1.
        zeta: f64,
        /// Shift γ ≤ 0: the value the forward uses.
        gamma: f64,
        /// The paper's rule γ = −α/T: with `Some(α)` a run's config sets γ from its sequence
        /// length ([`SinkCure::at_length`]); `None` keeps an explicit γ.
        alpha: Option<f64>,
    },
}

/// The `n` of sigmoid attention's bias `b = −ln n`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SigmoidBias {
    /// `n = i + 1` for query `i`, the keys it sees under the causal mask (gatelab's default).
    #[default]
    PerQuery,
    /// One constant, `n` = the sequence's length (Ramapuram et al.'s published form).
    Sequence,
}

/// Bondarenko et al.'s α for language models (γ = −α/T; their T = 128 gives −0.03125).
pub const CLIPPED_ALPHA: f64 = 4.0;

/// Bondarenko et al.'s clipped-softmax setting for language models: ζ = 1, γ = −α/T with α = 4
/// (γ shown at their T = 128 until a run's length sets it).
pub const CLIPPED_DEFAULT: SinkCure =
    SinkCure::ClippedSoftmax { zeta: 1.0, gamma: -CLIPPED_ALPHA / 128.0, alpha: Some(CLIPPED_ALPHA) };

/// The JSON form: a name (`"softpick"`; `"clipped_softmax"` is ζ = 1, α = 4), or
/// `{"clipped_softmax": {"zeta": 1.0, "alpha": 4.0}}` (γ from the length; a resolved config
/// records it beside α) or `{"clipped_softmax": {"zeta": 1.0, "gamma": -0.03}}` (γ as given).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CureRepr {
    Name(String),
    Clipped { clipped_softmax: ClipParams },
    Sigmoid { sigmoid: SigmoidParams },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigmoidParams {
    bias: SigmoidBias,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClipParams {
    #[serde(default = "one")]
    zeta: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gamma: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alpha: Option<f64>,
}

fn one() -> f64 {
    1.0
}

impl From<SinkCure> for CureRepr {
    fn from(c: SinkCure) -> Self {
        match c {
            // Always the object: a config records the γ it ran with.
            SinkCure::ClippedSoftmax { zeta, gamma, alpha } => {
                CureRepr::Clipped { clipped_softmax: ClipParams { zeta, gamma: Some(gamma), alpha } }
            }
            SinkCure::Sigmoid { bias: SigmoidBias::Sequence } => {
                CureRepr::Sigmoid { sigmoid: SigmoidParams { bias: SigmoidBias::Sequence } }
            }
            _ => CureRepr::Name(c.name().to_string()),
        }
    }
}

impl TryFrom<CureRepr> for SinkCure {
    type Error = String;

    fn try_from(r: CureRepr) -> Result<Self, String> {
        match r {
            CureRepr::Clipped { clipped_softmax: p } => {
                // Neither given: the paper's α. α given: γ follows it (shown at T = 128 until a
                // run's length sets it).
                let alpha = if p.gamma.is_none() { Some(p.alpha.unwrap_or(CLIPPED_ALPHA)) } else { p.alpha };
                let gamma = p.gamma.unwrap_or_else(|| -alpha.unwrap_or(CLIPPED_ALPHA) / 128.0);
                Ok(SinkCure::ClippedSoftmax { zeta: p.zeta, gamma, alpha })
            }
            CureRepr::Sigmoid { sigmoid: p } => Ok(SinkCure::Sigmoid { bias: p.bias }),
            CureRepr::Name(n) => SinkCure::parse(&n).ok_or_else(|| {
                format!("unknown cure `{n}`; expected one of {}", SinkCure::ALL.map(SinkCure::name).join(", "))
            }),
        }
    }
}

impl SinkCure {
    /// Every cure with its default settings, the baseline first.
    pub const ALL: [SinkCure; 7] = [
        SinkCure::Softmax,
        SinkCure::SoftmaxPlusOne,
        SinkCure::SinkLogit,
        SinkCure::KvBias,
        SinkCure::Softpick,
        SinkCure::Sigmoid { bias: SigmoidBias::PerQuery },
        CLIPPED_DEFAULT,
    ];

    /// Its name in configs.
    pub fn name(self) -> &'static str {
        match self {
            SinkCure::Softmax => "softmax",
            SinkCure::SoftmaxPlusOne => "softmax_plus_one",
            SinkCure::SinkLogit => "sink_logit",
            SinkCure::KvBias => "kv_bias",
            SinkCure::Softpick => "softpick",
            SinkCure::Sigmoid { .. } => "sigmoid",
            SinkCure::ClippedSoftmax { .. } => "clipped_softmax",
        }
    }

    /// Its name with the settings that tell its forms apart: `sigmoid, b = −ln(i + 1)`,
    /// `sigmoid, b = −ln n`, `clipped_softmax, ζ = 1, γ = −0.125 (α = 4)`.
    pub fn describe(self) -> String {
        match self {
            SinkCure::Sigmoid { bias: SigmoidBias::PerQuery } => "sigmoid, b = −ln(i + 1)".into(),
            SinkCure::Sigmoid { bias: SigmoidBias::Sequence } => "sigmoid, b = −ln n".into(),
            SinkCure::ClippedSoftmax { zeta, gamma, alpha } => {
                let rule = alpha.map_or(String::new(), |a| format!(" (α = {a})"));
                format!("clipped_softmax, ζ = {zeta}, γ = {gamma}{rule}")
            }
            other => other.name().into(),
        }
    }

    /// The cure of a name, with default settings.
    pub fn parse(name: &str) -> Option<SinkCure> {
        SinkCure::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the weights of the real keys leave mass in an extra slot (whose logit and value
    /// the attention supplies).
    pub fn has_slot(self) -> bool {
        matches!(self, SinkCure::SoftmaxPlusOne | SinkCure::SinkLogit | SinkCure::KvBias)
    }

    /// Whether it is plain softmax.
    pub fn is_softmax(self) -> bool {
        self == SinkCure::Softmax
    }

    /// Parameters it adds to one attention layer.
    pub fn params_per_layer(self, n_heads: usize, n_kv_heads: usize, head_dim: usize) -> usize {
        match self {
            SinkCure::SinkLogit => n_heads,
            SinkCure::KvBias => 2 * n_kv_heads * head_dim,
            _ => 0,
        }
    }

    /// Refuses settings that make no sense, naming the field.
    pub fn validate(self) -> Result<(), ConfigError> {
        if let SinkCure::ClippedSoftmax { zeta, gamma, alpha } = self {
            if let Some(a) = alpha
                && !(a.is_finite() && a >= 0.0)
            {
                return Err(ConfigError::new(
                    "cure.clipped_softmax.alpha",
                    format!("α must be ≥ 0 (γ = −α/T), got {a}"),
                ));
            }
            if !(gamma.is_finite() && gamma <= 0.0) {
                return Err(ConfigError::new(
                    "cure.clipped_softmax.gamma",
                    format!("γ must be ≤ 0 (it lets weights reach exactly 0), got {gamma}"),
                ));
            }
            if !(zeta.is_finite() && zeta >= 1.0) {
                return Err(ConfigError::new(
                    "cure.clipped_softmax.zeta",
                    format!("ζ must be ≥ 1 (it lets weights reach exactly 1), got {zeta}"),
                ));
            }
        }
        Ok(())
    }

    /// The cure for a run of sequence length `seq_len`: clipped softmax with an α takes
    /// γ = −α/`seq_len` (Bondarenko et al.'s rule); every other cure, and an explicit γ, unchanged.
    pub fn at_length(self, seq_len: usize) -> SinkCure {
        match self {
            SinkCure::ClippedSoftmax { zeta, alpha: Some(a), .. } => {
                SinkCure::ClippedSoftmax { zeta, gamma: -a / seq_len as f64, alpha: Some(a) }
            }
            other => other,
        }
    }

    /// The bias of sigmoid attention for a query at position `i` of a sequence of `seq_len`:
    /// `−ln(i + 1)` per query, or `−ln seq_len` for every query.
    pub fn sigmoid_bias(bias: SigmoidBias, position: usize, seq_len: usize) -> f64 {
        match bias {
            SigmoidBias::PerQuery => -((position + 1) as f64).ln(),
            SigmoidBias::Sequence => -(seq_len as f64).ln(),
        }
    }

    /// Whether the config leaves it out of the JSON (the default: existing runs keep their hash).
    pub fn is_default(&self) -> bool {
        self.is_softmax()
    }
}

/// Attention weights of `cure` from scaled scores, with autodiff through Burn's own operations:
/// the training forward of `softpick`, `sigmoid` and `clipped_softmax`, and, for every cure, the
/// analysis's recomputation of attention a tile of queries at a time.
///
/// # Shapes
/// - scores: `[batch, heads, queries, keys]`, `Q·Kᵀ/√hd` for queries `first_query..` and keys
///   `0..keys`
/// - future: `[queries, keys]`, true where a key is not visible
/// - slot_logits: `[batch, heads, queries]`, the slot's logit per query (slot cures only)
/// - seq_len: the length of the sequence the queries belong to (sigmoid's `−ln n` bias)
/// - output: weights `[batch, heads, queries, keys]` and, for slot cures, the slot's weight
///   `[batch, heads, queries]`
pub fn weights(
    cure: SinkCure,
    scores: Tensor<4>,
    future: Tensor<2, Bool>,
    slot_logits: Option<Tensor<3>>,
    first_query: usize,
    seq_len: usize,
) -> (Tensor<4>, Option<Tensor<3>>) {
    let [b, h, n, keys] = scores.dims();
    let future = future.unsqueeze::<4>();
    let masked = scores.mask_fill(future.clone(), f32::NEG_INFINITY);
    match cure {
        SinkCure::Softmax => (softmax(masked, 3), None),
        SinkCure::SoftmaxPlusOne | SinkCure::SinkLogit | SinkCure::KvBias => {
            let logits = slot_logits.expect("a slot cure has slot logits").reshape([b, h, n, 1]);
            let all = softmax(Tensor::cat(vec![logits, masked], 3), 3);
            let slot = all.clone().slice([0..b, 0..h, 0..n, 0..1]).reshape([b, h, n]);
            (all.slice([0..b, 0..h, 0..n, 1..keys + 1]), Some(slot))
        }
        SinkCure::Softpick => {
            // Zuhri et al.'s stable form: numerator and denominator times exp(−m), m = max(0, max_j s_j)
            // (exact for any m; detached, since the weights do not depend on it).
            // Near s = 0 the difference exp(s − m) − exp(−m) cancels in f32; there it is computed
            // as exp(−m)·expm1(s) from expm1's series.
            let m = masked.clone().max_dim(3).clamp_min(0.0).detach();
            let near_zero = masked.clone().abs().lower_elem(EXPM1_SERIES_BELOW);
            let series =
                expm1_series(masked.clone().clamp(-EXPM1_SERIES_BELOW, EXPM1_SERIES_BELOW)) * m.clone().neg().exp();
            let shifted = ((masked - m.clone()).exp() - m.clone().neg().exp()).mask_where(near_zero, series);
            let shifted = shifted.mask_fill(future, 0.0);
            let denominator = shifted.clone().abs().sum_dim(3) + m.neg().exp().mul_scalar(SOFTPICK_EPS);
            (relu(shifted) / denominator, None)
        }
        SinkCure::Sigmoid { bias: SigmoidBias::PerQuery } => {
            let positions = Tensor::<1, Int>::arange(first_query as i64..(first_query + n) as i64, &masked.device());
            let bias = positions.float().add_scalar(1.0).log().neg().reshape([1, 1, n, 1]);
            (sigmoid(masked + bias).mask_fill(future, 0.0), None)
        }
        SinkCure::Sigmoid { bias: SigmoidBias::Sequence } => {
            let bias = SinkCure::sigmoid_bias(SigmoidBias::Sequence, 0, seq_len);
            (sigmoid(masked.add_scalar(bias)).mask_fill(future, 0.0), None)
        }
        SinkCure::ClippedSoftmax { zeta, gamma, .. } => {
            ((softmax(masked, 3).mul_scalar(zeta - gamma).add_scalar(gamma)).clamp(0.0, 1.0), None)
        }
    }
}

/// Below this |x|, [`expm1_series`] replaces `exp(x) − 1`.
const EXPM1_SERIES_BELOW: f64 = 0.5;

/// `exp(x) − 1` from its Taylor series to `x⁸/8!` (relative error below 1e-7 for |x| ≤ 0.5),
/// without the cancellation of `exp(x) − 1` in f32 near 0.
fn expm1_series(x: Tensor<4>) -> Tensor<4> {
    let mut acc = x.ones_like();
    for k in (2..=8).rev() {
        acc = (acc * x.clone()).div_scalar(k as f64).add_scalar(1.0);
    }
    acc * x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_json_round_trip() {
        for c in SinkCure::ALL {
            let json = serde_json::to_string(&c).unwrap();
            if c != CLIPPED_DEFAULT {
                assert_eq!(json, format!("\"{}\"", c.name()));
            }
            assert_eq!(serde_json::from_str::<SinkCure>(&json).unwrap(), c);
            assert_eq!(serde_json::from_str::<SinkCure>(&format!("\"{}\"", c.name())).unwrap(), c);
        }
        let custom = SinkCure::ClippedSoftmax { zeta: 1.1, gamma: -0.1, alpha: None };
        let json = serde_json::to_string(&custom).unwrap();
        assert_eq!(json, r#"{"clipped_softmax":{"zeta":1.1,"gamma":-0.1}}"#);
        assert_eq!(serde_json::from_str::<SinkCure>(&json).unwrap(), custom);
        // γ follows the length where α is given (the name gives α = 4), and a config records it.
        let at_32 = CLIPPED_DEFAULT.at_length(32);
        assert_eq!(at_32, SinkCure::ClippedSoftmax { zeta: 1.0, gamma: -0.125, alpha: Some(4.0) });
        assert_eq!(
            serde_json::to_string(&at_32).unwrap(),
            r#"{"clipped_softmax":{"zeta":1.0,"gamma":-0.125,"alpha":4.0}}"#
        );
        assert_eq!(
            serde_json::from_str::<SinkCure>(&serde_json::to_string(&at_32).unwrap()).unwrap().at_length(32),
            at_32
        );
        let by_alpha: SinkCure = serde_json::from_str(r#"{"clipped_softmax":{"alpha":2.0}}"#).unwrap();
        assert_eq!(
            by_alpha.at_length(64),
            SinkCure::ClippedSoftmax { zeta: 1.0, gamma: -2.0 / 64.0, alpha: Some(2.0) }
        );
        assert_eq!(custom.at_length(32), custom, "an explicit γ is kept");
        let published = SinkCure::Sigmoid { bias: SigmoidBias::Sequence };
        let json = serde_json::to_string(&published).unwrap();
        assert_eq!(json, r#"{"sigmoid":{"bias":"sequence"}}"#);
        assert_eq!(serde_json::from_str::<SinkCure>(&json).unwrap(), published);
        assert_eq!(
            serde_json::from_str::<SinkCure>("\"sigmoid\"").unwrap(),
            SinkCure::Sigmoid { bias: SigmoidBias::PerQuery }
        );
    }

    #[test]
    fn nonsense_is_refused_naming_the_field() {
        let e = SinkCure::ClippedSoftmax { zeta: 1.0, gamma: 0.1, alpha: None }.validate().unwrap_err();
        assert_eq!(e.field, "cure.clipped_softmax.gamma");
        let e = SinkCure::ClippedSoftmax { zeta: 1.0, gamma: 0.0, alpha: Some(-1.0) }.validate().unwrap_err();
        assert_eq!(e.field, "cure.clipped_softmax.alpha");
        let e = SinkCure::ClippedSoftmax { zeta: 0.5, gamma: -0.1, alpha: None }.validate().unwrap_err();
        assert_eq!(e.field, "cure.clipped_softmax.zeta");
        let unknown = serde_json::from_str::<SinkCure>("\"softmax_plus_two\"").unwrap_err().to_string();
        assert!(unknown.contains("unknown cure `softmax_plus_two`; expected one of softmax,"), "{unknown}");
    }
}
