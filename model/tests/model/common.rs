//! Helpers shared by the model tests.

use burn::tensor::{Device, Int, Tensor, TensorData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A tiny deterministic generator (tests need reproducible tokens, not good randomness).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Random `tokens` and `targets` of shape `[batch, seq]`, and the same as JSON for the reference.
pub fn batch_tensors(
    rng: &mut Lcg,
    batch: usize,
    seq: usize,
    vocab: usize,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, String) {
    let mut draw =
        || (0..batch).map(|_| (0..seq).map(|_| rng.below(vocab) as i64).collect::<Vec<_>>()).collect::<Vec<_>>();
    let (tokens, targets) = (draw(), draw());
    let json = serde_json::json!({ "tokens": tokens, "targets": targets }).to_string();
    let as_tensor =
        |rows: &Vec<Vec<i64>>| Tensor::<2, Int>::from_data(TensorData::new(rows.concat(), [batch, seq]), device);
    (as_tensor(&tokens), as_tensor(&targets), json)
}

/// Every tensor of a safetensors file as f32 values.
pub fn read_safetensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (name, values)
        })
        .collect()
}

/// The Python that runs the PyTorch reference, or `None` (with the reason printed) when there is
/// none and `GATELAB_REQUIRE_TORCH` is not set.
pub fn reference_python() -> Option<String> {
    let required = std::env::var("GATELAB_REQUIRE_TORCH").is_ok_and(|v| v == "1");
    let python = std::env::var("GATELAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import torch, safetensors, transformers"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "no Python with torch, safetensors and transformers at `{python}` (run scripts/setup-libtorch.sh; scripts/env.sh sets GATELAB_PYTHON)"
    );
    assert!(!required, "GATELAB_REQUIRE_TORCH=1 but {why}");
    println!("SKIPPED: {why}");
    None
}

/// A fresh temporary directory for one test.
pub fn tempfile_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatelab-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// This crate's folder, read when the test runs (`cargo test` sets `CARGO_MANIFEST_DIR`), not
/// when it was compiled: a shared build cache may hold test binaries compiled in another clone.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The autodiff devices of the backends with gatelab's fused kernels: flex, and libtorch's CPU
/// device with the `tch` feature.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut out = vec![("flex", Device::flex().autodiff())];
    #[cfg(feature = "tch")]
    #[allow(deprecated)] // burn-tch is deprecated upstream; gatelab keeps it
    out.push(("tch", Device::libtorch().autodiff()));
    out
}
