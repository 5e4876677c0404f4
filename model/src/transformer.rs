//! The decoder: [`ModelConfig`] → [`ModelConfig::init`] → [`Transformer`] `{ embed_tokens,
//! layers: Vec<Block>, norm, lm_head }`, each `Block` a pre-norm attention and SwiGLU FFN.

use crate::attention::{Attention, ProbeSlot, linear, norm_layer};
use crate::config::ModelConfig;
use crate::fused::{rms_norm, swiglu};
use crate::gate::ConfigError;
use crate::moe::{MoeFfn, Routing};
use crate::probe::{LayerProbe, Probes};
use crate::rope::{RopeScaling, rope_tables};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, RmsNorm};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, DType, Device, Int, Tensor};

/// SwiGLU feed-forward: `down(silu(gate(x)) ⊙ up(x))`.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `d_model → d_ff`, through SiLU.
    pub gate_proj: Linear,
    /// `d_model → d_ff`.
    pub up_proj: Linear,
    /// `d_ff → d_model`.
    pub down_proj: Linear,
}

impl FeedForward {
    /// A SwiGLU `d_model → width → d_model` with the model's initialisation.
    pub fn new(d_model: usize, width: usize, config: &ModelConfig, device: &Device) -> Self {
        Self {
            gate_proj: linear(d_model, width, config, device),
            up_proj: linear(d_model, width, config, device),
            down_proj: linear(width, d_model, config, device),
        }
    }

    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.down_proj.forward(swiglu(self.gate_proj.forward(x.clone()), self.up_proj.forward(x)))
    }
}

/// One pre-norm decoder block: `h + attn(norm(h))`, then `h + ffn(norm(h))` (with sandwich norm,
/// each sublayer's output is normalised again before the residual add).
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention; its output is the gate's input `X`.
    pub attn_norm: RmsNorm,
    /// The attention.
    pub attn: Attention,
    /// Sandwich norm on the attention output.
    pub attn_out_norm: Option<RmsNorm>,
    /// Norm before the FFN (absent in attention-only models).
    pub ffn_norm: Option<RmsNorm>,
    /// The FFN (absent when `d_ff = 0` or the FFN is a mixture of experts).
    pub ffn: Option<FeedForward>,
    /// The mixture-of-experts FFN (with `moe.experts > 0`).
    pub moe: Option<MoeFfn>,
    /// Sandwich norm on the FFN output.
    pub ffn_out_norm: Option<RmsNorm>,
}

impl Block {
    fn new(config: &ModelConfig, device: &Device) -> Self {
        let d = config.d_model;
        let d_ff = config.ffn_width();
        let has_ffn = config.has_ffn();
        let sandwich = config.sandwich_norm;
        Self {
            attn_norm: norm_layer(d, config, device),
            attn: Attention::new(config, device),
            attn_out_norm: sandwich.then(|| norm_layer(d, config, device)),
            ffn_norm: has_ffn.then(|| norm_layer(d, config, device)),
            ffn: (d_ff > 0).then(|| FeedForward::new(d, d_ff, config, device)),
            moe: (!config.moe.is_dense()).then(|| MoeFfn::new(config, device)),
            ffn_out_norm: (sandwich && has_ffn).then(|| norm_layer(d, config, device)),
        }
    }

    /// The block, and the routing of its mixture-of-experts FFN if it has one.
    ///
    /// # Shapes
    /// - h: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub(crate) fn forward(
        &self,
        h: Tensor<3>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
        mask: &Tensor<2, Bool>,
        causal: bool,
        probe: Option<&mut ProbeSlot>,
    ) -> (Tensor<3>, Option<Routing>) {
        let a = self.attn.forward(rms_norm(&self.attn_norm, h.clone()), cos, sin, mask, causal, probe);
        let a = match &self.attn_out_norm {
            Some(n) => rms_norm(n, a),
            None => a,
        };
        let h = h + a;
        let Some(norm) = &self.ffn_norm else { return (h, None) };
        let z = rms_norm(norm, h.clone());
        let (f, routing) = match (&self.ffn, &self.moe) {
            (Some(ffn), _) => (ffn.forward(z), None),
            (None, Some(moe)) => {
                let (f, routing) = moe.forward(z);
                (f, Some(routing))
            }
            (None, None) => unreachable!("a block with an FFN norm has an FFN"),
        };
        let f = match &self.ffn_out_norm {
            Some(n) => rms_norm(n, f),
            None => f,
        };
        (h + f, routing)
    }
}

/// One entry of the residual stream to overwrite: after block `layer`, `h[:, position, channel]`
/// becomes `value` in every sequence of the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResidualEdit {
    /// The block after which the stream is edited (0-based).
    pub layer: usize,
    /// The position.
    pub position: usize,
    /// The channel of `d_model`.
    pub channel: usize,
    /// The value written.
    pub value: f32,
}

