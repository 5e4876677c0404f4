//! Causal grouped-query self-attention with RoPE, optional QK-norm and a gate anywhere in the
//! design space of [`GateSpec`]: one forward for every variant.

use crate::config::ModelConfig;
use crate::cure::{SinkCure, weights};
use crate::fused::{rms_norm, rope, sigmoid_gate};
use crate::gate::{
    Combination, GateActivation, GateInit, GateInput, GatePosition, GateSite, GateSpec, HeadSharing, SdpaNonlinearity,
};
use crate::moe::ExpertProjection;
use crate::sdpa::{Slot, causal_sdpa, sdpa};
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Bool, DType, Device, Distribution, Tensor};

/// A learned gate at one site: logits `X·W_θ` (or `θ`), an activation, and a product or sum with
/// the tensor at the site. Which site, and every other choice, comes from its [`GateSpec`].
#[derive(Module, Debug)]
pub struct Gate {
    /// Input-dependent logits: `d_model → heads × scores_per_head`, no bias.
    pub gate_proj: Option<Linear>,
    /// Input-independent logits `θ` of the same width, zero-initialised.
    pub gate_theta: Option<Param<Tensor<1>>>,
    #[module(skip)]
    spec: GateSpec,
    #[module(skip)]
    site: GateSite,
    /// The input dimensions the logits read (the first `input_width` of `d_model`).
    input_width: usize,
}

impl Gate {
    /// A gate for `spec` in an attention of the shape of `config`.
    pub fn new(spec: GateSpec, config: &ModelConfig, device: &Device) -> Self {
        let site = spec.site(config.d_model, config.n_heads, config.n_kv_heads, config.head_dim);
        let width = spec.logit_width(site);
        let input_width = spec.input_dims.width_or_full(config.d_model);
        let (gate_proj, gate_theta) = match spec.input {
            GateInput::Dependent => {
                let init = match spec.init {
                    GateInit::Default => Initializer::Normal { mean: 0.0, std: config.init_std },
                    GateInit::Zero => Initializer::Zeros,
                };
                let proj = LinearConfig::new(input_width, width).with_bias(false).with_initializer(init);
                (Some(proj.init(device)), None)
            }
            GateInput::Independent => (None, Some(Param::from_tensor(Tensor::zeros([width], device)))),
        };
        Self { gate_proj, gate_theta, spec, site, input_width }
    }

    /// Gates `y` and returns it with the scores (after the activation and head sharing) when
    /// `keep_scores` (the probes want them); without it the paper's gate (sigmoid, multiplicative,
    /// head-specific, elementwise) runs as one fused operation ([`crate::fused::sigmoid_gate`]) and
    /// no scores are returned.
    ///
    /// # Shapes
    /// - y: `[batch, seq, heads, head_width]` (the site's heads)
    /// - x: `[batch, seq, d_model]`, the pre-normed layer input (the gate reads its first
    ///   `input_dims`)
    /// - output: `[batch, seq, heads, head_width]`
    /// - scores: `[batch or 1, seq or 1, heads or 1, head_width or 1]`
    pub fn forward(&self, y: Tensor<4>, x: &Tensor<3>, keep_scores: bool) -> (Tensor<4>, Option<Tensor<4>>) {
        let [b, t, _, _] = y.dims();
        let (heads, per_head) = (self.site.heads, self.spec.scores_per_head(self.site));
        let input = |x: &Tensor<3>| {
            if self.input_width == x.dims()[2] { x.clone() } else { x.clone().narrow(2, 0, self.input_width) }
        };
        let logits: Tensor<4> = match (&self.gate_proj, &self.gate_theta) {
            (Some(proj), _) => proj.forward(input(x)).reshape([b, t, heads, per_head]),
            (None, Some(theta)) => theta.val().reshape([1, 1, heads, per_head]),
            (None, None) => unreachable!("a gate has logits"),
        };
        let paper_gate = self.spec.activation == GateActivation::Sigmoid
            && self.spec.combination == Combination::Multiplicative
            && self.spec.sharing == HeadSharing::HeadSpecific;
        // The fused CPU kernel covers the paper's σ product; every other form (SiLU, the
        // non-sparse sigmoid, 2σ, tanh, sums, head-shared scores) takes Burn's operations below.
        if paper_gate && !keep_scores && logits.dims() == y.dims() {
            return (sigmoid_gate(y, logits), None);
        }
        let mut scores = match self.spec.activation {
            GateActivation::Sigmoid => sigmoid(logits),
            GateActivation::Silu => silu(logits),
            GateActivation::NsSigmoid => sigmoid(logits).mul_scalar(0.5).add_scalar(0.5),
            GateActivation::Identity => logits,
            GateActivation::ScaledSigmoid => sigmoid(logits).mul_scalar(2.0),
            GateActivation::Tanh => logits.tanh(),
        };
        if self.spec.sharing == HeadSharing::HeadShared {
            scores = scores.mean_dim(2);
        }
        let gated = match self.spec.combination {
            Combination::Multiplicative => y * scores.clone(),
            Combination::Additive => y + scores.clone(),
        };
        (gated, Some(scores))
    }
}

