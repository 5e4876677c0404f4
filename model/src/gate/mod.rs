//! The gating design space of Qiu et al. 2025 ("Gated Attention for Large Language Models",
//! arXiv 2505.06708) as data: one [`GateSpec`] value names one point of it, and one attention
//! forward ([`crate::attention::Attention`]) reads it. A variant is a field, not a copy of code.
//!
//! The general form (paper Eq. 5) is `Y' = g(Y, act(X·W_θ))` with `X` the pre-normed layer input
//! (the input of `W_q`, `W_k`, `W_v`; v1 footnote 1), `g` a product or a sum, and `Y` the tensor
//! at the gate's position.
//!
//! # Head-shared gates: the definition used here
//! The paper describes head sharing twice, differently: §2.2 says "W_θ and gating scores are
//! shared across heads", but Table 1 gives the head-shared SDPA gate (row 12) the same added
//! parameters as the head-specific one (row 5: n×q×d_k, 201M), and the camera-ready §3.2.1 says
//! "we average over the query head dimension q to obtain an n×d_k score". We follow the parameter
//! count and §3.2.1: the head-shared gate computes the full head-specific gate and averages the
//! *scores* (after the activation — the paper calls the activated values "gating scores") over
//! the heads of its position, so every head sees the same `n×d_k` (or `n×1`) score.
//!
//! # Where G2–G4 act
//! Value, key and query gates act right after their projections (paper Eq. 1), before QK-norm and
//! RoPE (the paper does not say; see `docs/paper.md` §2). A consequence: a headwise
//! multiplicative gate on Q or K followed by QK-norm is divided out again by the per-head RMSNorm,
//! so that combination is refused.

use serde::{Deserialize, Serialize};

mod input;
#[cfg(test)]
mod tests;

pub use input::InputDims;

/// Where the gate acts (paper Table 1, column "Pos").
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum GatePosition {
    /// No gate: the baseline.
    #[default]
    None,
    /// G1: the SDPA output of each head, before concatenation and `W_o`.
    #[serde(alias = "sdpa")]
    G1,
    /// G2: the value projection output.
    #[serde(alias = "value")]
    G2,
    /// G3: the key projection output.
    #[serde(alias = "key")]
    G3,
    /// G4: the query projection output.
    #[serde(alias = "query")]
    G4,
    /// G5: the attention block output, after `W_o`.
    #[serde(alias = "dense")]
    G5,
}

/// One score per element or one per head (paper Table 1, column "Gran").
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// A score for every element of every head (`d_k` scores per head).
    #[default]
    Elementwise,
    /// One score per head, broadcast over its `d_k` elements.
    Headwise,
}

/// Each head its own scores, or one set of scores for all heads (see the module docs).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum HeadSharing {
    /// Each head has its own gate (the paper's default).
    #[default]
    HeadSpecific,
    /// Scores averaged over the heads of the position, then shared by all of them.
    HeadShared,
}

/// How the score meets the gated tensor (paper Table 1, column "Op").
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Combination {
    /// `Y' = Y ⊙ act(X·W_θ)`.
    #[default]
    Multiplicative,
    /// `Y' = Y + act(X·W_θ)` (Table 1 row 14, Table 3 row 7).
    Additive,
}

/// The gate's activation (paper Table 1, column "Act"; Table 4 row 7).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum GateActivation {
    /// `σ(x)`, scores in (0, 1).
    #[default]
    Sigmoid,
    /// `x·σ(x)`.
    Silu,
    /// Non-sparse sigmoid `0.5 + 0.5·σ(x)`, scores in (0.5, 1) (Table 4 row 7).
    NsSigmoid,
    /// No activation (Table 3 row 7, with the additive combination).
    Identity,
    /// `2σ(x)`, scores in (0, 2): exactly 1 at a zero logit, so a zero-initialised gate starts as
    /// no gate at all (the form of openai/parameter-golf; not in the paper).
    ScaledSigmoid,
    /// `tanh(x)`, scores in (−1, 1): signed, 0 at a zero logit (asked of the authors,
    /// qiuzh20/gated_attention issue 3; not in the paper).
    Tanh,
}

