//! Weights interchange with Hugging Face Qwen3-format checkpoint directories (`config.json`,
//! `model.safetensors` or shards listed in `model.safetensors.index.json`, `tokenizer.json`),
//! into and out of the same [`Transformer`] every other path uses.
//!
//! Four layouts of the attention-output gate (G1, sigmoid, multiplicative, input-dependent) are
//! read and written; the gate's weights sit in a widened `q_proj` in two of them
//! (`docs/paper.md` §8) and in a tensor of their own in the fourth:
//!
//! - [`GateLayout::None`]: plain Qwen3 (`model_type: qwen3`), the baseline.
//! - [`GateLayout::KvGrouped`]: the paper's released models (`qiuzh20/gated_attention`,
//!   `model_type: qwen3` with `headwise_attn_output_gate` or `elementwise_attn_output_gate`):
//!   `q_proj` rows grouped per KV head — for KV head `k`, the queries of its `G = n_heads /
//!   n_kv_heads` heads (`G·hd` rows), then their gates (`G` rows headwise, `G·hd` elementwise).
//! - [`GateLayout::HeadInterleaved`]: Qwen3-Next (`model_type: qwen3_next`, elementwise): per
//!   head `h`, its `hd` query rows then its `hd` gate rows. Its RMSNorms are zero-centred
//!   (`(1 + w)·x̂`), converted on import. Only Qwen3-Next checkpoints whose layers are all full
//!   attention with dense MLPs and full rotary embedding are expressible here; others are refused
//!   naming what is missing.
//! - [`GateLayout::Separate`]: one scalar gate per head in its own `self_attn.g_proj.weight`
//!   (`[n_heads, d_model]`), applied as `σ` per head before `o_proj`: Step-3.5's
//!   `use_head_wise_attn_gate` (stepfun-ai, `modeling_step3p5.py`), read here on a `qwen3`
//!   checkpoint whose config sets that flag.
//!
//! `export` writes the KV-grouped layout by default and the other two on request
//! ([`export_as`]). A checkpoint whose `q_proj` is wider than its queries while its config names
//! no gate is refused with the shapes found.
//!
//! Weights are read as f32, f16 or bf16 (converted to f32: the model computes in f32). Every
//! tensor is checked: missing, unknown and misshapen tensors are refused by name.

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::gate::{GatePosition, GateSpec, Granularity};
use safetensors::{Dtype, tensor::TensorView};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod export;
mod import;

pub use export::{HfCheckpoint, export, export_as, export_layout, export_layout_as};
pub use import::import;

/// Where the gate's weights sit in `q_proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateLayout {
    /// No gate (plain Qwen3).
    None,
    /// Grouped per KV head (the paper's released models).
    KvGrouped,
    /// Interleaved per head (Qwen3-Next).
    HeadInterleaved,
    /// A scalar gate per head in its own `g_proj` tensor (Step-3.5).
    Separate,
}

impl GateLayout {
    /// Whether the gate's rows sit inside `q_proj`.
    fn in_q_proj(self) -> bool {
        matches!(self, GateLayout::KvGrouped | GateLayout::HeadInterleaved)
    }

    /// Its name on the command line (`gatelab export --layout`).
    pub fn name(self) -> &'static str {
        match self {
            GateLayout::None => "none",
            GateLayout::KvGrouped => "kv-grouped",
            GateLayout::HeadInterleaved => "qwen3-next",
            GateLayout::Separate => "separate",
        }
    }

    /// The layout named `name` (`kv-grouped`, `qwen3-next`, `separate`).
    pub fn parse(name: &str) -> Result<GateLayout, String> {
        [GateLayout::KvGrouped, GateLayout::HeadInterleaved, GateLayout::Separate]
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| format!("{name:?} is not a gate layout (kv-grouped, qwen3-next or separate)"))
    }
}

/// A checkpoint's architecture, read from its `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfModel {
    /// The equivalent gatelab config.
    pub config: ModelConfig,
    /// The gate's layout in `q_proj`.
    pub layout: GateLayout,
    /// `model_type`.
    pub model_type: String,
    /// Whether RMSNorm weights are zero-centred (Qwen3-Next).
    pub zero_centred_norms: bool,
}