/// What one attention layer exposes to the probes (see [`crate::probe::LayerProbe`]).
#[derive(Debug, Clone)]
pub struct AttentionProbe {
    /// Attention probabilities `[batch, n_heads, seq, seq]` (query × key); `None` when the probe
    /// was asked not to keep them ([`crate::Transformer::forward_probed_lean`]): they can be
    /// recomputed from `queries` and `keys` a tile at a time.
    pub attn: Option<Tensor<4>>,
    /// Queries after QK-norm and RoPE, before the `1/√head_dim` scale, `[batch, n_heads, seq, head_dim]`.
    pub queries: Tensor<4>,
    /// Keys after QK-norm and RoPE, `[batch, n_kv_heads, seq, head_dim]`.
    pub keys: Tensor<4>,
    /// Values after projection (and a G2 gate) `[batch, n_kv_heads, seq, head_dim]`.
    pub values: Tensor<4>,
    /// Gate scores at the gate's site, `None` without a gate.
    pub gate_scores: Option<Tensor<4>>,
    /// SDPA output before the SDPA non-linearity and a G1 gate, `[batch, seq, n_heads, head_dim]`.
    pub sdpa_out: Tensor<4>,
    /// SDPA output after them (what enters `W_o`), `[batch, seq, n_heads, head_dim]`.
    pub sdpa_gated: Tensor<4>,
    /// How the scores became weights.
    pub cure: SinkCure,
    /// The slot cures' slot logit per query, `[batch, n_heads, seq]` (to recompute attention).
    pub slot_logits: Option<Tensor<3>>,
    /// The slot cures' weight on the slot per query, `[batch, n_heads, seq]`: where the mass the
    /// real keys do not take went.
    pub slot: Option<Tensor<3>>,
}

/// Where an attention layer leaves its probe, and whether to keep the full attention maps.
#[derive(Debug, Default)]
pub struct ProbeSlot {
    /// Keep `[batch, heads, seq, seq]` maps (else only queries and keys).
    pub keep_maps: bool,
    /// Filled by the forward.
    pub probe: Option<AttentionProbe>,
}