impl GateActivation {
    /// The range its scores lie in: `(0, 1)` for σ, `(0.5, 1)` non-sparse, `(0, 2)` for `2σ`,
    /// unbounded for SiLU (below by −0.2785) and the identity.
    pub fn range(self) -> (f64, f64) {
        match self {
            GateActivation::Sigmoid => (0.0, 1.0),
            GateActivation::NsSigmoid => (0.5, 1.0),
            GateActivation::ScaledSigmoid => (0.0, 2.0),
            GateActivation::Silu => (-0.2785, f64::INFINITY),
            GateActivation::Identity => (f64::NEG_INFINITY, f64::INFINITY),
            GateActivation::Tanh => (-1.0, 1.0),
        }
    }
}

/// How the gate's weights start.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum GateInit {
    /// As every projection of the model: normal with `init_std` (an input-independent `θ` starts
    /// at zero either way).
    #[default]
    Default,
    /// Zero: every logit starts at 0 (see [`GateSpec::identity_at_zero`]).
    Zero,
}

impl GateInit {
    /// Whether it is the default (left out of the JSON, so earlier configs keep their hashes).
    pub fn is_default(&self) -> bool {
        *self == GateInit::Default
    }
}

/// What the gate's logits are computed from.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum GateInput {
    /// `X·W_θ`, `X` the pre-normed layer input (no bias, as in the paper).
    #[default]
    Dependent,
    /// A learned vector `θ` of the same width, zero-initialised (Table 4 row 6).
    Independent,
}

/// The non-gate ablations on the SDPA output (paper Table 3 rows 5 and 6): they add the
/// non-linearity without a learned score. Applied before a G1 gate when both are set.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum SdpaNonlinearity {
    /// Nothing.
    #[default]
    None,
    /// RMSNorm over `d_k` on each head's SDPA output, one learned weight of width `d_k` shared by
    /// the heads (Table 3 row 5, "SDPA GroupNorm": "almost no additional params").
    RmsNorm,
    /// `Y' = SiLU(Y)`, no parameters (Table 3 row 6).
    Silu,
}

/// One point of the gating design space. The default is the ungated baseline.
///
/// JSON: `{"position": "g1", "granularity": "headwise"}`; omitted fields take their defaults.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GateSpec {
    /// Where the gate acts; `none` is the baseline.
    pub position: GatePosition,
    /// Elementwise or headwise scores.
    pub granularity: Granularity,
    /// Head-specific or head-shared scores.
    pub sharing: HeadSharing,
    /// Multiplicative or additive.
    pub combination: Combination,
    /// The activation applied to the logits.
    pub activation: GateActivation,
    /// Input-dependent logits or a learned input-independent vector.
    pub input: GateInput,
    /// A parameter-free (or nearly) non-linearity on the SDPA output.
    pub sdpa_nonlinearity: SdpaNonlinearity,
    /// How the gate's weights start.
    #[serde(skip_serializing_if = "GateInit::is_default")]
    pub init: GateInit,
    /// The dimensions of the layer input an input-dependent gate reads: all (the paper's), or
    /// the first `k` ([`InputDims`]).
    #[serde(skip_serializing_if = "InputDims::is_full")]
    pub input_dims: InputDims,
}

pub use crate::error::ConfigError;

/// The shape a gate acts on at its position: `n` heads of `e` elements each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSite {
    /// Heads at the position (query heads for G1/G4, KV heads for G2/G3, 1 for G5).
    pub heads: usize,
    /// Elements per head (`head_dim`, or `d_model` for G5).
    pub head_width: usize,
}

impl GateSpec {
    /// The ungated baseline.
    pub const BASELINE: GateSpec = GateSpec {
        position: GatePosition::None,
        granularity: Granularity::Elementwise,
        sharing: HeadSharing::HeadSpecific,
        combination: Combination::Multiplicative,
        activation: GateActivation::Sigmoid,
        input: GateInput::Dependent,
        sdpa_nonlinearity: SdpaNonlinearity::None,
        init: GateInit::Default,
        input_dims: InputDims::Full,
    };

    /// The paper's recommended gate: G1, elementwise, head-specific, multiplicative sigmoid.
    pub const G1_ELEMENTWISE: GateSpec = GateSpec { position: GatePosition::G1, ..GateSpec::BASELINE };

    /// A multiplicative sigmoid gate at `position` with `granularity`, the other fields default.
    pub fn at(position: GatePosition, granularity: Granularity) -> Self {
        GateSpec { position, granularity, ..GateSpec::BASELINE }
    }

    /// Whether a learned gate is present.
    pub fn is_gated(&self) -> bool {
        self.position != GatePosition::None
    }