fn field<'a>(cfg: &'a Value, key: &str, path: &Path) -> Result<&'a Value, ModelError> {
    cfg.get(key).filter(|v| !v.is_null()).ok_or_else(|| ModelError::file(path, format!("no {key:?}")))
}

fn usize_of(cfg: &Value, key: &str, path: &Path) -> Result<usize, ModelError> {
    field(cfg, key, path)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| ModelError::file(path, format!("{key:?} is not a count")))
}

/// Reads `dir/config.json` into the equivalent gatelab config; what cannot be expressed is refused
/// naming the field.
pub fn read_config(dir: &Path) -> Result<HfModel, ModelError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::file(&path, e))?;
    let cfg: Value = serde_json::from_str(&text).map_err(|e| ModelError::file(&path, e))?;
    let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
    let refuse = |what: String| Err(ModelError::file(&path, what));
    let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    let n_layers = usize_of(&cfg, "num_hidden_layers", &path)?;
    let (layout, zero_centred_norms, granularity) = match model_type.as_str() {
        "qwen3" => match (
            flag("headwise_attn_output_gate"),
            flag("elementwise_attn_output_gate"),
            flag("use_head_wise_attn_gate"),
        ) {
            (false, false, false) => (GateLayout::None, false, None),
            (true, false, false) => (GateLayout::KvGrouped, false, Some(Granularity::Headwise)),
            (false, true, false) => (GateLayout::KvGrouped, false, Some(Granularity::Elementwise)),
            (false, false, true) => (GateLayout::Separate, false, Some(Granularity::Headwise)),
            _ => {
                return refuse(
                    "more than one of headwise_attn_output_gate, elementwise_attn_output_gate and \
                     use_head_wise_attn_gate is set: a checkpoint has one gate layout"
                        .into(),
                );
            }
        },
        "qwen3_next" => {
            if let Some(types) = cfg.get("layer_types").and_then(Value::as_array) {
                if let Some(i) = types.iter().position(|t| t.as_str() != Some("full_attention")) {
                    return refuse(format!(
                        "layer {i} is {} (only full-attention layers are supported; Gated DeltaNet is not)",
                        types[i]
                    ));
                }
            } else {
                return refuse("no \"layer_types\": Qwen3-Next's default interleaves Gated DeltaNet layers, which gatelab does not implement".into());
            }
            let dense: Vec<u64> = cfg
                .get("mlp_only_layers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            if let Some(i) = (0..n_layers as u64).find(|i| !dense.contains(i)) {
                return refuse(format!(
                    "layer {i} has a mixture-of-experts MLP (\"mlp_only_layers\" must list every layer)"
                ));
            }
            if cfg.get("partial_rotary_factor").and_then(Value::as_f64).unwrap_or(0.25) != 1.0 {
                return refuse("\"partial_rotary_factor\" must be 1 (gatelab rotates the whole head)".into());
            }
            (GateLayout::HeadInterleaved, true, Some(Granularity::Elementwise))
        }
        other => return refuse(format!("model_type {other:?} is not supported (expected qwen3 or qwen3_next)")),
    };
    if flag("attention_bias") {
        return refuse("\"attention_bias\": true is not supported (Qwen3 has no projection biases)".into());
    }
    if let Some(act) = cfg.get("hidden_act").and_then(Value::as_str)
        && act != "silu"
    {
        return refuse(format!("\"hidden_act\": {act:?} is not supported (SwiGLU with silu only)"));
    }
    if cfg.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        return refuse(
            "\"rope_scaling\" is set: evaluate scaling with gatelab's own (gatelab eval-length) on the unscaled model"
                .into(),
        );
    }
    if cfg.get("use_qk_norm").and_then(Value::as_bool) == Some(false) {
        return refuse("\"use_qk_norm\": false is not supported by transformers' Qwen3".into());
    }
    let d_model = usize_of(&cfg, "hidden_size", &path)?;
    let n_heads = usize_of(&cfg, "num_attention_heads", &path)?;
    let head_dim = match cfg.get("head_dim").and_then(Value::as_u64) {
        Some(h) => h as usize,
        None => d_model / n_heads.max(1),
    };
    let gate = match granularity {
        None => GateSpec::BASELINE,
        Some(granularity) => GateSpec { position: GatePosition::G1, granularity, ..GateSpec::default() },
    };
    let config = ModelConfig {
        vocab_size: usize_of(&cfg, "vocab_size", &path)?,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads: cfg.get("num_key_value_heads").and_then(Value::as_u64).map_or(n_heads, |v| v as usize),
        head_dim,
        d_ff: usize_of(&cfg, "intermediate_size", &path)?,
        qk_norm: true,
        tie_embeddings: cfg.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(model_type == "qwen3"),
        sandwich_norm: false,
        norm_eps: cfg.get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        rope_theta: cfg.get("rope_theta").and_then(Value::as_f64).unwrap_or(10_000.0),
        init_std: cfg.get("initializer_range").and_then(Value::as_f64).unwrap_or(0.02),
        gate,
        ..ModelConfig::default()
    };
    config.validate().map_err(|e| ModelError::file(&path, e))?;
    Ok(HfModel { config, layout, model_type, zero_centred_norms })
}

