//! What a researcher meets once a folder holds more than one setting: the streaming probe on
//! runs of two lengths, rows told apart by what differs, a text's perplexity kept apart from the
//! validation split's, and flags and keys that are where one looks for them (issue 30).

mod common;

use common::{gatelab, scratch};

#[test]
fn a_folder_of_two_lengths_is_evaluated_run_by_run_and_labelled_by_what_differs() {
    let dir = scratch("conventions");
    let grid = dir.join("one.json");
    std::fs::write(&grid, r#"{"name": "one", "variants": [{"name": "baseline"}]}"#).unwrap();
    let out = dir.join("two-lengths");
    let out_s = out.display().to_string();
    // Text, so that the runs have a tokenizer for --text below.
    let corpus = dir.join("corpus.txt");
    let text = include_str!("../../data/corpora/tinyshakespeare.txt");
    std::fs::write(&corpus, &text[..40_000]).unwrap();
    let (code, table, err) = gatelab(&[
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--out",
        &out_s,
        "--no-report",
        "--data",
        corpus.to_str().unwrap(),
        "data.seq_len=16,32",
        "train.steps=200",
    ]);
    assert_eq!(code, 0, "{err}");
    // The sweep's table tells the two runs apart by the override that differs, and only by it.
    assert!(table.contains("data.seq_len=16") && table.contains("data.seq_len=32"), "{table}");
    assert!(!table.contains("train.steps=100"), "{table}");
    let runs = gatelab_rundir::runs_under(&out).unwrap();
    let length = |r: &gatelab_rundir::RunDir| r.read_file().unwrap().config.data.seq_len;
    let (short, long) = if length(&runs[0]) == 16 { (&runs[0], &runs[1]) } else { (&runs[1], &runs[0]) };

    // W = 16 fits the run of 32 tokens, not the run of 16: that one is scored without the probe
    // and named, and the command succeeds.
    let (code, stdout, err) = gatelab(&["eval", &out_s, "--window", "16", "--max-sequences", "8"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "{}: no streaming probe: --window 16 needs 1 ≤ W < the run's sequence length 16",
            short.name()
        )),
        "{err}"
    );
    assert!(
        stdout.contains("baseline s0 data.seq_len=16") && stdout.contains("baseline s0 data.seq_len=32"),
        "{stdout}"
    );
    let read = |r: &gatelab_rundir::RunDir, f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(r.file(f)).unwrap()).unwrap()
    };
    assert_eq!(read(long, "perplexity.json")["streaming"]["window"], 16);
    assert!(read(short, "perplexity.json")["streaming"].is_null());
    assert!(read(short, "perplexity.json")["streaming_skipped"].as_str().unwrap().contains("give --window 8"));
    // A window that fits no run fails, saying so once.
    let (code, _, err) = gatelab(&["eval", &out_s, "--window", "64", "--sequences", "4"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--window 64: fits none of the 2 runs (sequence length 16 or 32)"), "{err}");
    let (code, _, err) = gatelab(&["eval", &out_s, "--window", "0"]);
    assert!(code == 1 && err.contains("--window 0: must be at least 1"), "{err}");

    // A text's perplexity goes into a file of its own; the validation split's stays.
    let before = std::fs::read(long.file("perplexity.json")).unwrap();
    let text = dir.join("later notes.txt");
    std::fs::write(&text, "The gate sits after attention. ".repeat(40)).unwrap();
    let (code, _, err) = gatelab(&["eval", &long.path.display().to_string(), "--text", text.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(long.file("perplexity.json")).unwrap(), before, "--text replaced perplexity.json");
    let scored = read(long, "perplexity-text-later_notes.txt.json");
    assert_eq!(scored["source"], text.display().to_string());
    // Result files name their run folder, not a path, so a sweep folder can move.
    assert_eq!(scored["run"], long.name());
}

#[test]
fn every_override_key_is_listed_where_the_docs_say() {
    let (code, json, err) = gatelab(&["grid", "show", "core", "baseline", "--json"]);
    assert_eq!(code, 0, "{err}");
    let config: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in ["cure", "moe", "switch_head", "rope_scaling", "extra_gates"] {
        assert!(config["model"].get(key).is_some(), "grid show --json leaves out model.{key}: {json}");
    }
    assert!(config["model"]["gate"].get("input_dims").is_some(), "grid show --json leaves out model.gate.input_dims");
    assert!(config["data"].get("bos").is_some(), "grid show --json leaves out data.bos");
    // Every field left out of the JSON at its default is shown, and an override can set it.
    for key in gatelab::grid::OMITTED_AT_DEFAULT {
        let shown = key.split('.').try_fold(&config, |node, part| node.get(part));
        let value = shown.unwrap_or_else(|| panic!("grid show --json leaves out {key}: {json}")).clone();
        // Left out of the JSON again, as a resolved config has it, the override still sets it.
        let (parent, name) = key.rsplit_once('.').unwrap();
        let mut resolved = config.clone();
        let section = parent.split('.').try_fold(&mut resolved, |node, part| node.get_mut(part)).unwrap();
        section.as_object_mut().unwrap().remove(name);
        gatelab::grid::apply(&mut resolved, key, value).unwrap_or_else(|e| panic!("{key} cannot be overridden: {e}"));
    }
    // The unknown-key error lists the fields left out at their defaults too.
    let (code, _, err) =
        gatelab(&["sweep", "core", "--preset", "tiny", "--out", "/nonexistent/x", "model.cur=sigmoid"]);
    assert_eq!(code, 1);
    for key in ["cure", "moe", "switch_head", "rope_scaling", "gate"] {
        assert!(err.contains(&format!(" {key},")) || err.contains(&format!(" {key})")), "{key}: {err}");
    }
    // Flags: the sweep's GRID help names every built-in grid; --max-sequences is one flag everywhere.
    for command in [&["sweep", "--help"][..], &["grid", "list", "--help"], &["grid", "show", "--help"]] {
        let (_, help, _) = gatelab(command);
        for (name, _) in gatelab::grid::BUILTIN {
            let named = [" ", "(", ", "]
                .iter()
                .any(|before| [",", ")", ";"].iter().any(|after| help.contains(&format!("{before}{name}{after}"))));
            assert!(named, "{command:?} leaves out the built-in grid {name}: {help}");
        }
    }
    for command in ["analyze", "eval", "eval-length"] {
        let (_, help, _) = gatelab(&[command, "--help"]);
        assert!(help.contains("--max-sequences") && help.contains("--sequences"), "{command}: {help}");
    }
}
