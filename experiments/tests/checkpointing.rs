//! Activation checkpointing (`train.checkpointing=balanced`) recomputes activations in the
//! backward pass instead of keeping them; it must not change what is trained: the same losses and
//! the same final weights, bit for bit, as without it.

mod common;

use common::{gatelab, scratch};

#[test]
fn balanced_checkpointing_trains_exactly_as_none() {
    let dir = scratch("checkpointing");
    let grid = dir.join("pair.json");
    std::fs::write(
        &grid,
        r#"{"name": "pair", "variants": [{"name": "baseline"}, {"name": "g1", "set": {"model.gate.position": "g1"}}]}"#,
    )
    .unwrap();
    let sweep = |mode: &str| {
        let out = dir.join(mode);
        let (code, _, err) = gatelab(&[
            "sweep",
            grid.to_str().unwrap(),
            "--preset",
            "tiny",
            "--out",
            out.to_str().unwrap(),
            "--no-report",
            "model.n_layers=2",
            "model.d_ff=64",
            "train.steps=150",
            "train.log_every=10",
            &format!("train.checkpointing={mode}"),
        ]);
        assert_eq!(code, 0, "{mode}: {err}");
        gatelab_rundir::runs_under(&out).unwrap()
    };
    let (plain, balanced) = (sweep("none"), sweep("balanced"));
    assert_eq!(plain.len(), 2);
    for (a, b) in plain.iter().zip(&balanced) {
        assert_eq!(b.read_file().unwrap().config.train.checkpointing, gatelab_rundir::config::Checkpointing::Balanced);
        let losses = |r: &gatelab_rundir::RunDir| r.metrics().unwrap().iter().map(|m| m.loss).collect::<Vec<_>>();
        assert_eq!(losses(a), losses(b), "{}", a.name());
        assert_eq!(
            std::fs::read(a.file("model.safetensors")).unwrap(),
            std::fs::read(b.file("model.safetensors")).unwrap(),
            "{}: final weights differ",
            a.name()
        );
    }
    // The default is left out of config.json (older runs keep their hashes); the other is named.
    let config = |r: &gatelab_rundir::RunDir| serde_json::to_string(&r.read_file().unwrap().config).unwrap();
    assert!(!config(&plain[0]).contains("checkpointing"), "{}", config(&plain[0]));
    assert!(config(&balanced[0]).contains("\"checkpointing\":\"balanced\""), "{}", config(&balanced[0]));
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
        "train.checkpointing=blocks",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("train.checkpointing") && !dir.join("bad").exists(), "{err}");
}
