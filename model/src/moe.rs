//! Mixture-of-experts, the paper's own kind of model (its 15A2B base: 128 experts, top-8 softmax
//! routing, a load-balancing loss and a z-loss) at any size, and Switch-Head attention (Csordás
//! et al. 2023, arXiv 2312.07987; the paper's Table 6 baselines), both as config data:
//!
//! - [`MoeSpec`] / [`MoeFfn`]: the FFN as `n` routed SwiGLU experts of width `d_expert`, a softmax
//!   router and top-k selection, optional always-on shared experts, and the auxiliary losses.
//! - [`SwitchHeadSpec`] / [`ExpertProjection`]: per head, `E` key, value and/or output projection
//!   experts, chosen top-k by a sigmoid router on the layer input.
//!
//! **Computation.** Every expert runs on every token and the routing weights (zero for experts
//! not chosen) mix their outputs: exact, and at these sizes (a handful of experts) cheaper in
//! Burn than a gather/scatter dispatch; it costs `experts×` the FLOPs of one expert, so it is not
//! how a GPU-sized MoE should run (docs/moe.md). No expert has a capacity: no token is dropped.
//!
//! **Top-k and ties.** Exactly `k` experts per token: the `k` largest router scores (detached),
//! a tie at the `k`-th place broken by the lower expert index, the same on every backend and in
//! the PyTorch reference. Ties are not measure-zero in float32: about one routing decision in
//! 21,000 of a tiny paper-grid run had two probabilities that rounded to the same float.

use crate::attention::linear;
use crate::config::ModelConfig;
use crate::fused::swiglu;
use crate::gate::ConfigError;
use crate::transformer::FeedForward;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{DType, Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

/// The FFN as a mixture of experts (`experts = 0`: the dense SwiGLU of `d_ff`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MoeSpec {
    /// Routed experts; 0 keeps the dense FFN.
    pub experts: usize,
    /// Experts each token is routed to.
    pub top_k: usize,
    /// SwiGLU width of each expert (the paper's fine-grained experts: 768 beside d_model 2048).
    pub d_expert: usize,
    /// Experts every token passes through, of the same width.
    pub shared_experts: usize,
    /// How the shared experts join: added as they are (DeepSeek-MoE) or scaled per token by a
    /// sigmoid gate `σ(x·w)` (Qwen2-MoE's `shared_expert_gate`). Left out of the JSON when `none`.
    #[serde(skip_serializing_if = "SharedGate::is_none")]
    pub shared_gate: SharedGate,
    /// Renormalise the chosen experts' probabilities to sum to 1 (Qwen3-MoE's `norm_topk_prob`).
    pub normalize_top_k: bool,
    /// Weight of the load-balancing loss `experts · Σ_e f_e · P_e` (Switch Transformer).
    pub balance_coef: f64,
    /// Weight of the router z-loss `mean(logsumexp(router logits)²)` (ST-MoE).
    pub z_coef: f64,
}

impl Default for MoeSpec {
    fn default() -> Self {
        Self {
            experts: 0,
            top_k: 2,
            d_expert: 0,
            shared_experts: 0,
            shared_gate: SharedGate::None,
            normalize_top_k: true,
            balance_coef: 0.01,
            z_coef: 0.001,
        }
    }
}

impl MoeSpec {
    /// Whether the FFN stays dense (no experts).
    pub fn is_dense(&self) -> bool {
        self.experts == 0
    }

    /// Checks the fields; errors name them (`moe.top_k`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.is_dense() {
            return Ok(());
        }
        top_k_fits("moe", self.top_k, self.experts)?;
        if self.d_expert == 0 {
            return Err(ConfigError::new("moe.d_expert", "must be at least 1 with moe.experts > 0"));
        }
        if self.shared_gate != SharedGate::None && self.shared_experts == 0 {
            return Err(ConfigError::new("moe.shared_gate", "gates the shared experts: needs moe.shared_experts ≥ 1"));
        }
        for (field, value) in [("moe.balance_coef", self.balance_coef), ("moe.z_coef", self.z_coef)] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(ConfigError::new(field, format!("must be a number ≥ 0, got {value}")));
            }
        }
        Ok(())
    }

    /// Parameters per layer: router, routed and shared experts.
    pub fn params_per_layer(&self, d_model: usize) -> usize {
        if self.is_dense() {
            return 0;
        }
        let gate = if self.shared_gate == SharedGate::Sigmoid { d_model } else { 0 };
        d_model * self.experts + 3 * d_model * self.d_expert * (self.experts + self.shared_experts) + gate
    }
}

