//! A gatelab model as a Hugging Face checkpoint, in the gate layout asked for.

use super::{F32Buffer, GateLayout, HfModel, expected_shapes, gate_rows_per_head, gated_rows, gatelab_name, to_f32};
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::gate::{GatePosition, GateSpec, Granularity};
use crate::transformer::Transformer;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use safetensors::SafeTensors;
use serde_json::json;

/// Whether `config` can be written as a Qwen3 checkpoint, and in which layout: the baseline as
/// plain Qwen3, a G1 gate in the paper's KV-grouped layout.
pub fn export_layout(config: &ModelConfig) -> Result<GateLayout, ModelError> {
    export_layout_as(config, None)
}

/// As [`export_layout`], in the gate layout `requested` when given: `qwen3-next` holds an
/// elementwise gate, `separate` a headwise one, `kv-grouped` either.
pub fn export_layout_as(config: &ModelConfig, requested: Option<GateLayout>) -> Result<GateLayout, ModelError> {
    let refuse = |why: &str| Err(ModelError::Unsupported(format!("export: {why}")));
    if !config.qk_norm {
        return refuse("transformers' Qwen3 always applies QK-norm; this model has qk_norm: false");
    }
    if config.sandwich_norm {
        return refuse("sandwich norm has no place in the Qwen3 format");
    }
    if !config.moe.is_dense() {
        return refuse("a mixture-of-experts FFN has no place in the dense Qwen3 format");
    }
    if !config.switch_head.is_off() {
        return refuse("Switch-Head attention has no place in the Qwen3 format");
    }
    if config.ffn_width() == 0 {
        return refuse("an attention-only model (no FFN) has no place in the Qwen3 format");
    }
    if !config.cure.is_softmax() {
        return refuse(&format!("the Qwen3 format attends with softmax, not the sink cure {}", config.cure.name()));
    }
    if !config.extra_gates.is_empty() {
        return refuse(&format!("the Qwen3 format holds one gate, G1; this model has {}", config.gate_label()));
    }
    let g = &config.gate;
    if *g == GateSpec::BASELINE {
        return match requested {
            None | Some(GateLayout::None) => Ok(GateLayout::None),
            Some(l) => refuse(&format!("--layout {} places a gate, and this model has none", l.name())),
        };
    }
    let official = GateSpec { position: GatePosition::G1, granularity: g.granularity, ..GateSpec::default() };
    if *g != official {
        return refuse(&format!(
            "the Qwen3 format holds the baseline and the G1 sigmoid output gate (headwise or elementwise), not {}",
            g.label()
        ));
    }
    match (requested.unwrap_or(GateLayout::KvGrouped), g.granularity) {
        (GateLayout::KvGrouped, _) => Ok(GateLayout::KvGrouped),
        (GateLayout::HeadInterleaved, Granularity::Elementwise) => Ok(GateLayout::HeadInterleaved),
        (GateLayout::Separate, Granularity::Headwise) => Ok(GateLayout::Separate),
        (GateLayout::HeadInterleaved, _) => {
            refuse("--layout qwen3-next holds an elementwise gate (head_dim rows per head); this one is headwise")
        }
        (GateLayout::Separate, _) => {
            refuse("--layout separate holds one scalar gate per head (g_proj); this one is elementwise")
        }
        (GateLayout::None, _) => refuse("a gated model has a gate layout: kv-grouped, qwen3-next or separate"),
    }
}

/// A Hugging Face checkpoint's files, for the caller to write into one folder.
#[derive(Debug, Clone)]
pub struct HfCheckpoint {
    /// `config.json`.
    pub config_json: String,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
}

/// `model` (of `config`) as a Hugging Face Qwen3 checkpoint: `config.json` (with the paper's gate
/// flags when gated, and every field the authors' `modeling_qwen3.py` reads) and
/// `model.safetensors` (gated models in the official KV-grouped layout). With `special_ids`
/// (BOS, EOS, PAD), the config names them; the caller copies the `tokenizer.json` beside it.
pub fn export(
    model: &Transformer,
    config: &ModelConfig,
    special_ids: Option<[u32; 3]>,
) -> Result<HfCheckpoint, ModelError> {
    export_as(model, config, special_ids, None)
}