/// The safetensors files of a checkpoint: `model.safetensors`, or every shard named by
/// `model.safetensors.index.json` (each must exist).
pub fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::file(&index, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| ModelError::file(&index, e))?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| ModelError::file(&index, "no \"weight_map\""))?;
        let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
        files.sort();
        files.dedup();
        let files: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(ModelError::file(
                dir,
                format!(
                    "missing shard {} (named by model.safetensors.index.json)",
                    missing.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        Ok(vec![single])
    } else {
        Err(ModelError::file(dir, "no model.safetensors or model.safetensors.index.json"))
    }
}

/// The checkpoint's tensor names and shapes for `m` (Hugging Face names, `[out, in]` layout).
pub fn expected_shapes(m: &HfModel) -> BTreeMap<String, Vec<usize>> {
    let c = &m.config;
    let (d, h, kv, hd) = (c.d_model, c.n_heads, c.n_kv_heads, c.head_dim);
    let gate_rows = match (m.layout, c.gate.granularity) {
        (GateLayout::None | GateLayout::Separate, _) => 0,
        (_, Granularity::Headwise) => h,
        (_, Granularity::Elementwise) => h * hd,
    };
    let mut s = BTreeMap::new();
    s.insert("model.embed_tokens.weight".into(), vec![c.vocab_size, d]);
    s.insert("model.norm.weight".into(), vec![d]);
    if !c.tie_embeddings {
        s.insert("lm_head.weight".into(), vec![c.vocab_size, d]);
    }
    let ff = c.ffn_width();
    for l in 0..c.n_layers {
        let p = format!("model.layers.{l}");
        for (k, v) in [
            ("input_layernorm.weight", vec![d]),
            ("post_attention_layernorm.weight", vec![d]),
            ("self_attn.q_proj.weight", vec![h * hd + gate_rows, d]),
            ("self_attn.k_proj.weight", vec![kv * hd, d]),
            ("self_attn.v_proj.weight", vec![kv * hd, d]),
            ("self_attn.o_proj.weight", vec![d, h * hd]),
            ("self_attn.q_norm.weight", vec![hd]),
            ("self_attn.k_norm.weight", vec![hd]),
            ("mlp.gate_proj.weight", vec![ff, d]),
            ("mlp.up_proj.weight", vec![ff, d]),
            ("mlp.down_proj.weight", vec![d, ff]),
        ] {
            s.insert(format!("{p}.{k}"), v);
        }
        if m.layout == GateLayout::Separate {
            s.insert(format!("{p}.self_attn.g_proj.weight"), vec![h, d]);
        }
    }
    s
}

/// A tensor as f32, whatever its stored float type.
fn to_f32(view: &TensorView, name: &str) -> Result<Vec<f32>, ModelError> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => {
            return Err(ModelError::Unsupported(format!(
                "{name}: dtype {other:?} is not a float type gatelab reads (f32, bf16, f16)"
            )));
        }
    })
}