    /// Checks that the fields make sense together and with the attention shape. `qk_norm` is
    /// whether Q and K are RMS-normalised per head after projection.
    pub fn validate(&self, qk_norm: bool) -> Result<(), ConfigError> {
        let d = GateSpec::BASELINE;
        if !self.is_gated() {
            let unused = [
                ("granularity", self.granularity != d.granularity),
                ("sharing", self.sharing != d.sharing),
                ("combination", self.combination != d.combination),
                ("activation", self.activation != d.activation),
                ("input", self.input != d.input),
                ("init", self.init != d.init),
                ("input_dims", self.input_dims != d.input_dims),
            ];
            if let Some((field, _)) = unused.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    format!("gate.{field}"),
                    "is set but gate.position is none (no gate): set gate.position or drop the field",
                ));
            }
            return Ok(());
        }
        if self.input == GateInput::Independent && !self.input_dims.is_full() {
            return Err(ConfigError::new(
                "gate.input_dims",
                "an input-independent gate (gate.input=independent) reads no input; drop input_dims or use input=dependent",
            ));
        }
        if self.position == GatePosition::G5 {
            if self.granularity == Granularity::Headwise {
                return Err(ConfigError::new(
                    "gate.granularity",
                    "headwise has no meaning at position g5: after W_o the output has no heads",
                ));
            }
            if self.sharing == HeadSharing::HeadShared {
                return Err(ConfigError::new(
                    "gate.sharing",
                    "head_shared has no meaning at position g5: after W_o the output has no heads",
                ));
            }
        }
        let scales_whole_head =
            self.combination == Combination::Multiplicative && self.granularity == Granularity::Headwise;
        if qk_norm && scales_whole_head && matches!(self.position, GatePosition::G3 | GatePosition::G4) {
            return Err(ConfigError::new(
                "gate.granularity",
                "a headwise multiplicative gate on Q or K (g3/g4) is divided out by qk_norm's per-head RMSNorm; \
                 use elementwise, additive, or qk_norm=false",
            ));
        }
        Ok(())
    }

    /// Whether the gate, with every logit zero (`init: zero`), leaves its site unchanged, so that
    /// a model it is added to computes what it computed without it; the reason when it does not.
    /// True of a product with `2σ` (`2σ(0) = 1`) and of a sum with SiLU or no activation
    /// (`SiLU(0) = 0`); not of σ (0.5), the non-sparse sigmoid (0.75), a product with SiLU or no
    /// activation (0), a sum with a sigmoid, or an SDPA non-linearity (it changes the output).
    pub fn identity_at_zero(&self) -> Result<(), String> {
        use GateActivation as A;
        if !self.is_gated() {
            return Err("there is no gate (gate.position is none)".into());
        }
        if self.sdpa_nonlinearity != SdpaNonlinearity::None {
            return Err("the SDPA non-linearity changes the output whatever the gate's weights".into());
        }
        let at_zero = |a: A| match a {
            A::Sigmoid => 0.5,
            A::NsSigmoid => 0.75,
            A::ScaledSigmoid => 1.0,
            A::Silu | A::Identity | A::Tanh => 0.0,
        };
        let score = at_zero(self.activation);
        let (neutral, op) = match self.combination {
            Combination::Multiplicative => (1.0, "multiplies the output by"),
            Combination::Additive => (0.0, "adds"),
        };
        if score == neutral {
            return Ok(());
        }
        let fix = match self.combination {
            Combination::Multiplicative => "gate.activation=scaled_sigmoid (2σ, 1 at zero)",
            Combination::Additive => "gate.activation=silu or identity (0 at zero)",
        };
        Err(format!("a zero-initialised {} gate {op} {score} at the start, not {neutral}: use {fix}", self.label()))
    }

    /// The heads and head width the gate acts on, for an attention of this shape.
    pub fn site(&self, d_model: usize, n_heads: usize, n_kv_heads: usize, head_dim: usize) -> GateSite {
        match self.position {
            GatePosition::None => GateSite { heads: 0, head_width: 0 },
            GatePosition::G1 | GatePosition::G4 => GateSite { heads: n_heads, head_width: head_dim },
            GatePosition::G2 | GatePosition::G3 => GateSite { heads: n_kv_heads, head_width: head_dim },
            GatePosition::G5 => GateSite { heads: 1, head_width: d_model },
        }
    }

    /// Scores per head: `head_width` elementwise, 1 headwise.
    pub fn scores_per_head(&self, site: GateSite) -> usize {
        match self.granularity {
            Granularity::Elementwise => site.head_width,
            Granularity::Headwise => 1,
        }
    }

    /// Width of the gate's logits: `heads × scores_per_head` (head-shared gates compute the full
    /// head-specific width, then average; see the module docs).
    pub fn logit_width(&self, site: GateSite) -> usize {
        site.heads * self.scores_per_head(site)
    }

    /// Learned parameters the gate adds to one layer (the paper's "+P" divided by the layers):
    /// `input width × logit width` input-dependent (the input width `d_model` unless
    /// `input_dims` narrows it), `width` input-independent, plus `head_dim` for the SDPA RMSNorm
    /// ablation.
    pub fn params_per_layer(&self, d_model: usize, n_heads: usize, n_kv_heads: usize, head_dim: usize) -> usize {
        let gate = if self.is_gated() {
            let width = self.logit_width(self.site(d_model, n_heads, n_kv_heads, head_dim));
            match self.input {
                GateInput::Dependent => self.input_dims.width_or_full(d_model) * width,
                GateInput::Independent => width,
            }
        } else {
            0
        };
        let norm = match self.sdpa_nonlinearity {
            SdpaNonlinearity::RmsNorm => head_dim,
            _ => 0,
        };
        gate + norm
    }

    /// A short human label, e.g. `G1 elementwise σ` or `baseline`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.is_gated() {
            parts.push(format!("{:?}", self.position));
            parts.push(match self.granularity {
                Granularity::Elementwise => "elementwise".into(),
                Granularity::Headwise => "headwise".into(),
            });
            if self.sharing == HeadSharing::HeadShared {
                parts.push("head-shared".into());
            }
            if self.combination == Combination::Additive {
                parts.push("additive".into());
            }
            parts.push(
                match self.activation {
                    GateActivation::Sigmoid => "sigmoid",
                    GateActivation::Silu => "SiLU",
                    GateActivation::NsSigmoid => "NS-sigmoid",
                    GateActivation::Identity => "identity",
                    GateActivation::ScaledSigmoid => "2·sigmoid",
                    GateActivation::Tanh => "tanh",
                }
                .into(),
            );
            if self.input == GateInput::Independent {
                parts.push("input-independent".into());
            }
            if !self.input_dims.is_full() {
                parts.push(self.input_dims.label());
            }
            if self.init == GateInit::Zero {
                parts.push("zero-init".into());
            }
        }
        match self.sdpa_nonlinearity {
            SdpaNonlinearity::None => {}
            SdpaNonlinearity::RmsNorm => parts.push("SDPA RMSNorm".into()),
            SdpaNonlinearity::Silu => parts.push("SDPA SiLU".into()),
        }
        if parts.is_empty() { "baseline".into() } else { parts.join(" ") }
    }

    /// Every valid point of the design space for an attention with (or without) QK-norm: the
    /// full product of the gate axes at every position, the baseline, and the two non-gate
    /// ablations alone. Used by the parity tests to leave no combination untested.
    pub fn enumerate(qk_norm: bool) -> Vec<GateSpec> {
        use GateActivation as A;
        let mut out = vec![
            GateSpec::BASELINE,
            GateSpec { sdpa_nonlinearity: SdpaNonlinearity::RmsNorm, ..GateSpec::BASELINE },
            GateSpec { sdpa_nonlinearity: SdpaNonlinearity::Silu, ..GateSpec::BASELINE },
        ];
        // Forms added later come after the earlier ones, so that every earlier point keeps its
        // place (the parity test cycles architectures by it).
        let generations: [&[A]; 2] = [&[A::Sigmoid, A::Silu, A::NsSigmoid, A::Identity, A::ScaledSigmoid], &[A::Tanh]];
        for activations in generations {
            for position in [GatePosition::G1, GatePosition::G2, GatePosition::G3, GatePosition::G4, GatePosition::G5] {
                for granularity in [Granularity::Elementwise, Granularity::Headwise] {
                    for sharing in [HeadSharing::HeadSpecific, HeadSharing::HeadShared] {
                        for combination in [Combination::Multiplicative, Combination::Additive] {
                            for &activation in activations {
                                for input in [GateInput::Dependent, GateInput::Independent] {
                                    let spec = GateSpec {
                                        position,
                                        granularity,
                                        sharing,
                                        combination,
                                        activation,
                                        input,
                                        sdpa_nonlinearity: SdpaNonlinearity::None,
                                        init: GateInit::Default,
                                        input_dims: InputDims::Full,
                                    };
                                    if spec.validate(qk_norm).is_ok() {
                                        out.push(spec);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
