//! [`ModelConfig`]: the shape of a Qwen3-style decoder and its gate, serialisable as JSON, with
//! validation that names the offending field and exact parameter accounting without allocating.

use crate::cure::SinkCure;
use crate::gate::{Combination, ConfigError, GatePosition, GateSpec, Granularity, HeadSharing, SdpaNonlinearity};
use crate::moe::{MoeSpec, SwitchHeadSpec};
use crate::rope::RopeScaling;
use serde::{Deserialize, Serialize};

/// A Qwen3-style decoder-only language model: token embedding, pre-norm RMSNorm blocks of causal
/// self-attention (RoPE, grouped-query, optional QK-norm, a [`GateSpec`]) and a SwiGLU FFN, a final
/// norm, and a tied or untied LM head.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Number of decoder blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention; must divide `n_heads`).
    pub n_kv_heads: usize,
    /// Width of each head (need not equal `d_model / n_heads`, as in Qwen3).
    pub head_dim: usize,
    /// SwiGLU hidden width before parameter matching; 0 makes an attention-only model.
    pub d_ff: usize,
    /// RMS-normalise Q and K per head before RoPE (Qwen3's QK-norm).
    pub qk_norm: bool,
    /// Share the embedding matrix with the LM head.
    pub tie_embeddings: bool,
    /// Sandwich norm (paper Table 2 row 7): an extra RMSNorm on each sublayer's output before it
    /// joins the residual stream, `h + norm_out(f(norm_in(h)))`.
    pub sandwich_norm: bool,
    /// Epsilon of every RMSNorm.
    pub norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RoPE rescaling for lengths beyond training (absent from the JSON when none).
    #[serde(skip_serializing_if = "RopeScaling::is_none")]
    pub rope_scaling: RopeScaling,
    /// Standard deviation of the normal initialisation of embeddings and projections (Qwen's
    /// `initializer_range`).
    pub init_std: f64,
    /// The attention's point in the gating design space.
    pub gate: GateSpec,
    /// Gates at further positions beside `gate` (G1 + G2, G1 + G5, …), one spec per position;
    /// absent from the JSON when there are none, so a one-gate config keeps its hash. The probes
    /// record `gate`'s scores, and an SDPA non-linearity belongs to `gate` alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_gates: Vec<GateSpec>,
    /// How the attention turns scores into weights: softmax, or a cure for the attention sink
    /// (absent from the JSON for softmax, so earlier runs keep their hashes).
    #[serde(skip_serializing_if = "SinkCure::is_default")]
    pub cure: SinkCure,
    /// Narrow the FFN so this (gated) model has the parameter count of the same model without a
    /// gate, as the paper does for its dense models (Table 2). See [`ModelConfig::ffn_width`].
    pub match_baseline_params: bool,
    /// The FFN as a mixture of experts (absent from the JSON when dense, so earlier runs keep
    /// their hashes); with experts, `d_ff` is not used.
    #[serde(skip_serializing_if = "MoeSpec::is_dense")]
    pub moe: MoeSpec,
    /// Switch-Head attention: key/value/output projections as experts per head (absent from the
    /// JSON when off).
    #[serde(skip_serializing_if = "SwitchHeadSpec::is_off")]
    pub switch_head: SwitchHeadSpec,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            vocab_size: 259,
            d_model: 128,
            n_layers: 4,
            n_heads: 4,
            n_kv_heads: 4,
            head_dim: 32,
            d_ff: 384,
            qk_norm: true,
            tie_embeddings: true,
            sandwich_norm: false,
            norm_eps: 1e-6,
            rope_theta: 10_000.0,
            rope_scaling: RopeScaling::None,
            init_std: 0.02,
            gate: GateSpec::BASELINE,
            extra_gates: Vec::new(),
            cure: SinkCure::Softmax,
            match_baseline_params: false,
            moe: MoeSpec::default(),
            switch_head: SwitchHeadSpec::default(),
        }
    }
}