/// How shared experts join the routed ones.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharedGate {
    /// Added ungated (DeepSeek-MoE, Dai et al. 2024).
    #[default]
    None,
    /// Scaled per token by `σ(x·w)`, one weight vector `d_model → 1` (Qwen2-MoE).
    Sigmoid,
}

impl SharedGate {
    /// Whether the shared experts are added ungated.
    pub fn is_none(&self) -> bool {
        *self == SharedGate::None
    }
}

/// Which attention projections Switch-Head turns into experts (`experts = 0`: none).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchHeadSpec {
    /// Experts per head and projection; 0 turns Switch-Head off.
    pub experts: usize,
    /// Experts each head uses per token.
    pub top_k: usize,
    /// Key projections as experts (per KV head).
    pub keys: bool,
    /// Value projections as experts (per KV head).
    pub values: bool,
    /// Output projections as experts (per query head).
    pub outputs: bool,
    /// The keys take the values' routing (one source-side selection per KV head, the default of
    /// the authors' code, RobertCsordas/moe_attention) instead of a router of their own. Left out
    /// of the JSON when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared_kv_router: bool,
}

impl Default for SwitchHeadSpec {
    fn default() -> Self {
        Self { experts: 0, top_k: 1, keys: false, values: true, outputs: false, shared_kv_router: false }
    }
}

impl SwitchHeadSpec {
    /// Whether Switch-Head is off.
    pub fn is_off(&self) -> bool {
        self.experts == 0
    }

    /// Checks the fields; errors name them (`switch_head.top_k`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.is_off() {
            return Ok(());
        }
        top_k_fits("switch_head", self.top_k, self.experts)?;
        if !(self.keys || self.values || self.outputs) {
            return Err(ConfigError::new("switch_head", "experts on no projection: set keys, values or outputs"));
        }
        if self.shared_kv_router && !(self.keys && self.values) {
            return Err(ConfigError::new(
                "switch_head.shared_kv_router",
                "shares the value experts' router with the key experts: needs keys and values both true",
            ));
        }
        Ok(())
    }

    /// Parameters Switch-Head adds per layer to the dense attention: per projection turned into
    /// experts, `experts − 1` more copies of it (the dense one is expert 0) and a router of
    /// `d_model × heads·experts` (none for the keys when they share the values' router).
    pub fn params_per_layer(&self, c: &ModelConfig) -> usize {
        if self.is_off() {
            return 0;
        }
        let (d, e) = (c.d_model, self.experts);
        let router = d * c.n_kv_heads * e;
        let kv = (e - 1) * d * c.n_kv_heads * c.head_dim + router;
        let o = (e - 1) * c.n_heads * c.head_dim * d + d * c.n_heads * e;
        let shared = if self.shared_kv_router { router } else { 0 };
        usize::from(self.keys) * kv + usize::from(self.values) * kv + usize::from(self.outputs) * o - shared
    }
}

/// `section.top_k` must be between 1 and `section.experts`.
fn top_k_fits(section: &str, top_k: usize, experts: usize) -> Result<(), ConfigError> {
    if top_k == 0 || top_k > experts {
        return Err(ConfigError::new(
            format!("{section}.top_k"),
            format!("must be between 1 and {section}.experts = {experts}, got {top_k}"),
        ));
    }
    Ok(())
}

/// A parameter drawn from the model's normal initialisation.
fn normal3(shape: [usize; 3], config: &ModelConfig, device: &Device) -> Param<Tensor<3>> {
    Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.0, config.init_std), device))
}

/// The chosen entries of `scores` along its last axis: 1 at the `k` largest of each row, else 0,
/// a tie broken by the lower index (exactly `k` per row, as `torch.topk` takes them). No gradient.
///
/// An entry's rank is the number of entries above it plus the number equal to it at a lower
/// index; it is chosen when its rank is below `k`. Identical scores give identical choices on
/// every backend, whatever order its sort returns ties in.
fn top_k_mask<const D: usize>(scores: Tensor<D>, k: usize) -> Tensor<D> {
    let dims = scores.dims();
    let e = dims[D - 1];
    let n = dims.iter().product::<usize>() / e;
    let device = scores.device();
    let s = scores.detach().reshape([n, e]);
    let (own, other) = (s.clone().reshape([n, e, 1]).expand([n, e, e]), s.reshape([n, 1, e]).expand([n, e, e]));
    // before[i][j] = 1 where j < i.
    let before: Vec<f32> = (0..e * e).map(|x| if x % e < x / e { 1.0 } else { 0.0 }).collect();
    let before = Tensor::<3>::from_data(burn::tensor::TensorData::new(before, [1, e, e]), &device);
    let above = other.clone().greater(own.clone()).float();
    let tied_before = other.equal(own).float() * before;
    let rank = (above + tied_before).sum_dim(2);
    rank.lower_elem(k as f32).float().reshape(dims)
}

