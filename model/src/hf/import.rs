//! A Hugging Face checkpoint directory into a gatelab [`Transformer`]: every tensor checked by
//! name and shape, converted to f32 in place, the gate's rows split out of `q_proj`.

use super::{
    F32Buffer, GateLayout, HfModel, expected_shapes, gate_rows_per_head, gated_rows, gatelab_name, read_config,
    shard_files, to_f32,
};
use crate::error::ModelError;
use crate::transformer::Transformer;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;
use safetensors::SafeTensors;
use std::path::Path;

/// Imports a checkpoint directory into a gatelab model on `device`.
pub fn import(dir: &Path, device: &Device) -> Result<(Transformer, HfModel), ModelError> {
    let m = read_config(dir)?;
    let files = shard_files(dir)?;
    let expected = expected_shapes(&m);
    let c = &m.config;
    let per = gate_rows_per_head(c);
    // gatelab's tensors, laid out once in one f32 safetensors buffer that every checkpoint tensor
    // is converted into in place: the import holds the shard being read, this buffer and the
    // model, never a second copy of the weights.
    let hq = c.n_heads * c.head_dim;
    let mut layout: Vec<(String, Vec<usize>)> = Vec::new();
    for (name, shape) in &expected {
        let ours = gatelab_name(name).expect("every expected name maps");
        if name.ends_with("self_attn.q_proj.weight") && m.layout.in_q_proj() {
            layout.push((ours.clone(), vec![hq, c.d_model]));
            layout.push((ours.replace("attn.q_proj", "attn.gate.gate_proj"), vec![c.n_heads * per, c.d_model]));
        } else {
            layout.push((ours, shape.clone()));
        }
    }
    let mut buffer = F32Buffer::new(&layout, None);
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| ModelError::file(file, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::file(file, e))?;
        for (name, view) in st.tensors() {
            // A tied checkpoint may still carry lm_head: it is the embedding.
            if name == "lm_head.weight" && c.tie_embeddings {
                continue;
            }
            let Some(shape) = expected.get(&name) else {
                return Err(ModelError::file(file, format!("unknown tensor {name} (shape {:?})", view.shape())));
            };
            if view.shape() != shape.as_slice() {
                let wider_q = name.ends_with("self_attn.q_proj.weight") && view.shape().first() > shape.first();
                let unknown_gate = if wider_q && m.layout == GateLayout::None {
                    format!(
                        " ({} rows beyond the {hq} queries: a gate in a layout the config does not name; gatelab \
                         knows kv-grouped (headwise_attn_output_gate or elementwise_attn_output_gate), qwen3-next \
                         (model_type qwen3_next) and separate (use_head_wise_attn_gate, g_proj))",
                        view.shape()[0] - hq
                    )
                } else {
                    String::new()
                };
                return Err(ModelError::file(
                    file,
                    format!("tensor {name} has shape {:?}, the config implies {shape:?}{unknown_gate}", view.shape()),
                ));
            }
            seen.insert(name.clone());
            let mut data = to_f32(&view, &name)?;
            if m.zero_centred_norms && name.ends_with("norm.weight") {
                data.iter_mut().for_each(|w| *w += 1.0);
            }
            let ours = gatelab_name(&name).expect("every expected name maps");
            if name.ends_with("self_attn.q_proj.weight") && m.layout.in_q_proj() {
                let d = c.d_model;
                let rows = gated_rows(m.layout, c.n_heads, c.n_kv_heads, c.head_dim, per);
                let pick = |range: std::ops::Range<usize>| -> Vec<f32> {
                    range.flat_map(|i| data[rows[i] * d..(rows[i] + 1) * d].iter().copied()).collect()
                };
                buffer.put(&ours, &pick(0..hq));
                buffer.put(&ours.replace("attn.q_proj", "attn.gate.gate_proj"), &pick(hq..hq + c.n_heads * per));
            } else {
                buffer.put(&ours, &data);
            }
        }
    }
    if let Some(missing) = expected.keys().find(|k| !seen.contains(*k)) {
        return Err(ModelError::file(dir, format!("missing tensor {missing}")));
    }
    let bytes = buffer.bytes;
    let mut model = m.config.init(device).map_err(|e| ModelError::file(dir, e))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes)).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.load_from(&mut store).map_err(|e| ModelError::file(dir, e))?;
    if !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(ModelError::file(
            dir,
            format!("internal mapping left missing {:?}, unused {:?}", result.missing, result.unused),
        ));
    }
    Ok((model, m))
}
