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
//! | `layers.L.attn.gate.gate_proj.weight` | `[width, k]` (input-dependent gate; `k` = `d_model` unless `input_dims` narrows it) |
//! | `layers.L.attn.gate.gate_theta` | `[width]` (input-independent gate) |
//! | `layers.L.attn.extra_gates.I.{gate_proj.weight, gate_theta}` | the same, for `extra_gates[I]` |
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
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{DType, Tensor};
use std::path::Path;

/// Every parameter of `model` as the bytes of a safetensors file (whoever writes them chooses
/// where and how: the model knows nothing of files).
pub fn to_safetensors(model: &Transformer) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter);
    model.save_into(&mut store).map_err(|e| ModelError::Unsupported(format!("safetensors: {e}")))?;
    let bytes = store.get_bytes().map_err(|e| ModelError::Unsupported(format!("safetensors: {e}")))?;
    canonical_header(bytes)
}

/// The same safetensors file with its JSON header's keys in sorted order. Burn writes the header's
/// `__metadata__` from a hash map, in a new order each process, so two identical models gave files
/// with other bytes; sorted, identical weights give identical files (and checksums). The header
/// keeps its length (it is padded with spaces, as the format allows), so the tensors' bytes and
/// offsets are untouched.
pub fn canonical_header(mut bytes: Vec<u8>) -> Result<Vec<u8>, ModelError> {
    let bad = |why: &str| ModelError::Unsupported(format!("safetensors: {why}"));
    let len =
        bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).ok_or_else(|| bad("no header"))?;
    let end = usize::try_from(len).ok().and_then(|l| l.checked_add(8)).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| bad("header longer than the file"))?;
    let header: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(&e.to_string()))?;
    let header = header.into_iter().map(|(k, v)| (k, sorted(v))).collect::<std::collections::BTreeMap<_, _>>();
    let mut text = serde_json::to_vec(&header).expect("json values serialise");
    if text.len() > end - 8 {
        return Err(bad("the sorted header is longer than the original"));
    }
    text.resize(end - 8, b' ');
    bytes[8..end].copy_from_slice(&text);
    Ok(bytes)
}

/// A JSON value with every object's keys sorted, whatever serde_json's map order.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let map: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::to_value(map).expect("json values serialise")
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Loads `path` into `model`, which must have the same config. Missing, unknown and misshapen
/// tensors are refused by name.
pub fn load_safetensors(model: Transformer, path: &Path) -> Result<Transformer, ModelError> {
    load_safetensors_adding(model, path, |_| false)
}

/// Loads `path` into `model`, which must have the same config but for the tensors that `added`
/// accepts: those may be missing from the file, and keep `model`'s values (a gate added to a model
/// trained without one). Other missing, unknown and misshapen tensors are refused by name.
pub fn load_safetensors_adding(
    mut model: Transformer,
    path: &Path,
    added: impl Fn(&str) -> bool,
) -> Result<Transformer, ModelError> {
    if !path.is_file() {
        return Err(ModelError::file(path, "no such weights file"));
    }
    let mut store = SafetensorsStore::from_file(path).with_from_adapter(PyTorchToBurnAdapter).allow_partial(true);
    let result = model.load_from(&mut store).map_err(|e| ModelError::file(path, e))?;
    let mut problems = Vec::new();
    let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).filter(|p| !added(p)).collect();
    if !missing.is_empty() {
        problems.push(format!("missing tensors: {}", missing.join(", ")));
    }
    if !result.unused.is_empty() {
        problems.push(format!("unknown tensors: {}", result.unused.join(", ")));
    }
    if !result.errors.is_empty() {
        problems.push(result.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "));
    }
    if !problems.is_empty() {
        return Err(ModelError::file(path, problems.join("; ")));
    }
    // Only a file in another dtype is mapped: mapping initialises every parameter, and those the
    // file does not hold (`added`) initialise lazily, in the forward pass's order.
    let mut other = NotF32(false);
    model.visit(&mut other);
    Ok(if other.0 { model.map(&mut Upcast) } else { model })
}

/// Whether some loaded parameter is not f32.
struct NotF32(bool);

impl ModuleVisitor for NotF32 {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0 |= param.is_initialized() && param.val().dtype() != DType::F32;
    }
}

/// Every float parameter that is not f32 (a checkpoint saved in bf16 or f16 by another tool) cast
/// to f32, as a parameter of its own that trains as before: the model computes in f32 and its
/// mixed precision makes its own bf16 copy (`crate::precision`).
struct Upcast;

impl ModuleMapper for Upcast {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            if t.dtype() == DType::F32 {
                return t;
            }
            let trains = t.is_require_grad();
            t.cast(DType::F32).detach().set_require_grad(trains)
        })
    }
}
