//! Bad input named for what it is, caught before anything is written, and a corpus whose contents
//! changed trained anew (issue 30's list of inputs that were caught late or misreported).

mod common;

use common::{gatelab, scratch};
use std::path::Path;

#[test]
fn bad_corpus_contents_are_refused_before_any_run_folder_is_written() {
    let dir = scratch("inputs-data");
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, b"ok\n\xc3\x28 broken\n").unwrap();
    let folder = dir.join("no-txt");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.md"), "not a .txt").unwrap();
    let cases = [
        (empty.display().to_string(), "the corpus is empty"),
        (binary.display().to_string(), ":2: not valid UTF-8 (byte 3)"),
        (folder.display().to_string(), "no .txt files in this directory"),
    ];
    for (data, expected) in &cases {
        let (code, _, stderr) = gatelab(&["sweep", "core", "--preset", "tiny", "--out", &out_s, "--data", data]);
        assert_eq!(code, 1, "{data}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{data}: one line, once (not once per run): {stderr}");
        assert!(stderr.starts_with(&format!("gatelab: {data}")) && stderr.contains(expected), "{stderr}");
        assert!(!out.exists(), "{data}: wrote {}", out.display());
    }
}

#[test]
fn misnamed_inputs_are_named_for_what_they_are() {
    let dir = scratch("inputs-names");
    let missing = dir.join("nonexistent").display().to_string();
    let text = dir.join("t.txt");
    std::fs::write(&text, "some text").unwrap();
    let text = text.display().to_string();
    let out = dir.join("out").display().to_string();
    let dir_s = dir.display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["export", &missing, "--out", &out], format!("gatelab: {missing}: no such run folder")),
        (vec!["analyze", "--hf", &missing, "--text", &text], format!("gatelab: {missing}: no such checkpoint folder")),
        (
            vec!["eval-length", &dir_s, "--depths", "2"],
            "gatelab: --depths: need at least one depth, each in [0, 1], got [2.0]".into(),
        ),
        (
            vec!["sweep", "core", "--preset", "tiny", "--out", &out, "model.cure={\"kind\": softmax"],
            "gatelab: override model.cure: not valid JSON: ".into(),
        ),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = gatelab(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(&expected), "{args:?}: {stderr}");
    }
    assert!(!Path::new(&out).exists());
    // A recall corpus without its BOS: refused by the field's name before a run folder is made.
    let (code, _, stderr) = gatelab(&["sweep", "recall", "--preset", "tiny", "--out", &out, "data.bos=false"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("gatelab: ") && stderr.contains("data.bos"), "{stderr}");
    assert!(!Path::new(&out).exists(), "{stderr}");
    let (code, _, stderr) = gatelab(&["sweep", "core", "--preset", "tiny", "--out", &out, "--seeds", "0"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("'0'") && stderr.contains("--seeds"), "{stderr}");
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    let bin = env!("CARGO_BIN_EXE_gatelab");
    for list in ["grid list", "grid list paper"] {
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("set -o pipefail; '{bin}' {list} | head -1; echo \"rc=${{PIPESTATUS[0]}}\"")])
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{list}: {stderr}");
        // Ended by SIGPIPE (128 + 13) as Unix tools are, or done before the pipe closed; never 101.
        let rc = stdout.lines().last().unwrap();
        assert!(rc == "rc=141" || rc == "rc=0", "{list}: {stdout}");
        assert_eq!(stdout.lines().count(), 2, "{stdout}");
    }
}

#[test]
fn an_edited_corpus_is_a_new_run_not_a_finished_one_reused() {
    let dir = scratch("inputs-edit");
    let corpus = dir.join("later.txt");
    let text = include_str!("../../data/corpora/tinyshakespeare.txt");
    std::fs::write(&corpus, &text[..60_000]).unwrap();
    let grid = dir.join("one.json");
    std::fs::write(&grid, r#"{"name": "one", "variants": [{"name": "baseline"}]}"#).unwrap();
    let out = dir.join("out").display().to_string();
    let args = [
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--out",
        &out,
        "--no-report",
        "--data",
        corpus.to_str().unwrap(),
        "train.steps=200",
    ];
    let (code, _, err) = gatelab(&args);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = gatelab(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("done already"), "the same contents: skipped: {err}");
    std::fs::write(&corpus, &text[60_000..120_000]).unwrap();
    let (code, _, err) = gatelab(&args);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("done already"), "edited contents: trained anew: {err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().flatten().filter(|e| e.path().is_dir()).count(), 2);
}