/// The decoder-only language model.
#[derive(Module, Debug)]
pub struct Transformer {
    /// Token embedding `[vocab, d_model]`.
    pub embed_tokens: Embedding,
    /// The decoder blocks.
    pub layers: Vec<Block>,
    /// Final norm.
    pub norm: RmsNorm,
    /// Untied LM head `d_model → vocab` (absent when tied to the embedding).
    pub lm_head: Option<Linear>,
    head_dim: usize,
    #[module(skip)]
    rope_theta: f64,
    #[module(skip)]
    rope_scaling: RopeScaling,
}

impl ModelConfig {
    /// Validates the config and builds the model on `device` (use `device.autodiff()` to train).
    pub fn init(&self, device: &Device) -> Result<Transformer, ConfigError> {
        self.validate()?;
        let embed_tokens = EmbeddingConfig::new(self.vocab_size, self.d_model)
            .with_initializer(Initializer::Normal { mean: 0.0, std: self.init_std })
            .init(device);
        Ok(Transformer {
            embed_tokens,
            layers: (0..self.n_layers).map(|_| Block::new(self, device)).collect(),
            norm: norm_layer(self.d_model, self, device),
            lm_head: (!self.tie_embeddings).then(|| linear(self.d_model, self.vocab_size, self, device)),
            head_dim: self.head_dim,
            rope_theta: self.rope_theta,
            rope_scaling: self.rope_scaling,
        })
    }
}

impl Transformer {
    /// The same weights with another RoPE base and scaling: evaluation beyond the training length
    /// without retraining.
    pub fn with_rope(mut self, theta: f64, scaling: RopeScaling) -> Result<Self, ConfigError> {
        scaling.validate()?;
        (self.rope_theta, self.rope_scaling) = (theta, scaling);
        Ok(self)
    }

    /// Logits for every position (the training forward: no probes are kept).
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.run(tokens, None, None, None, &mut None)
    }

    /// Logits and the auxiliary loss to add to the training objective: the mixture-of-experts
    /// layers' load-balancing and z-losses, weighted and summed (`None` for a dense model).
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`, and `[1]`
    pub fn forward_with_aux(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Option<Tensor<1>>) {
        let mut aux = None;
        let logits = self.run(tokens, None, None, None, &mut aux);
        (logits, aux)
    }

    /// Logits with attention restricted by `masked` instead of the causal mask alone (e.g. a
    /// sliding window: the streaming probe).
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - masked: `[seq, seq]`, true where query `i` may not see key `j` (it must hide the future)
    /// - output: `[batch, seq, vocab]`
    pub fn forward_masked(&self, tokens: Tensor<2, Int>, masked: Tensor<2, Bool>) -> Tensor<3> {
        self.run(tokens, None, None, Some(masked), &mut None)
    }

    /// Logits plus, per layer, attention maps, gate scores, SDPA outputs and the residual stream.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`
    /// - output: `[batch, seq, vocab]` and one [`LayerProbe`] per layer
    pub fn forward_probed(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Probes) {
        self.probed(tokens, true)
    }

    /// As [`Transformer::forward_probed`], but without keeping any layer's `[seq, seq]` attention
    /// maps: each layer's queries and keys are kept instead, from which the analysis recomputes
    /// attention a tile of queries at a time. For long sequences.
    pub fn forward_probed_lean(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Probes) {
        self.probed(tokens, false)
    }

    /// As [`Transformer::forward_probed`] (`keep_maps`) or [`Transformer::forward_probed_lean`],
    /// with one entry of the residual stream overwritten after its block (an intervention: Sun et
    /// al. 2024 set a massive activation to zero or to its mean). The probes show the stream after
    /// the edit.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`, with `edit.position < seq`
    /// - output: `[batch, seq, vocab]` and one [`LayerProbe`] per layer
    pub fn forward_probed_edited(
        &self,
        tokens: Tensor<2, Int>,
        edit: &ResidualEdit,
        keep_maps: bool,
    ) -> (Tensor<3>, Probes) {
        let mut probes = Vec::with_capacity(self.layers.len());
        let logits = self.run(tokens, Some((&mut probes, keep_maps)), Some(edit), None, &mut None);
        (logits, Probes { layers: probes })
    }

    fn probed(&self, tokens: Tensor<2, Int>, keep_maps: bool) -> (Tensor<3>, Probes) {
        let mut probes = Vec::with_capacity(self.layers.len());
        let logits = self.run(tokens, Some((&mut probes, keep_maps)), None, None, &mut None);
        (logits, Probes { layers: probes })
    }

    fn run(
        &self,
        tokens: Tensor<2, Int>,
        mut probes: Option<(&mut Vec<LayerProbe>, bool)>,
        edit: Option<&ResidualEdit>,
        masked: Option<Tensor<2, Bool>>,
        aux: &mut Option<Tensor<1>>,
    ) -> Tensor<3> {
        let device = tokens.device();
        let [b, t] = tokens.dims();
        let mut h = self.embed_tokens.forward(tokens);
        let (cos, sin, causal_mask) = self.tables(t, &h);
        // A given mask that hides exactly the future is the causal mask, and takes its (fused) path:
        // the same numbers as without one, not the general path's, which differ in the last bit.
        let causal = masked.as_ref().is_none_or(|m| m.clone().equal(causal_mask.clone()).all().into_scalar::<bool>());
        let mask = masked.unwrap_or(causal_mask);
        for (i, layer) in self.layers.iter().enumerate() {
            let mut slot = ProbeSlot { keep_maps: probes.as_ref().is_some_and(|p| p.1), probe: None };
            let (out, routing) = layer.forward(h, &cos, &sin, &mask, causal, probes.is_some().then_some(&mut slot));
            h = out;
            if let Some(r) = &routing {
                *aux = Some(match aux.take() {
                    Some(a) => a + r.aux.clone(),
                    None => r.aux.clone(),
                });
            }
            if let Some(e) = edit.filter(|e| e.layer == i) {
                let value = Tensor::<3>::full([b, 1, 1], e.value, &device).cast(h.dtype());
                h = h.slice_assign([0..b, e.position..e.position + 1, e.channel..e.channel + 1], value);
            }
            if let Some((out, _)) = probes.as_mut() {
                let attention = slot.probe.expect("the attention fills its probe");
                out.push(LayerProbe { attention, residual: h.clone(), routing });
            }
        }
        logits(self.lm_head.as_ref(), &self.embed_tokens, rms_norm(&self.norm, h))
    }

    /// The RoPE tables for positions `0..t` in the stream's dtype (bf16 under `cast_parameters`),
    /// and the causal mask, on the device of `stream` (`[batch, t, d_model]`).
    pub(crate) fn tables(&self, t: usize, stream: &Tensor<3>) -> (Tensor<2>, Tensor<2>, Tensor<2, Bool>) {
        let device = stream.device();
        let (cos, sin) = rope_tables(self.head_dim, self.rope_theta, self.rope_scaling, 0, t, &device);
        (cos.cast(stream.dtype()), sin.cast(stream.dtype()), Tensor::<2, Bool>::tril_mask([t, t], 0, &device))
    }
}