/// Causal grouped-query self-attention.
#[derive(Module, Debug)]
pub struct Attention {
    /// `d_model → n_heads·head_dim`.
    pub q_proj: Linear,
    /// `d_model → n_kv_heads·head_dim`.
    pub k_proj: Linear,
    /// `d_model → n_kv_heads·head_dim`.
    pub v_proj: Linear,
    /// `n_heads·head_dim → d_model`.
    pub o_proj: Linear,
    /// Per-head RMSNorm of queries (width `head_dim`, shared by the heads), with QK-norm.
    pub q_norm: Option<RmsNorm>,
    /// Per-head RMSNorm of keys, with QK-norm.
    pub k_norm: Option<RmsNorm>,
    /// The gate, when the spec has one.
    pub gate: Option<Gate>,
    /// Gates at further positions (`ModelConfig::extra_gates`), in their order.
    pub extra_gates: Vec<Gate>,
    /// The SDPA-output RMSNorm ablation (Table 3 row 5).
    pub sdpa_norm: Option<RmsNorm>,
    /// The learned sink logit `b_h` per query head (cure `sink_logit`), `[n_heads]`, zero at
    /// initialisation.
    pub sink_logit: Option<Param<Tensor<1>>>,
    /// The learned extra key `k′` per KV head (cure `kv_bias`), `[n_kv_heads, head_dim]`.
    pub kv_bias_key: Option<Param<Tensor<2>>>,
    /// The learned extra value `v′` per KV head (cure `kv_bias`), `[n_kv_heads, head_dim]`.
    pub kv_bias_value: Option<Param<Tensor<2>>>,
    /// Switch-Head key experts per KV head (`k_proj` is expert 0).
    pub k_experts: Option<ExpertProjection>,
    /// Switch-Head value experts per KV head (`v_proj` is expert 0).
    pub v_experts: Option<ExpertProjection>,
    /// Switch-Head output experts per query head (`o_proj` is expert 0).
    pub o_experts: Option<ExpertProjection>,
    #[module(skip)]
    spec: GateSpec,
    #[module(skip)]
    cure: SinkCure,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

/// A bias-free linear layer with the model's normal initialisation.
pub(crate) fn linear(d_in: usize, d_out: usize, config: &ModelConfig, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std: config.init_std })
        .init(device)
}

/// Each KV head repeated for the query heads of its group: `[b, kv, t, hd]` → `[b, kv·groups, t,
/// hd]`, the query heads of one group contiguous (the model's convention).
pub fn repeat_kv(x: Tensor<4>, groups: usize) -> Tensor<4> {
    let [b, kv, t, hd] = x.dims();
    x.unsqueeze_dim::<5>(2).expand([b, kv, groups, t, hd]).reshape([b, kv * groups, t, hd])
}

/// A parameter drawn from the model's normal initialisation.
fn normal(shape: [usize; 2], config: &ModelConfig, device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.0, config.init_std), device))
}

/// An RMSNorm of width `d` with the model's epsilon.
pub(crate) fn norm_layer(d: usize, config: &ModelConfig, device: &Device) -> RmsNorm {
    RmsNormConfig::new(d).with_epsilon(config.norm_eps).init(device)
}