/// What a mixture-of-experts FFN did with one batch.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Router probabilities (softmax over every expert) `[batch, seq, experts]`.
    pub probs: Tensor<3>,
    /// 1 where a token was routed to an expert, `[batch, seq, experts]`.
    pub chosen: Tensor<3>,
    /// The auxiliary loss, already weighted: `balance_coef · balance + z_coef · z`, `[1]`.
    pub aux: Tensor<1>,
    /// The load-balancing loss, unweighted (1 when perfectly balanced), `[1]`.
    pub balance: Tensor<1>,
    /// The z-loss, unweighted, `[1]`.
    pub z: Tensor<1>,
}

/// A mixture-of-experts SwiGLU FFN.
#[derive(Module, Debug)]
pub struct MoeFfn {
    /// Router logits, `d_model → experts`.
    pub router: Linear,
    /// Each expert's gate projection, `[experts, d_model, d_expert]`.
    pub gate_proj: Param<Tensor<3>>,
    /// Each expert's up projection, `[experts, d_model, d_expert]`.
    pub up_proj: Param<Tensor<3>>,
    /// Each expert's down projection, `[experts, d_expert, d_model]`.
    pub down_proj: Param<Tensor<3>>,
    /// The shared experts, as one SwiGLU of width `shared_experts · d_expert`.
    pub shared: Option<FeedForward>,
    /// Qwen2-MoE's gate on the shared experts, `d_model → 1` (with `shared_gate = sigmoid`).
    pub shared_gate: Option<Linear>,
    #[module(skip)]
    spec: MoeSpec,
}

impl MoeFfn {
    /// The FFN of one block of `config` (its `moe` not dense).
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let (d, s) = (config.d_model, config.moe);
        let shared_width = s.shared_experts * s.d_expert;
        Self {
            router: linear(d, s.experts, config, device),
            gate_proj: normal3([s.experts, d, s.d_expert], config, device),
            up_proj: normal3([s.experts, d, s.d_expert], config, device),
            down_proj: normal3([s.experts, s.d_expert, d], config, device),
            shared: (shared_width > 0).then(|| FeedForward::new(d, shared_width, config, device)),
            shared_gate: (shared_width > 0 && s.shared_gate == SharedGate::Sigmoid)
                .then(|| linear(d, 1, config, device)),
            spec: s,
        }
    }

    /// # Shapes
    /// - x: `[batch, seq, d_model]` (the pre-normed stream) → `[batch, seq, d_model]`, and the
    ///   routing with its auxiliary loss
    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, Routing) {
        let [b, t, d] = x.dims();
        let (e, k) = (self.spec.experts, self.spec.top_k);
        // Routing in f32 whatever the stream's dtype (`crate::precision`): ties and the z-loss
        // are sensitive to bf16's 8 bits.
        let logits = self.router.forward(x.clone()).cast(DType::F32); // [b, t, e]
        let probs = softmax(logits.clone(), 2);
        let chosen = top_k_mask(probs.clone(), k);
        let mut weights = probs.clone() * chosen.clone();
        if self.spec.normalize_top_k {
            weights = weights.clone() / weights.sum_dim(2);
        }
        // Every expert on every token: [e, n, d] → [e, n, d_expert] → [e, n, d].
        let n = b * t;
        let xs = x.clone().reshape([1, n, d]).expand([e, n, d]);
        let hidden = swiglu(xs.clone().matmul(self.gate_proj.val()), xs.matmul(self.up_proj.val()));
        let outs = hidden.matmul(self.down_proj.val());
        let w = weights.reshape([n, e]).transpose().reshape([e, n, 1]).cast(outs.dtype());
        let mut y = (outs * w).sum_dim(0).reshape([b, t, d]);
        if let Some(shared) = &self.shared {
            let out = shared.forward(x.clone());
            y = y + match &self.shared_gate {
                Some(gate) => out * sigmoid(gate.forward(x)),
                None => out,
            };
        }
        // Load balance: f_e, the share of routing slots expert e took; P_e, its mean probability.
        let f = chosen.clone().reshape([n, e]).sum_dim(0).div_scalar((n * k) as f64).reshape([e]);
        let p = probs.clone().reshape([n, e]).mean_dim(0).reshape([e]);
        let balance = (f * p).sum().mul_scalar(e as f64);
        let m = logits.clone().max_dim(2).detach();
        let lse = (logits - m.clone()).exp().sum_dim(2).log() + m;
        let z = lse.square().mean();
        let aux = balance.clone().mul_scalar(self.spec.balance_coef) + z.clone().mul_scalar(self.spec.z_coef);
        (y, Routing { probs, chosen, aux, balance, z })
    }
}