/// The LM head: `lm_head`, or the embedding's transpose when tied (`lm_head` absent).
///
/// # Shapes
/// - h: `[batch, seq, d_model]` → `[batch, seq, vocab]`
pub(crate) fn logits(lm_head: Option<&Linear>, embed_tokens: &Embedding, h: Tensor<3>) -> Tensor<3> {
    match lm_head {
        Some(head) => head.forward(h),
        None => {
            let [b, t, d] = h.dims();
            let emb = embed_tokens.weight.val(); // [vocab, d]
            let vocab = emb.dims()[0];
            h.reshape([b * t, d]).matmul(emb.transpose()).reshape([b, t, vocab])
        }
    }
}

/// Mean next-token cross-entropy: position `i` predicts `targets[i]`.
///
/// # Shapes
/// - logits: `[batch, seq, vocab]`, targets: `[batch, seq]` → `[1]`
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    token_log_likelihood(logits, targets).mean().neg()
}

/// Cross-entropy over the positions where `mask` is 1 (padding has 0), averaged over them.
///
/// # Shapes
/// - logits: `[batch, seq, vocab]`, targets and mask: `[batch, seq]` → `[1]`
pub fn masked_cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<1> {
    let [b, t] = targets.dims();
    let nll = token_log_likelihood(logits, targets).reshape([b, t]).neg();
    let count = mask.clone().sum().clamp_min(1.0);
    (nll * mask).sum() / count
}

/// Negative log-likelihood of each target, `-log p(targets[b, i])`: per-position losses (for
/// loss by position, e.g. beyond the training length).
///
/// # Shapes
/// - logits: `[batch, seq, vocab]`, targets: `[batch, seq]` → `[batch, seq]`
pub fn token_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [b, t] = targets.dims();
    token_log_likelihood(logits, targets).reshape([b, t]).neg()
}

/// `log p(target)` at every position, `[batch, seq, 1]`, in f32 whatever the logits' dtype.
fn token_log_likelihood(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<3> {
    log_softmax(logits.cast(DType::F32), 2).gather(2, targets.unsqueeze_dim::<3>(2))
}