/// Row permutation between a gated `q_proj` (rows: queries and gates in `layout`) and gatelab's
/// separate `q_proj` (`h·hd` rows, head-major) and `gate_proj` (`h·per` rows, head-major): the
/// checkpoint row holding gatelab row `i` of `[q_proj; gate_proj]`.
fn gated_rows(layout: GateLayout, h: usize, kv: usize, hd: usize, per: usize) -> Vec<usize> {
    let g = h / kv;
    let mut src = vec![0; h * hd + h * per];
    for head in 0..h {
        let (q_at, gate_at) = match layout {
            // KV head k's block: [G·hd queries | G·per gates].
            GateLayout::KvGrouped => {
                let (k, j) = (head / g, head % g);
                let block = k * g * (hd + per);
                (block + j * hd, block + g * hd + j * per)
            }
            // Head h's block: [hd queries | per gates].
            GateLayout::HeadInterleaved => (head * (hd + per), head * (hd + per) + hd),
            GateLayout::None | GateLayout::Separate => unreachable!("no gate rows in q_proj"),
        };
        for r in 0..hd {
            src[head * hd + r] = q_at + r;
        }
        for r in 0..per {
            src[h * hd + head * per + r] = gate_at + r;
        }
    }
    src
}

/// Rows of a G1 gate's projection per head: 1 headwise, `head_dim` elementwise, 0 ungated.
fn gate_rows_per_head(c: &ModelConfig) -> usize {
    if c.gate.is_gated() {
        c.gate.logit_width(c.gate.site(c.d_model, c.n_heads, c.n_kv_heads, c.head_dim)) / c.n_heads
    } else {
        0
    }
}

/// A safetensors file of f32 tensors laid out up front (header, then each tensor's bytes at its
/// offset), filled tensor by tensor.
struct F32Buffer {
    bytes: Vec<u8>,
    at: BTreeMap<String, (usize, usize)>,
}

impl F32Buffer {
    fn new(layout: &[(String, Vec<usize>)], metadata: Option<Value>) -> Self {
        let mut header = serde_json::Map::new();
        if let Some(m) = metadata {
            header.insert("__metadata__".into(), m);
        }
        let (mut offset, mut at) = (0usize, BTreeMap::new());
        for (name, shape) in layout {
            let len = shape.iter().product::<usize>() * 4;
            header.insert(
                name.clone(),
                json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len] }),
            );
            at.insert(name.clone(), (offset, len));
            offset += len;
        }
        let mut text = serde_json::to_string(&header).expect("json");
        while !text.len().is_multiple_of(8) {
            text.push(' ');
        }
        let start = 8 + text.len();
        let mut bytes = Vec::with_capacity(start + offset);
        bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes.resize(start + offset, 0);
        at.values_mut().for_each(|(o, _)| *o += start);
        Self { bytes, at }
    }

    fn put(&mut self, name: &str, values: &[f32]) {
        let (offset, len) = self.at[name];
        assert_eq!(values.len() * 4, len, "{name}: planned size");
        for (chunk, v) in self.bytes[offset..offset + len].chunks_exact_mut(4).zip(values) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// gatelab's name of a checkpoint tensor (the q_proj of a gated model is split separately).
fn gatelab_name(hf: &str) -> Option<String> {
    if hf == "model.embed_tokens.weight" {
        return Some("embed_tokens.weight".into());
    }
    if hf == "model.norm.weight" {
        return Some("norm.weight".into());
    }
    if hf == "lm_head.weight" {
        return Some(hf.into());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (l, rest) = rest.split_once('.')?;
    let mapped = match rest {
        "input_layernorm.weight" => "attn_norm.weight".to_string(),
        "post_attention_layernorm.weight" => "ffn_norm.weight".to_string(),
        // Step-3.5's separate per-head gate.
        "self_attn.g_proj.weight" => "attn.gate.gate_proj.weight".to_string(),
        r => {
            if let Some(a) = r.strip_prefix("self_attn.") {
                format!("attn.{a}")
            } else if let Some(m) = r.strip_prefix("mlp.") {
                format!("ffn.{m}")
            } else {
                return None;
            }
        }
    };
    Some(format!("layers.{l}.{mapped}"))
}
