//! The retrieval positive control: the MQAR corpus is described and refused like any corpus, a
//! tiny two-layer model learns it far above chance, and the needle probe fires on that model and
//! not on an untrained one (issue 23's validation of the instrument).

use gatelab_analysis::length::LengthEval;
use std::path::Path;

mod common;

use common::{gatelab, scratch};

/// The tiny recall setting (docs/recall.md): the `recall` grid's data and model (16 keys, 16
/// values, 4 pairs and 4 queries in 32 tokens; two attention-only layers of 64) for 600 steps,
/// about 10 seconds: it recalls every held-out answer.
const GRID: &str = r#"{"name": "tiny-recall", "set": {
    "data.corpus": {"kind": "mqar", "vocab": 32, "pairs": 4},
    "data.seq_len": 32,
    "model.n_layers": 2, "model.d_model": 64, "model.n_heads": 2, "model.n_kv_heads": 2, "model.head_dim": 32,
    "model.d_ff": 0, "model.qk_norm": true, "model.tie_embeddings": false,
    "train.steps": 600, "train.batch_size": 64, "train.lr": 3e-3, "train.warmup_steps": 100,
    "train.eval_every": 200, "train.checkpoint_every": 600, "train.dynamics_every": 600},
  "variants": [{"name": "baseline", "paper": "Table 1 row 1"},
               {"name": "g1-elementwise", "paper": "Table 1 row 5", "set": {"model.gate.position": "g1"}}]}"#;

/// The baseline's `length.json` in `sweep`.
fn length_eval(sweep: &Path) -> LengthEval {
    let runs = gatelab_rundir::runs_under(sweep).unwrap();
    let run = runs.iter().find(|r| r.read_file().unwrap().meta.variant == "baseline").unwrap();
    serde_json::from_str(&std::fs::read_to_string(run.file("length.json")).unwrap()).unwrap()
}

#[test]
fn data_describes_and_refuses_recall_settings() {
    let (code, stdout, err) = gatelab(&["data", "--data", "mqar:vocab=16,pairs=3", "--seq-len", "24", "--json"]);
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["vocab_size"], 18, "{d}");
    assert_eq!((d["recall"]["pairs"].as_u64(), d["recall"]["keys"].as_u64()), (Some(3), Some(8)), "{d}");
    assert_eq!(d["recall"]["chance_accuracy"], 0.125);
    let (code, stdout, _) = gatelab(&["data", "--data", "mqar"]);
    assert!(code == 0 && stdout.contains("multi-query associative recall"), "{stdout}");
    let dir = scratch("recall-refuse");
    let out = dir.join("out").display().to_string();
    for (args, expected) in [
        (
            vec!["data", "--data", "mqar:pairs=20", "--seq-len", "24"],
            "gatelab: data.corpus.pairs: 20 pairs and 20 queries take 80 tokens after BOS, more than data.seq_len = 24 holds",
        ),
        (
            vec!["data", "--data", "mqar:vocab=8,pairs=6"],
            "gatelab: data.corpus.vocab: 6 pairs need 6 distinct keys, but a vocabulary of 8 has 4 (keys are half of it); raise vocab to at least 12",
        ),
        (
            vec!["data", "--data", "mqar:pairs=x"],
            "gatelab: --data mqar:pairs=x: expected mqar:vocab=V,pairs=P,queries=Q,seed=S, got \"pairs=x\"",
        ),
        // A sweep refuses before it writes anything.
        (
            vec!["sweep", "recall", "--out", &out, "data.corpus.pairs=40"],
            "gatelab: grid recall, variant baseline: data.corpus.vocab: 40 pairs need 40 distinct keys, but a vocabulary of 32 has 16 (keys are half of it); raise vocab to at least 80",
        ),
    ] {
        let (code, _, err) = gatelab(&args);
        assert_eq!((code, err.trim_end()), (1, expected), "{args:?}");
    }
    assert!(!dir.join("out").exists(), "nothing written");
}

#[test]
fn a_tiny_model_learns_recall_and_the_needle_probe_fires_on_it_only() {
    let dir = scratch("recall");
    let grid = dir.join("tiny-recall.json");
    std::fs::write(&grid, GRID).unwrap();
    let (grid, trained, untrained) = (
        grid.display().to_string(),
        dir.join("trained").display().to_string(),
        dir.join("untrained").display().to_string(),
    );
    let (code, _, err) = gatelab(&["sweep", &grid, "--out", &trained, "--no-report"]);
    assert_eq!(code, 0, "{err}");
    // The same model after one step at a negligible rate: its initialisation.
    let (code, _, err) = gatelab(&[
        "sweep",
        &grid,
        "--out",
        &untrained,
        "--no-report",
        "train.steps=1",
        "train.lr=1e-9",
        "train.warmup_steps=0",
    ]);
    assert_eq!(code, 0, "{err}");
    let probe =
        ["--factors", "1,2", "--methods", "none", "--sequences", "64", "--needle-samples", "32", "--depths", "0,0.5,1"];
    for sweep in [&trained, &untrained] {
        let (code, _, err) = gatelab(&[&["eval-length", sweep.as_str()][..], &probe[..]].concat());
        assert_eq!(code, 0, "{err}");
    }
    let (t, u) = (length_eval(Path::new(&trained)), length_eval(Path::new(&untrained)));
    assert_eq!(t.recall_chance, Some(1.0 / 16.0));
    let (t1, u1) = (&t.points[0], &u.points[0]);
    assert_eq!((t1.factor, u1.factor), (1, 1));
    // Learnt: answers recalled far above chance (1/16); untrained: about chance.
    let (ta, ua) = (t1.accuracy.unwrap(), u1.accuracy.unwrap());
    assert!(ta > 0.9, "trained recall {ta}");
    assert!(ua < 3.0 / 16.0, "untrained recall {ua}");
    // The probe: a recall probe is one key and one value, the key absent from the sequence.
    assert_eq!((t.options.needle.key_len, t.options.needle.value_len), (1, 1));
    // It fires on the trained model (needle clearly above its no-needle control) …
    assert!(
        t1.retrieval_accuracy > t1.control_accuracy + 0.2,
        "trained: {} vs control {}",
        t1.retrieval_accuracy,
        t1.control_accuracy
    );
    // … and not on the untrained one (at its control, within the noise of 96 probes).
    assert!(
        (u1.retrieval_accuracy - u1.control_accuracy).abs() < 0.1,
        "untrained: {} vs control {}",
        u1.retrieval_accuracy,
        u1.control_accuracy
    );
    // A sweep's length summary pairs each gate with its baseline, seed by seed.
    let summary = std::fs::read_to_string(Path::new(&trained).join("length_summary.md")).unwrap();
    assert!(summary.contains("paired difference to each configuration's baseline"), "{summary}");
    assert!(summary.contains("| g1-elementwise | none | "), "{summary}");
    assert!(Path::new(&trained).join("length_recall_none.png").is_file());
    for p in t.points.iter().chain(&u.points) {
        assert!(p.control_accuracy < 0.25, "without the needle nothing can be recalled: {p:?}");
    }
}
