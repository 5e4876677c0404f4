//! The `gatelab` binary on bad input: a one-line error naming the file (and line), a non-zero exit,
//! no panic.

mod common;

use common::{gatelab, scratch};

#[test]
fn bad_data_is_one_line_and_a_nonzero_exit() {
    let dir = scratch("cli");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let empty = write("empty.txt", b"");
    let binary = write("binary.txt", b"ok\n\xc3\x28 broken\n");
    let jsonl = write("c.jsonl", b"{\"text\": \"a\"}\n\n{\"body\": \"b\"}\n");
    let short = write("short.txt", b"tiny");
    let missing = dir.join("missing.txt").display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["data", "--data", &empty], format!("gatelab: {empty}: the corpus is empty")),
        (vec!["data", "--data", &binary], format!("gatelab: {binary}:2: not valid UTF-8 (byte 3)")),
        (vec!["data", "--data", &jsonl], format!("gatelab: {jsonl}:3: no \"text\" field")),
        (
            vec!["data", "--data", &short, "--seq-len", "64"],
            format!("gatelab: {short}: seq_len 64 is longer than the corpus (5 tokens)"),
        ),
        (vec!["data", "--data", &missing], format!("gatelab: {missing}: no such file or directory")),
        (vec!["data", "--tokenizer", "bpe:x"], "gatelab: tokenizer bpe:x: `x` is not a vocabulary size".to_string()),
        (vec!["params", &missing], format!("gatelab: {missing}: No such file or directory (os error 2)")),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = gatelab(&args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(stderr.trim_end(), expected, "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    // A model config that makes no sense is refused naming the field.
    let bad_model = write("model.json", br#"{"n_heads": 4, "n_kv_heads": 3}"#);
    let (code, _, stderr) = gatelab(&["params", &bad_model]);
    assert_eq!((code, stderr.trim_end()), (1, "gatelab: model.n_kv_heads: 3 does not divide n_heads = 4"));
}

#[test]
fn printing_commands_speak_json_on_request() {
    let (code, stdout, stderr) = gatelab(&["backends", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("backends --json");
    assert!(rows.as_array().unwrap().iter().any(|r| r["backend"] == "flex" && r["ok"] == true), "{rows}");
    let (code, stdout, stderr) = gatelab(&["data", "--data", "tinyshakespeare", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let data: serde_json::Value = serde_json::from_str(&stdout).expect("data --json");
    assert_eq!(data["vocab_size"], 259, "{data}");
    assert!(data["splits"]["train"]["examples"].as_u64().unwrap() > 1000);
    let (code, stdout, _) = gatelab(&["grid", "list", "core", "--json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<serde_json::Value>(&stdout).is_ok());
    // A sweep prints its runs and the report's summary as JSON, one document each.
    let dir = scratch("cli-json");
    let grid = dir.join("one.json");
    std::fs::write(&grid, r#"{"name": "one", "variants": [{"name": "baseline", "paper": "Table 1 row 1"}]}"#).unwrap();
    let out = dir.join("out").display().to_string();
    let args = [
        "sweep",
        grid.to_str().unwrap(),
        "--preset",
        "tiny",
        "--data",
        "tinyshakespeare",
        "--out",
        &out,
        "--json",
        "train.steps=150",
        "train.warmup_steps=10",
    ];
    let (code, stdout, stderr) = gatelab(&args);
    assert_eq!(code, 0, "{stderr}");
    let docs: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&stdout).into_iter().collect::<Result<_, _>>().expect("JSON documents");
    assert_eq!(docs.len(), 2, "{stdout}");
    assert_eq!(docs[0]["runs"][0]["status"]["state"], "done");
    assert_eq!(docs[1]["configurations"][0]["runs"], 1);
    // eval scores a text file with the run's tokenizer, in windows after BOS.
    let text = common::manifest_dir().join("../data/corpora/tinyshakespeare.txt").display().to_string();
    let (code, stdout, stderr) =
        gatelab(&["eval", &out, "--text", &text, "--seq-len", "64", "--sequences", "8", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let scored: serde_json::Value = serde_json::from_str(&stdout).expect("eval --json");
    let first = &scored[0];
    assert_eq!(
        (first["source"].as_str(), first["sequences"].as_u64(), first["tokens"].as_u64()),
        (Some(text.as_str()), Some(8), Some(8 * 64))
    );
    assert!(first["perplexity"].as_f64().unwrap() > 1.0);
}

#[test]
fn data_summarises_a_corpus() {
    let (code, stdout, _) = gatelab(&["data", "--data", "zipf-markov", "--seq-len", "64"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("BOS 512") && stdout.contains("analysis    1024 examples of 64 tokens"), "{stdout}");
}

#[test]
fn bad_sweeps_are_one_line_naming_the_key_and_write_nothing() {
    let dir = scratch("cli-sweep");
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let not_json = dir.join("grid.json");
    std::fs::write(&not_json, "this is not JSON").unwrap();
    let not_json_s = not_json.display().to_string();
    let missing = dir.join("nope.txt").display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--preset", "tiny", "--data", &missing], format!("{missing}: no such file or directory")),
        (
            vec!["--preset", "tiny", "--data", "zipf"],
            "zipf: no such file or directory (did you mean zipf-markov?".into(),
        ),
        (
            vec!["--preset", "tiny", "model.gate.position=g7"],
            "grid core, variant baseline: model.gate.position: unknown variant `g7`".into(),
        ),
        (
            vec!["--preset", "tiny", "train.steps=-5"],
            "grid core, variant baseline: train.steps: invalid value: integer `-5`".into(),
        ),
        (vec!["--preset", "tiny", "train.lrr=1"], "override train.lrr: no field lrr in train".into()),
        (vec!["--preset", "huge"], "--preset huge: expected one of tiny, small, paper".into()),
        (vec!["--preset", "tiny", "--shard", "4/3"], "--shard 4/3: expected i/N with 1 <= i <= N".into()),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["sweep", "core", "--out", &out_s];
        args.extend(extra.iter().copied());
        let (code, _, stderr) = gatelab(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("gatelab: ") && stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
    let (code, _, stderr) = gatelab(&["sweep", &not_json_s, "--out", &out_s]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with(&format!("gatelab: {not_json_s}: not a grid file: ")), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn report_and_analyze_of_a_sweep_with_nothing_finished_fail_with_advice_that_helps() {
    let dir = scratch("cli-diverged");
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let args = [
        "sweep",
        "core",
        "--preset",
        "tiny",
        "--out",
        &out_s,
        "train.lr=1000",
        "train.steps=150",
        "train.warmup_steps=5",
    ];
    let (_, stdout, stderr) = gatelab(&args);
    assert_eq!(stdout.matches(" diverged ").count(), 5, "{stdout}{stderr}");
    let (code, _, stderr) = gatelab(&["report", &out_s]);
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.contains("no finished run (5 of 5 diverged)") && last.contains("lower train.lr"), "{stderr}");
    // The report still shows each run's state.
    assert!(std::fs::read_to_string(out.join("summary.md")).unwrap().contains("1 diverged"));
    let (code, _, stderr) = gatelab(&["analyze", &out_s]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a diverged run has no final weights; lower train.lr"), "{stderr}");
    assert!(stderr.lines().last().unwrap().contains("no finished run to analyse"), "{stderr}");
}

#[test]
fn params_reads_the_configs_gatelab_writes() {
    let dir = scratch("cli-params");
    let fixture = common::manifest_dir().join("../rundir/tests/fixtures/sweep-ca03b9e/baseline-61269182f2/config.json");
    let (code, stdout, stderr) = gatelab(&["params", fixture.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"total\": 8320"), "{stdout}");
    // The output of `grid show --json` too.
    let (_, shown, _) = gatelab(&["grid", "show", "core", "g1-elementwise", "--preset", "tiny", "--json"]);
    let path = dir.join("shown.json");
    std::fs::write(&path, shown).unwrap();
    let (code, stdout, stderr) = gatelab(&["params", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"total\": 9344"), "{stdout}");
}

#[test]
fn gate_forms_that_make_no_sense_are_refused_naming_the_field() {
    let dir = scratch("cli-gates");
    let cases = [
        (r#"{"gate": {"position": "g1", "input_dims": 0}}"#, "model.gate.input_dims: 0 is out of range"),
        (r#"{"gate": {"position": "g1", "input_dims": 129}}"#, "model.gate.input_dims: 129 is out of range"),
        (
            r#"{"gate": {"position": "g1", "input_dims": "d/3"}}"#,
            "model.gate.input_dims: \"d/3\" is not a whole number",
        ),
        (
            r#"{"gate": {"position": "g1"}, "extra_gates": [{"position": "g2"}, {"position": "g1", "granularity": "headwise"}]}"#,
            "model.extra_gates[1].position: g1 already has a gate (gate): one gate per position",
        ),
        (r#"{"extra_gates": [{"position": "g2"}]}"#, "model.extra_gates: adds gates beside gate, which has none"),
        (
            r#"{"gate": {"position": "g1"}, "extra_gates": [{"position": "g3", "granularity": "headwise"}]}"#,
            "model.extra_gates[0].granularity: a headwise multiplicative gate on Q or K",
        ),
        (
            r#"{"gate": {"position": "g4", "granularity": "headwise"}}"#,
            "model.gate.granularity: a headwise multiplicative",
        ),
    ];
    for (i, (json, expected)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("model{i}.json"));
        std::fs::write(&path, json).unwrap();
        let (code, _, stderr) = gatelab(&["params", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{json}");
        assert!(stderr.starts_with(&format!("gatelab: {expected}")), "{json}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{json}: {stderr}");
    }
    // In a sweep: refused before anything is written.
    let out = dir.join("sweep");
    let (code, _, stderr) =
        gatelab(&["sweep", "gates", "--preset", "tiny", "--out", out.to_str().unwrap(), "model.gate.input_dims=999"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("gate.input_dims") && stderr.lines().count() == 1, "{stderr}");
    assert!(!out.exists(), "a refused sweep wrote {}", out.display());
}