/// Parameter counts by part, computed from a config alone.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// Token embedding (and the tied LM head).
    pub embedding: usize,
    /// Untied LM head (0 when tied).
    pub lm_head: usize,
    /// Attention projections, QK-norm and a sink cure's parameters, all layers, gate excluded.
    pub attention: usize,
    /// The gate (and SDPA-norm ablation) parameters, all layers: the paper's "+P".
    pub gate: usize,
    /// FFN parameters, all layers (a mixture of experts: router, routed and shared experts).
    pub ffn: usize,
    /// Switch-Head's extra projection experts and routers, all layers (0 without Switch-Head).
    pub switch_head: usize,
    /// RMSNorm weights outside attention and FFN (block norms and the final norm).
    pub norms: usize,
    /// Everything.
    pub total: usize,
}

impl ModelConfig {
    /// Query heads per KV head.
    pub fn kv_groups(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Checks every field and their combinations. Errors name the field, e.g.
    /// `n_kv_heads: 3 does not divide n_heads = 4`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(ConfigError::new(
                "n_kv_heads",
                format!("{} does not divide n_heads = {}", self.n_kv_heads, self.n_heads),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ConfigError::new(
                "head_dim",
                format!("{} is odd; RoPE rotates pairs of dimensions", self.head_dim),
            ));
        }
        self.cure.validate()?;
        self.moe.validate()?;
        self.switch_head.validate()?;
        if self.qk_norm && self.switch_head.keys && self.switch_head.top_k == 1 {
            return Err(ConfigError::new(
                "switch_head.top_k",
                "with one key expert per head QK-norm divides the router's score out of the key, so the router \
                 gets no gradient (as for a headwise G3 gate); use top_k ≥ 2, keys false or qk_norm false",
            ));
        }
        if !self.moe.is_dense() && self.match_baseline_params {
            return Err(ConfigError::new(
                "match_baseline_params",
                "narrows a dense FFN; a mixture-of-experts model matches by its expert count instead",
            ));
        }
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            return Err(ConfigError::new("norm_eps", "must be a positive number"));
        }
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite()) {
            return Err(ConfigError::new("rope_theta", "must be a number above 1"));
        }
        if !(self.init_std > 0.0 && self.init_std.is_finite()) {
            return Err(ConfigError::new("init_std", "must be a positive number"));
        }
        self.rope_scaling.validate()?;
        self.validate_gates()?;
        if self.match_baseline_params {
            let extra = self.gate_params_per_layer();
            if extra > 0 && self.d_ff == 0 {
                return Err(ConfigError::new(
                    "match_baseline_params",
                    "an attention-only model (d_ff = 0) has no FFN to narrow",
                ));
            }
            if extra > 0 && self.ffn_width() == 0 {
                return Err(ConfigError::new(
                    "match_baseline_params",
                    format!(
                        "the gate adds {extra} parameters per layer, more than the FFN (d_ff = {}) holds",
                        self.d_ff
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every gate with its field's name: `gate` (when it has a position), then each of
    /// `extra_gates` as `extra_gates[i]`.
    pub fn gates(&self) -> impl Iterator<Item = (String, &GateSpec)> {
        let first = self.gate.is_gated().then(|| ("gate".to_string(), &self.gate));
        first.into_iter().chain(self.extra_gates.iter().enumerate().map(|(i, g)| (format!("extra_gates[{i}]"), g)))
    }

    /// The gates' labels joined by ` + ` (`G1 elementwise sigmoid + G2 elementwise sigmoid`), or
    /// `baseline` (with an SDPA non-linearity alone, its label).
    pub fn gate_label(&self) -> String {
        let mut labels = vec![self.gate.label()];
        labels.extend(self.extra_gates.iter().map(GateSpec::label));
        labels.join(" + ")
    }

    /// The gate fields alone and together: each spec's own rules (its errors named by its
    /// field), its input width against `d_model`, one spec per position, and the extra gates'
    /// own limits.
    fn validate_gates(&self) -> Result<(), ConfigError> {
        let rename =
            |field: &str, e: ConfigError| ConfigError { field: e.field.replacen("gate", field, 1), message: e.message };
        self.gate.validate(self.qk_norm)?;
        if !self.extra_gates.is_empty() && !self.gate.is_gated() {
            return Err(ConfigError::new(
                "extra_gates",
                "adds gates beside gate, which has none (gate.position is none): set gate.position first",
            ));
        }
        let mut seen: Vec<(GatePosition, String)> = Vec::new();
        for (field, g) in self.gates() {
            if field != "gate" {
                if !g.is_gated() {
                    return Err(ConfigError::new(
                        format!("{field}.position"),
                        "is none: an extra gate needs a position",
                    ));
                }
                if g.sdpa_nonlinearity != SdpaNonlinearity::None {
                    return Err(ConfigError::new(
                        format!("{field}.sdpa_nonlinearity"),
                        "belongs to gate (one SDPA non-linearity per model), not to an extra gate",
                    ));
                }
                g.validate(self.qk_norm).map_err(|e| rename(&field, e))?;
            }
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == g.position) {
                return Err(ConfigError::new(
                    format!("{field}.position"),
                    format!("{:?} already has a gate ({other}): one gate per position", g.position).to_lowercase(),
                ));
            }
            seen.push((g.position, field.clone()));
            g.input_dims.resolve(self.d_model, &format!("{field}.input_dims"))?;
            let one_scalar_per_token = g.position == GatePosition::G1
                && g.granularity == Granularity::Headwise
                && g.sharing == HeadSharing::HeadShared
                && g.combination == Combination::Multiplicative;
            if self.sandwich_norm && one_scalar_per_token {
                return Err(ConfigError::new(
                    format!("{field}.sharing"),
                    "a head-shared headwise multiplicative g1 gate scales a token's whole attention output by one number, \
                     which sandwich_norm's RMSNorm divides out; use head_specific or elementwise, or sandwich_norm=false",
                ));
            }
        }
        Ok(())
    }

    /// Parameters the gates add per layer (0 for the baseline).
    pub fn gate_params_per_layer(&self) -> usize {
        let count = |g: &GateSpec| g.params_per_layer(self.d_model, self.n_heads, self.n_kv_heads, self.head_dim);
        count(&self.gate) + self.extra_gates.iter().map(count).sum::<usize>()
    }

    /// The SwiGLU hidden width actually built. With `match_baseline_params`, `d_ff` narrowed by
    /// `round(gate params per layer / (3·d_model))`, so the gated model is within `1.5·d_model`
    /// parameters per layer of the ungated one.
    pub fn ffn_width(&self) -> usize {
        if !self.moe.is_dense() {
            return 0;
        }
        if !self.match_baseline_params || self.d_ff == 0 {
            return self.d_ff;
        }
        let per_unit = 3 * self.d_model;
        let cut = (self.gate_params_per_layer() + per_unit / 2) / per_unit;
        self.d_ff.saturating_sub(cut)
    }

    /// Exact parameter counts, from the config alone (no tensor is allocated).
    pub fn param_count(&self) -> ParamCount {
        let (d, l) = (self.d_model, self.n_layers);
        let embedding = self.vocab_size * d;
        let lm_head = if self.tie_embeddings { 0 } else { self.vocab_size * d };
        let q = d * self.n_heads * self.head_dim;
        let kv = 2 * d * self.n_kv_heads * self.head_dim;
        let o = self.n_heads * self.head_dim * d;
        let qk_norm = if self.qk_norm { 2 * self.head_dim } else { 0 };
        let cure = self.cure.params_per_layer(self.n_heads, self.n_kv_heads, self.head_dim);
        let attention = l * (q + kv + o + qk_norm + cure);
        let gate_extra = self.gate_params_per_layer();
        // The SDPA RMSNorm ablation counts as "gate" (it is the Table 3 alternative to one).
        let gate = l * gate_extra;
        let d_ff = self.ffn_width();
        let ffn = l * (3 * d * d_ff + self.moe.params_per_layer(d));
        let switch_head = l * self.switch_head.params_per_layer(self);
        let sublayers = if self.has_ffn() { 2 } else { 1 };
        let per_block_norms = sublayers * if self.sandwich_norm { 2 } else { 1 };
        let norms = l * per_block_norms * d + d;
        let total = embedding + lm_head + attention + gate + ffn + switch_head + norms;
        ParamCount { embedding, lm_head, attention, gate, ffn, switch_head, norms, total }
    }

    /// Whether the blocks have an FFN sublayer (dense or mixture of experts).
    pub fn has_ffn(&self) -> bool {
        self.ffn_width() > 0 || !self.moe.is_dense()
    }

    /// Whether the SDPA RMSNorm ablation is on.
    pub(crate) fn sdpa_rms_norm(&self) -> bool {
        self.gate.sdpa_nonlinearity == SdpaNonlinearity::RmsNorm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's 15A2B MoE attention: 24 layers, d_model 2048, q = 32, k = 4, d_k = 128.
    fn paper_moe(gate: GateSpec) -> ModelConfig {
        ModelConfig {
            vocab_size: 151_936,
            d_model: 2048,
            n_layers: 24,
            n_heads: 32,
            n_kv_heads: 4,
            head_dim: 128,
            d_ff: 768,
            gate,
            ..ModelConfig::default()
        }
    }

    fn plus_p(gate: GateSpec) -> usize {
        paper_moe(gate).param_count().total - paper_moe(GateSpec::BASELINE).param_count().total
    }

    #[test]
    fn added_parameters_follow_the_papers_arithmetic() {
        let (n, d, q, k, dk) = (24, 2048, 32, 4, 128);
        // Table 1 rows 5, 10, 6, 11, 7, 8, 9, 12 (+P column, exact).
        assert_eq!(plus_p(GateSpec::at(GatePosition::G1, Granularity::Elementwise)), n * d * q * dk); // 201M
        assert_eq!(plus_p(GateSpec::at(GatePosition::G1, Granularity::Headwise)), n * d * q); // 1.6M
        assert_eq!(plus_p(GateSpec::at(GatePosition::G2, Granularity::Elementwise)), n * d * k * dk); // 25M
        assert_eq!(plus_p(GateSpec::at(GatePosition::G2, Granularity::Headwise)), n * d * k); // 0.2M
        assert_eq!(plus_p(GateSpec::at(GatePosition::G3, Granularity::Elementwise)), n * d * k * dk);
        assert_eq!(plus_p(GateSpec::at(GatePosition::G4, Granularity::Elementwise)), n * d * q * dk);
        assert_eq!(plus_p(GateSpec::at(GatePosition::G5, Granularity::Elementwise)), n * d * d); // 100M
        let shared = GateSpec { sharing: HeadSharing::HeadShared, ..GateSpec::G1_ELEMENTWISE };
        assert_eq!(plus_p(shared), n * d * q * dk); // row 12 = row 5
        assert_eq!(201_326_592, n * d * q * dk);
    }

    #[test]
    fn matching_narrows_the_ffn_to_the_baseline_count() {
        let base = ModelConfig::default();
        let gated = ModelConfig { gate: GateSpec::G1_ELEMENTWISE, match_baseline_params: true, ..base.clone() };
        gated.validate().unwrap();
        let (b, g) = (base.param_count().total as i64, gated.param_count().total as i64);
        assert!(gated.ffn_width() < base.d_ff);
        assert!((g - b).abs() <= (base.n_layers * 3 * base.d_model / 2) as i64, "{g} vs {b}");
    }

    #[test]
    fn bad_shapes_name_their_field() {
        let c = ModelConfig { n_kv_heads: 3, ..ModelConfig::default() };
        assert_eq!(c.validate().unwrap_err().field, "n_kv_heads");
        let c = ModelConfig { head_dim: 7, ..ModelConfig::default() };
        assert_eq!(c.validate().unwrap_err().field, "head_dim");
        let c = ModelConfig {
            d_ff: 0,
            gate: GateSpec::G1_ELEMENTWISE,
            match_baseline_params: true,
            ..ModelConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "match_baseline_params");
        let shared =
            GateSpec { sharing: HeadSharing::HeadShared, ..GateSpec::at(GatePosition::G1, Granularity::Headwise) };
        let c = ModelConfig { sandwich_norm: true, gate: shared, ..ModelConfig::default() };
        assert_eq!(c.validate().unwrap_err().field, "gate.sharing");
        let c = ModelConfig { rope_scaling: RopeScaling::Linear { factor: 0.5 }, ..ModelConfig::default() };
        assert_eq!(c.validate().unwrap_err().field, "rope_scaling.factor");
        let yarn: ModelConfig =
            serde_json::from_str(r#"{"rope_scaling": {"method": "yarn", "factor": 4, "original_max_position": 128}}"#)
                .unwrap();
        assert_eq!(
            yarn.rope_scaling,
            RopeScaling::Yarn { factor: 4.0, original_max_position: 128, beta_fast: 32.0, beta_slow: 1.0 }
        );
        assert!(
            !serde_json::to_string(&ModelConfig::default()).unwrap().contains("rope_scaling"),
            "unscaled configs keep their JSON"
        );
        let err = serde_json::from_str::<ModelConfig>(r#"{"d_modle": 64}"#).unwrap_err();
        assert!(err.to_string().contains("d_modle"));
    }

    #[test]
    fn gates_since_the_paper_count_and_refuse_by_field() {
        use crate::gate::InputDims;
        let base = ModelConfig { d_model: 64, ..ModelConfig::default() };
        let (d, h, hd) = (64, base.n_heads, base.head_dim);
        let with = |gate: GateSpec, extra: Vec<GateSpec>| ModelConfig { gate, extra_gates: extra, ..base.clone() };
        // A narrow input: k × width, as in modded-nanogpt's 12-dimension gate.
        let narrow = GateSpec { input_dims: InputDims::First(12), ..GateSpec::G1_ELEMENTWISE };
        assert_eq!(with(narrow, vec![]).gate_params_per_layer(), 12 * h * hd);
        let quarter = GateSpec { input_dims: InputDims::Fraction(4), ..GateSpec::G1_ELEMENTWISE };
        assert_eq!(with(quarter, vec![]).gate_params_per_layer(), d / 4 * h * hd);
        // G1 + G2: the sum of both.
        let g2 = GateSpec::at(GatePosition::G2, Granularity::Elementwise);
        let both = with(GateSpec::G1_ELEMENTWISE, vec![g2]);
        both.validate().unwrap();
        assert_eq!(
            both.gate_params_per_layer(),
            with(GateSpec::G1_ELEMENTWISE, vec![]).gate_params_per_layer() + with(g2, vec![]).gate_params_per_layer()
        );
        assert_eq!(both.gate_label(), "G1 elementwise sigmoid + G2 elementwise sigmoid");
        // A one-gate config writes neither new field: earlier run folders keep their hashes.
        let json = serde_json::to_string(&with(GateSpec::G1_ELEMENTWISE, vec![])).unwrap();
        assert!(!json.contains("extra_gates") && !json.contains("input_dims"), "{json}");
        let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&both).unwrap()).unwrap();
        assert_eq!(back, both);
        // Refusals name the field.
        let refused = |c: ModelConfig| c.validate().unwrap_err().to_string();
        let twice =
            refused(with(GateSpec::G1_ELEMENTWISE, vec![g2, GateSpec::at(GatePosition::G2, Granularity::Headwise)]));
        assert!(twice.starts_with("extra_gates[1].position: g2 already has a gate (extra_gates[0])"), "{twice}");
        let same = refused(with(GateSpec::G1_ELEMENTWISE, vec![GateSpec::G1_ELEMENTWISE]));
        assert!(same.starts_with("extra_gates[0].position: g1 already has a gate (gate)"), "{same}");
        assert!(refused(with(GateSpec::BASELINE, vec![g2])).starts_with("extra_gates: "));
        assert!(
            refused(with(GateSpec::G1_ELEMENTWISE, vec![GateSpec::BASELINE])).starts_with("extra_gates[0].position")
        );
        for k in [0, 65] {
            let wide = GateSpec { input_dims: InputDims::First(k), ..GateSpec::G1_ELEMENTWISE };
            assert!(refused(with(wide, vec![])).starts_with("gate.input_dims: "), "{k}");
            assert!(
                refused(with(GateSpec::G1_ELEMENTWISE, vec![GateSpec { position: GatePosition::G2, ..wide }]))
                    .starts_with("extra_gates[0].input_dims: ")
            );
        }
        let g5_head = GateSpec::at(GatePosition::G5, Granularity::Headwise);
        assert!(refused(with(GateSpec::G1_ELEMENTWISE, vec![g5_head])).starts_with("extra_gates[0].granularity: "));
        let theta = GateSpec { input: crate::gate::GateInput::Independent, ..narrow };
        assert!(refused(with(theta, vec![])).starts_with("gate.input_dims: "));
    }
}
