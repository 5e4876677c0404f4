//! Helpers shared by the `gatelab` binary's integration tests (each test file includes this
//! module; not every file uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The small model the backend, optimiser and collective tests train: 2 layers, d 32, two query
/// heads sharing one KV head of 16, a vocabulary of 17.
pub fn small_model_config() -> gatelab_model::ModelConfig {
    gatelab_model::ModelConfig {
        vocab_size: 17,
        d_model: 32,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 16,
        d_ff: 48,
        ..Default::default()
    }
}

/// Runs the `gatelab` binary: exit code, stdout, stderr.
pub fn gatelab(args: &[&str]) -> (i32, String, String) {
    gatelab_in(args, Path::new("."), &[])
}

/// Runs the `gatelab` binary in `cwd` with extra environment variables.
pub fn gatelab_in(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatelab"))
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The arguments of a sweep of `grid` (a built-in name or a JSON path) at the tiny preset into
/// `out`, without a report, followed by `extra` (overrides, flags).
pub fn tiny_sweep_args(grid: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let head =
        ["sweep", grid, "--preset", "tiny", "--out", &out.display().to_string(), "--no-report"].map(String::from);
    head.into_iter().chain(extra.iter().map(|a| a.to_string())).collect()
}

/// Runs [`tiny_sweep_args`]: exit code, stdout, stderr.
pub fn tiny_sweep(grid: &str, out: &Path, extra: &[&str]) -> (i32, String, String) {
    let args = tiny_sweep_args(grid, out, extra);
    gatelab(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// An empty folder of this test process, `gatelab-<tag>-<pid>` in the temporary directory.
pub fn scratch(tag: &str) -> PathBuf {
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

/// The Python of `GATELAB_PYTHON` (else `python3`) when it imports `modules` (e.g. "torch,
/// transformers"); otherwise prints SKIPPED and returns `None`, or fails under
/// `GATELAB_REQUIRE_TORCH=1`.
pub fn python_with(modules: &str) -> Option<String> {
    let python = std::env::var("GATELAB_PYTHON").unwrap_or_else(|_| "python3".into());
    if Command::new(&python).args(["-c", &format!("import {modules}")]).output().is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    assert!(
        std::env::var("GATELAB_REQUIRE_TORCH").as_deref() != Ok("1"),
        "GATELAB_REQUIRE_TORCH=1 but `import {modules}` fails with {python}"
    );
    println!("SKIPPED: no Python with {modules} at `{python}` (scripts/setup-libtorch.sh)");
    None
}