impl Attention {
    /// Builds the attention of one block of `config` (assumed validated).
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let (d, h, kv, hd) = (config.d_model, config.n_heads, config.n_kv_heads, config.head_dim);
        let (spec, sh) = (config.gate, config.switch_head);
        Self {
            q_proj: linear(d, h * hd, config, device),
            k_proj: linear(d, kv * hd, config, device),
            v_proj: linear(d, kv * hd, config, device),
            o_proj: linear(h * hd, d, config, device),
            q_norm: config.qk_norm.then(|| norm_layer(hd, config, device)),
            k_norm: config.qk_norm.then(|| norm_layer(hd, config, device)),
            gate: spec.is_gated().then(|| Gate::new(spec, config, device)),
            extra_gates: config.extra_gates.iter().map(|&g| Gate::new(g, config, device)).collect(),
            sdpa_norm: config.sdpa_rms_norm().then(|| norm_layer(hd, config, device)),
            sink_logit: (config.cure == SinkCure::SinkLogit).then(|| Param::from_tensor(Tensor::zeros([h], device))),
            kv_bias_key: (config.cure == SinkCure::KvBias).then(|| normal([kv, hd], config, device)),
            kv_bias_value: (config.cure == SinkCure::KvBias).then(|| normal([kv, hd], config, device)),
            k_experts: (sh.keys && !sh.is_off())
                .then(|| ExpertProjection::new(sh, d, kv * hd, kv, !sh.shared_kv_router, config, device)),
            v_experts: (sh.values && !sh.is_off())
                .then(|| ExpertProjection::new(sh, d, kv * hd, kv, true, config, device)),
            o_experts: (sh.outputs && !sh.is_off())
                .then(|| ExpertProjection::new(sh, h * hd, d, h, true, config, device)),
            spec,
            cure: config.cure,
            n_heads: h,
            n_kv_heads: kv,
            head_dim: hd,
        }
    }

    /// Applies the gate that sits at `position`, if one does (validation allows one per
    /// position); records its scores if `keep_scores` and it is the model's `gate` (the probes
    /// follow that one; an extra gate's scores are not kept).
    fn gate_at(
        &self,
        position: GatePosition,
        y: Tensor<4>,
        x: &Tensor<3>,
        scores: &mut Option<Tensor<4>>,
        keep_scores: bool,
    ) -> Tensor<4> {
        if let Some(gate) = self.gate.as_ref().filter(|_| self.spec.position == position) {
            let (gated, s) = gate.forward(y, x, keep_scores);
            *scores = s;
            return gated;
        }
        match self.extra_gates.iter().find(|g| g.spec.position == position) {
            Some(gate) => gate.forward(y, x, false).0,
            None => y,
        }
    }

    /// Attention over the pre-normed input `x`. With `probe`, the intermediate tensors are kept
    /// there; without it nothing extra is computed or retained. `causal` says that `causal_mask`
    /// is exactly the causal mask (nothing else hidden): softmax attention then runs the fused
    /// causal operation ([`crate::sdpa::causal_sdpa`]) when nothing is probed.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - cos, sin: `[seq, head_dim]` (see [`crate::rope::rope_tables`])
    /// - causal_mask: `[seq, seq]`, `true` where a query may not see a key (at least the future)
    /// - output: `[batch, seq, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
        causal_mask: &Tensor<2, Bool>,
        causal: bool,
        probe: Option<&mut ProbeSlot>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let groups = h / kv;
        let mut scores = None;
        let keep = probe.is_some();

        // Projections, each [b, t, heads, hd]; G4/G3/G2 gates act right after them.
        let q = self.q_proj.forward(x.clone()).reshape([b, t, h, hd]);
        let q = self.gate_at(GatePosition::G4, q, &x, &mut scores, keep);
        // Key experts without a router of their own take the values' routing (computed once).
        let shared_routing = match (&self.k_experts, &self.v_experts) {
            (Some(k), Some(v)) if k.router.is_none() => Some(v.weights(&x)),
            _ => None,
        };
        let project = |proj: &Linear, experts: &Option<ExpertProjection>| match experts {
            Some(e) => e.project(x.clone(), proj.weight.val(), &x, shared_routing.as_ref()),
            None => proj.forward(x.clone()).reshape([b, t, kv, hd]),
        };
        let k = project(&self.k_proj, &self.k_experts);
        let k = self.gate_at(GatePosition::G3, k, &x, &mut scores, keep);
        let v = project(&self.v_proj, &self.v_experts);
        let v = self.gate_at(GatePosition::G2, v, &x, &mut scores, keep);
        let (q, k) = match (&self.q_norm, &self.k_norm) {
            (Some(qn), Some(kn)) => (rms_norm(qn, q), rms_norm(kn, k)),
            _ => (q, k),
        };

        // [b, heads, t, hd], RoPE on queries and keys.
        let q = rope(q, cos, sin).swap_dims(1, 2);
        let k = rope(k, cos, sin).swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let (q_probe, k_probe) = if keep { (Some(q.clone()), Some(k.clone())) } else { (None, None) };

        let scale = (hd as f64).powf(-0.5);
        let (sdpa_out, attn, slot_logits, slot_weights) = if self.cure.is_softmax() || self.cure.has_slot() {
            // Attention without repeating K/V: query heads of one KV group are stacked along the
            // sequence axis, [b, kv, groups·t, hd] against [b, kv, t, hd], each with the causal
            // mask. One operation with its own backward pass (`crate::sdpa`), slot included.
            let masked = if groups == 1 { causal_mask.clone() } else { causal_mask.clone().repeat_dim(0, groups) };
            let q = q.clone().reshape([b, kv, groups * t, hd]);
            if causal && !keep && self.cure.is_softmax() {
                // Training and plain forward passes: no probabilities kept (the fused causal path).
                let y = causal_sdpa(q, k.clone(), v.clone(), masked, scale);
                (y.reshape([b, h, t, hd]), None, None, None)
            } else {
                let slot = self.slot(&q, b, t, scale);
                let logits = slot.as_ref().map(|s| s.logit.clone().reshape([b, h, t]));
                let (y, attn, slot_probs) = sdpa(q, k.clone(), v.clone(), masked, scale, slot);
                (
                    y.reshape([b, h, t, hd]),
                    Some(attn.reshape([b, h, t, t])),
                    logits,
                    slot_probs.map(|p| p.reshape([b, h, t])),
                )
            }
        } else {
            // softpick, sigmoid and clipped softmax: Burn's operations and autodiff (`crate::cure`),
            // the weights in f32 whatever the stream's dtype (`crate::precision`).
            let scores = q.clone().matmul(repeat_kv(k.clone(), groups).transpose()).mul_scalar(scale);
            let (attn, _) = weights(self.cure, scores.cast(DType::F32), causal_mask.clone(), None, 0, t);
            (attn.clone().cast(v.dtype()).matmul(repeat_kv(v.clone(), groups)), Some(attn), None, None)
        };
        let sdpa_out = sdpa_out.swap_dims(1, 2); // [b, t, h, hd]

        // SDPA-output non-linearity ablations, then a G1 gate.
        let y = match self.spec.sdpa_nonlinearity {
            SdpaNonlinearity::None => sdpa_out.clone(),
            SdpaNonlinearity::RmsNorm => rms_norm(self.sdpa_norm.as_ref().expect("sdpa_norm"), sdpa_out.clone()),
            SdpaNonlinearity::Silu => silu(sdpa_out.clone()),
        };
        let y = self.gate_at(GatePosition::G1, y, &x, &mut scores, keep);

        let out = match &self.o_experts {
            Some(e) => e.project_out(y.clone(), self.o_proj.weight.val(), &x),
            None => self.o_proj.forward(y.clone().reshape([b, t, h * hd])),
        };
        let out = self.gate_at(GatePosition::G5, out.reshape([b, t, 1, self.o_proj_width()]), &x, &mut scores, keep);
        if let Some(slot) = probe {
            let attn = attn.filter(|_| slot.keep_maps);
            slot.probe = Some(AttentionProbe {
                attn,
                queries: q_probe.expect("kept"),
                keys: k_probe.expect("kept"),
                values: v,
                gate_scores: scores,
                sdpa_out,
                sdpa_gated: y,
                cure: self.cure,
                slot_logits,
                slot: slot_weights,
            });
        }
        out.reshape([b, t, self.o_proj_width()])
    }

    /// The slot of a slot cure for the grouped queries `q [b, kv, g·t, hd]`: its logit per row
    /// (0 for softmax+1, `b_h` for the sink logit, `q·k′·scale` for the key/value bias) and its
    /// value per KV head (0, 0, `v′`). `None` for the other cures.
    fn slot(&self, q: &Tensor<4>, b: usize, t: usize, scale: f64) -> Option<Slot> {
        let (h, kv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let groups = h / kv;
        let device = q.device();
        let zero_value = || Tensor::<4>::zeros([b, kv, 1, hd], &device);
        match self.cure {
            SinkCure::SoftmaxPlusOne => {
                Some(Slot { logit: Tensor::zeros([b, kv, groups * t, 1], &device), value: zero_value() })
            }
            SinkCure::SinkLogit => {
                let logit = self.sink_logit.as_ref().expect("sink_logit").val();
                let logit =
                    logit.reshape([1, kv, groups, 1]).expand([b, kv, groups, t]).reshape([b, kv, groups * t, 1]);
                Some(Slot { logit, value: zero_value() })
            }
            SinkCure::KvBias => {
                let key = self.kv_bias_key.as_ref().expect("kv_bias_key").val().reshape([1, kv, hd, 1]);
                let value = self.kv_bias_value.as_ref().expect("kv_bias_value").val().reshape([1, kv, 1, hd]);
                let logit = q.clone().matmul(key.expand([b, kv, hd, 1])).mul_scalar(scale);
                Some(Slot { logit, value: value.expand([b, kv, 1, hd]) })
            }
            _ => None,
        }
    }

    fn o_proj_width(&self) -> usize {
        self.o_proj.weight.dims()[1]
    }
}