/// One attention projection as `experts` copies per head, mixed by a sigmoid router: expert 0 is
/// the layer's dense projection (so a 1-expert, top-1 Switch-Head is that projection scaled by a
/// sigmoid per head: a headwise gate), the others live here.
#[derive(Module, Debug)]
pub struct ExpertProjection {
    /// Router logits, `d_model → heads·experts` (absent for keys that take the values' routing).
    pub router: Option<Linear>,
    /// Experts 1.. of the projection, `[experts − 1, d_in, d_out]` (absent with one expert).
    pub extra: Option<Param<Tensor<3>>>,
    heads: usize,
    experts: usize,
    top_k: usize,
}

impl ExpertProjection {
    /// Experts for a projection `d_in → d_out` split over `heads`, with a router of their own or
    /// (`own_router` false) routed by another projection's [`ExpertProjection::weights`].
    pub fn new(
        spec: SwitchHeadSpec,
        d_in: usize,
        d_out: usize,
        heads: usize,
        own_router: bool,
        c: &ModelConfig,
        device: &Device,
    ) -> Self {
        let e = spec.experts;
        Self {
            router: own_router.then(|| linear(c.d_model, heads * e, c, device)),
            extra: (e > 1).then(|| normal3([e - 1, d_in, d_out], c, device)),
            heads,
            experts: e,
            top_k: spec.top_k,
        }
    }

    /// Routing weights per head: sigmoid scores of the chosen experts, 0 elsewhere,
    /// `[batch, seq, heads, experts]`. Panics for a projection without a router of its own.
    pub fn weights(&self, x: &Tensor<3>) -> Tensor<4> {
        let [b, t, _] = x.dims();
        let router = self.router.as_ref().expect("routed by another projection's weights");
        let logits = router.forward(x.clone()).cast(DType::F32); // routing in f32 (`crate::precision`)
        let scores = sigmoid(logits.reshape([b, t, self.heads, self.experts]));
        (scores.clone() * top_k_mask(scores, self.top_k)).cast(x.dtype())
    }

    /// Every expert's weight, `[experts, d_in, d_out]`, the dense `weight` first.
    fn all(&self, weight: Tensor<2>) -> Tensor<3> {
        let [i, o] = weight.dims();
        let first = weight.reshape([1, i, o]);
        match &self.extra {
            Some(extra) => Tensor::cat(vec![first, extra.val()], 0),
            None => first,
        }
    }

    /// A key or value projection: each head's output mixed over its experts, by its own routing
    /// or by `routed` (another projection's [`ExpertProjection::weights`]).
    ///
    /// # Shapes
    /// - input, x: `[batch, seq, d_model]`; weight: the dense `[d_model, heads·head_dim]`;
    ///   routed: `[batch, seq, heads, experts]`
    /// - output: `[batch, seq, heads, head_dim]`
    pub fn project(&self, input: Tensor<3>, weight: Tensor<2>, x: &Tensor<3>, routed: Option<&Tensor<4>>) -> Tensor<4> {
        let [b, t, d] = input.dims();
        let (e, h, n) = (self.experts, self.heads, b * t);
        let all = self.all(weight);
        let width = all.dims()[2];
        let outs = input.reshape([1, n, d]).expand([e, n, d]).matmul(all).reshape([e, n, h, width / h]);
        let w = routed.cloned().unwrap_or_else(|| self.weights(x));
        let w = w.reshape([n, h, e]).permute([2, 0, 1]).reshape([e, n, h, 1]);
        (outs * w).sum_dim(0).reshape([b, t, h, width / h])
    }

    /// An output projection: each head's input scaled per expert, every expert's projection summed.
    ///
    /// # Shapes
    /// - y: `[batch, seq, heads, head_dim]`; weight: the dense `[heads·head_dim, d_model]`;
    ///   x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn project_out(&self, y: Tensor<4>, weight: Tensor<2>, x: &Tensor<3>) -> Tensor<3> {
        let [b, t, h, hd] = y.dims();
        let (e, n) = (self.experts, b * t);
        let all = self.all(weight);
        let d = all.dims()[2];
        let w = self.weights(x).reshape([n, h, e]).permute([2, 0, 1]).reshape([e, n, h, 1]);
        let scaled = (y.reshape([1, n, h, hd]) * w).reshape([e, n, h * hd]);
        scaled.matmul(all).sum_dim(0).reshape([b, t, d])
    }
}
