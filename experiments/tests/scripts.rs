//! The README's two commands start on a fresh machine: `scripts/env.sh`, which both source under
//! `set -euo pipefail`, must succeed without the torch virtualenv and choose the default feature
//! set and its own target directory; asking for tch without the virtualenv is one clear line.

mod common;

use common::manifest_dir;
use std::process::Command;

/// Sources `scripts/env.sh` as the scripts do, in a clean environment with `env` set, and prints
/// what it chose: (exit code, stdout, stderr).
fn source_env(env: &[(&str, &str)]) -> (i32, String, String) {
    let repo = manifest_dir().join("..");
    let script = r#"set -euo pipefail; source scripts/env.sh; echo "flags=${GATELAB_CARGO_FLAGS[*]}"; echo "target=$CARGO_TARGET_DIR"; echo "note=$GATELAB_BUILD_NOTE""#;
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(&repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/tmp/gatelab-fresh-home")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn env_sh_starts_without_the_torch_virtualenv() {
    let (code, stdout, stderr) = source_env(&[("GATELAB_VENV", "/nonexistent/venv")]);
    assert_eq!(code, 0, "sourcing scripts/env.sh failed on a machine without torch: {stderr}");
    assert!(stdout.contains("flags=--release --workspace\n"), "default features are flex and wgpu only: {stdout}");
    assert!(stdout.contains("target=/tmp/gatelab-fresh-home/.cache/gatelab/target/default\n"), "{stdout}");
    assert!(stdout.contains("note=backends flex, wgpu (GATELAB_FEATURES=<unset>)"), "{stdout}");
}

#[test]
fn tch_is_an_explicit_choice_with_its_own_target_directory() {
    // Asked for without the virtualenv: one line saying what to run, a non-zero exit.
    let (code, _, stderr) = source_env(&[("GATELAB_VENV", "/nonexistent/venv"), ("GATELAB_FEATURES", "tch")]);
    assert_ne!(code, 0);
    assert_eq!(
        stderr.trim_end(),
        "gatelab: GATELAB_FEATURES=tch needs the torch virtualenv at /nonexistent/venv: run scripts/setup-libtorch.sh (or unset GATELAB_FEATURES for flex and wgpu)"
    );
    // With a virtualenv (a stand-in: an executable bin/python), tch gets a target of its own.
    let venv = std::env::temp_dir().join(format!("gatelab-fake-venv-{}", std::process::id()));
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(venv.join("bin/python"), "#!/bin/sh\n").unwrap();
    Command::new("chmod").args(["+x", venv.join("bin/python").to_str().unwrap()]).status().unwrap();
    let (code, stdout, stderr) = source_env(&[("GATELAB_VENV", venv.to_str().unwrap()), ("GATELAB_FEATURES", "tch")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("flags=--release --workspace --features tch\n"), "{stdout}");
    assert!(stdout.contains("target=/tmp/gatelab-fresh-home/.cache/gatelab/target/tch\n"), "{stdout}");
    // A virtualenv alone never turns tch on.
    let (_, stdout, _) = source_env(&[("GATELAB_VENV", venv.to_str().unwrap())]);
    assert!(stdout.contains("flags=--release --workspace\n"), "{stdout}");
    let _ = std::fs::remove_dir_all(&venv);
}
