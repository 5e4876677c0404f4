//! Activation checkpointing (`train.checkpointing=blocks|balanced`) recomputes activations in the
//! backward pass instead of keeping them; it must not change what is trained: the same losses and
//! the same final weights, bit for bit, as without it, in f32, in bf16 and data parallel (dense
//! models; a routed model's recomputation agrees to rounding: model/tests/model/recompute.rs).

mod common;

use common::{gatelab, scratch, tiny_sweep};
use gatelab_rundir::RunDir;
use gatelab_rundir::config::Checkpointing;
use std::path::Path;

/// Trains the grid at `grid` into `dir/<tag>` with `extra` arguments; its runs, in variant order.
fn sweep(grid: &Path, dir: &Path, tag: &str, extra: &[&str]) -> Vec<RunDir> {
    let out = dir.join(tag);
    let mut args = vec!["model.n_layers=3", "model.d_ff=64", "train.steps=120", "train.log_every=10"];
    args.extend_from_slice(extra);
    let (code, _, err) = tiny_sweep(grid.to_str().unwrap(), &out, &args);
    assert_eq!(code, 0, "{tag}: {err}");
    gatelab_rundir::runs_under(&out).unwrap()
}

/// The two sets of runs trained the same: every logged loss and the final weights, bit for bit.
fn same_training(a: &[RunDir], b: &[RunDir], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (a, b) in a.iter().zip(b) {
        let losses = |r: &RunDir| r.metrics().unwrap().iter().map(|m| m.loss).collect::<Vec<_>>();
        let (la, lb) = (losses(a), losses(b));
        assert_eq!(la.len(), 12, "{what}: {}", a.name());
        assert!(la[11] < la[0], "{what}: {} did not train: {la:?}", a.name());
        assert_eq!(la, lb, "{what}: {}", a.name());
        assert_eq!(
            std::fs::read(a.file("model.safetensors")).unwrap(),
            std::fs::read(b.file("model.safetensors")).unwrap(),
            "{what}: {}: final weights differ",
            a.name()
        );
    }
}

#[test]
fn checkpointing_trains_exactly_as_none() {
    let dir = scratch("checkpointing");
    let grid = dir.join("pair.json");
    std::fs::write(
        &grid,
        r#"{"name": "pair", "variants": [{"name": "baseline"},
            {"name": "g1-untied", "set": {"model.gate.position": "g1", "model.tie_embeddings": false}}]}"#,
    )
    .unwrap();
    let plain = sweep(&grid, &dir, "none", &["train.checkpointing=none"]);
    assert_eq!(plain.len(), 2);
    for mode in ["blocks", "balanced"] {
        let runs = sweep(&grid, &dir, mode, &[&format!("train.checkpointing={mode}")]);
        let want = if mode == "blocks" { Checkpointing::Blocks } else { Checkpointing::Balanced };
        assert!(runs.iter().all(|r| r.read_file().unwrap().config.train.checkpointing == want), "{mode}");
        same_training(&plain, &runs, mode);
    }
    // Mixed precision and data parallel (two replicas on the one device) take their own paths.
    let pairs: [(&str, &[&str]); 2] = [("bf16", &["train.precision=bf16"]), ("two replicas", &["--devices", "0,0"])];
    for (what, extra) in pairs {
        let tag = what.replace(' ', "-");
        let none = sweep(&grid, &dir, &format!("{tag}-none"), extra);
        let blocks = sweep(&grid, &dir, &format!("{tag}-blocks"), &[extra, &["train.checkpointing=blocks"]].concat());
        same_training(&none, &blocks, &format!("{what}, blocks"));
    }

    // The default is left out of config.json (older runs keep their hashes); the others are named.
    let config = |r: &RunDir| serde_json::to_string(&r.read_file().unwrap().config).unwrap();
    assert!(!config(&plain[0]).contains("checkpointing"), "{}", config(&plain[0]));
    let blocks = gatelab_rundir::runs_under(&dir.join("blocks")).unwrap();
    assert!(config(&blocks[0]).contains("\"checkpointing\":\"blocks\""), "{}", config(&blocks[0]));
    let (code, out, err) = gatelab(&["grid", "show", "core", "baseline", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"checkpointing\": \"none\""), "grid show --json lists every key: {out}");
    let (code, _, err) = gatelab(&[
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--out",
        dir.join("bad").to_str().unwrap(),
        "train.checkpointing=layers",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("train.checkpointing") && !dir.join("bad").exists(), "{err}");
}
