//! Weights interchange with PyTorch as safetensors.
//!
//! Tensor names are the module paths below, in PyTorch layout (`Linear` weights `[out, in]`,
//! RMSNorm weights named `weight`), with `L` the layer index:
//!
//! | name | shape |
//! |---|---|
//! | `embed_tokens.weight` | `[vocab, d_model]` |
//! | `layers.L.attn_norm.weight` | `[d_model]` |
//! | `layers.L.attn.{q,k,v,o}_proj.weight` | `[h·hd, d]`, `[kv·hd, d]`, `[kv·hd, d]`, `[d, h·hd]` |
//! | `layers.L.attn.{q,k}_norm.weight` | `[hd]` (with QK-norm) |
//! | `layers.L.attn.gate.gate_proj.weight` | `[width, d_model]` (input-dependent gate) |
//! | `layers.L.attn.gate.gate_theta` | `[width]` (input-independent gate) |
//! | `layers.L.attn.sdpa_norm.weight` | `[hd]` (SDPA RMSNorm ablation) |
//! | `layers.L.attn.sink_logit` | `[h]` (sink cure `sink_logit`) |
//! | `layers.L.attn.kv_bias_key`, `layers.L.attn.kv_bias_value` | `[kv, hd]` (sink cure `kv_bias`) |
//! | `layers.L.attn_out_norm.weight`, `layers.L.ffn_out_norm.weight` | `[d_model]` (sandwich norm) |
//! | `layers.L.ffn_norm.weight` | `[d_model]` |
//! | `layers.L.ffn.{gate,up,down}_proj.weight` | `[d_ff, d]`, `[d_ff, d]`, `[d, d_ff]` |
//! | `norm.weight` | `[d_model]` |
//! | `lm_head.weight` | `[vocab, d_model]` (untied head) |
//!
//! The gate's `width` is `heads × scores_per_head` with the heads of its site in order and, per
//! head, its scores (see [`crate::gate::GateSpec::logit_width`]).

use crate::error::ModelError;
use crate::transformer::Transformer;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use std::path::Path;

/// Every parameter of `model` as the bytes of a safetensors file (whoever writes them chooses
/// where and how: the model knows nothing of files).
pub fn to_safetensors(model: &Transformer) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter);
    model.save_into(&mut store).map_err(|e| ModelError::Unsupported(format!("safetensors: {e}")))?;
    store.get_bytes().map_err(|e| ModelError::Unsupported(format!("safetensors: {e}")))
}

/// Loads `path` into `model`, which must have the same config. Missing, unknown and misshapen
/// tensors are refused by name.
pub fn load_safetensors(mut model: Transformer, path: &Path) -> Result<Transformer, ModelError> {
    if !path.is_file() {
        return Err(ModelError::file(path, "no such weights file"));
    }
    let mut store = SafetensorsStore::from_file(path).with_from_adapter(PyTorchToBurnAdapter).allow_partial(true);
    let result = model.load_from(&mut store).map_err(|e| ModelError::file(path, e))?;
    let mut problems = Vec::new();
    if !result.missing.is_empty() {
        problems.push(format!(
            "missing tensors: {}",
            result.missing.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !result.unused.is_empty() {
        problems.push(format!("unknown tensors: {}", result.unused.join(", ")));
    }
    if !result.errors.is_empty() {
        problems.push(result.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "));
    }
    if problems.is_empty() { Ok(model) } else { Err(ModelError::file(path, problems.join("; "))) }
}