/// As [`export`], with the gate in `layout` when given ([`export_layout_as`]): `qwen3-next` writes
/// a `qwen3_next` checkpoint (every layer full attention with a dense MLP, full rotary embedding,
/// zero-centred norms) that transformers' `Qwen3NextForCausalLM` loads; `separate` a `qwen3` one
/// with Step-3.5's `use_head_wise_attn_gate` and a `g_proj` per layer.
pub fn export_as(
    model: &Transformer,
    config: &ModelConfig,
    special_ids: Option<[u32; 3]>,
    layout: Option<GateLayout>,
) -> Result<HfCheckpoint, ModelError> {
    let layout_kind = export_layout_as(config, layout)?;
    let c = config;
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter);
    model.save_into(&mut store).map_err(|e| ModelError::Unsupported(format!("export: {e}")))?;
    let bytes = store.get_bytes().map_err(|e| ModelError::Unsupported(format!("export: {e}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Unsupported(format!("export: {e}")))?;
    let get = |name: &str| -> Result<Vec<f32>, ModelError> {
        to_f32(&st.tensor(name).map_err(|e| ModelError::Unsupported(format!("export: {name}: {e}")))?, name)
    };
    let next = layout_kind == GateLayout::HeadInterleaved;
    let model_type = if next { "qwen3_next" } else { "qwen3" };
    let m = HfModel { config: c.clone(), layout: layout_kind, model_type: model_type.into(), zero_centred_norms: next };
    let per = gate_rows_per_head(c);
    let shapes = expected_shapes(&m);
    let layout: Vec<(String, Vec<usize>)> = shapes.iter().map(|(n, s)| (n.clone(), s.clone())).collect();
    let mut buffer = F32Buffer::new(&layout, Some(json!({ "format": "pt" })));
    for hf_name in shapes.keys() {
        let ours = gatelab_name(hf_name).expect("every expected name maps");
        if hf_name.ends_with("self_attn.q_proj.weight") && layout_kind.in_q_proj() {
            let (q, gate) = (get(&ours)?, get(&ours.replace("attn.q_proj", "attn.gate.gate_proj"))?);
            let d = c.d_model;
            let stacked: Vec<&[f32]> = q.chunks(d).chain(gate.chunks(d)).collect();
            let rows = gated_rows(layout_kind, c.n_heads, c.n_kv_heads, c.head_dim, per);
            let mut data = vec![0f32; rows.len() * d];
            for (i, &src) in rows.iter().enumerate() {
                data[src * d..(src + 1) * d].copy_from_slice(stacked[i]);
            }
            buffer.put(hf_name, &data);
        } else if next && hf_name.ends_with("norm.weight") {
            // Qwen3-Next's RMSNorms compute (1 + w)·x̂.
            buffer.put(hf_name, &get(&ours)?.iter().map(|w| w - 1.0).collect::<Vec<_>>());
        } else {
            buffer.put(hf_name, &get(&ours)?);
        }
    }
    let mut cfg = json!({
        "architectures": [if next { "Qwen3NextForCausalLM" } else { "Qwen3ForCausalLM" }],
        "model_type": model_type,
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.ffn_width(),
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "rope_scaling": null,
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": false,
        "qkv_bias": false,
        "use_qk_norm": true,
        "use_sliding_window": false,
        "sliding_window": null,
        "max_window_layers": c.n_layers,
        "attention_dropout": 0.0,
        "initializer_range": c.init_std,
        "use_cache": true,
        "torch_dtype": "float32",
    });
    match layout_kind {
        GateLayout::KvGrouped => {
            cfg["headwise_attn_output_gate"] = json!(c.gate.granularity == Granularity::Headwise);
            cfg["elementwise_attn_output_gate"] = json!(c.gate.granularity == Granularity::Elementwise);
        }
        GateLayout::Separate => cfg["use_head_wise_attn_gate"] = json!(true),
        GateLayout::HeadInterleaved => {
            cfg["layer_types"] = json!(vec!["full_attention"; c.n_layers]);
            cfg["mlp_only_layers"] = json!((0..c.n_layers).collect::<Vec<_>>());
            cfg["partial_rotary_factor"] = json!(1.0);
            cfg["num_experts"] = json!(0);
        }
        GateLayout::None => {}
    }
    if let Some([bos, eos, pad]) = special_ids {
        (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) = (json!(bos), json!(eos), json!(pad));
    }
    Ok(HfCheckpoint { config_json: serde_json::to_string_pretty(&cfg).expect("json") + "\n", weights: buffer.bytes })
}
