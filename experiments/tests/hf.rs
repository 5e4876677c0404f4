//! `gatelab analyze --hf` on a tiny checkpoint made by `transformers`, then `gatelab report`
//! beside it, and `gatelab export` of a run; each needs Python with torch and transformers
//! (skipped with the reason otherwise, required under GATELAB_REQUIRE_TORCH=1).

mod common;

use common::{gatelab, manifest_dir, python_with, scratch};
use std::process::Command;

#[test]
fn an_imported_checkpoint_is_analysed_and_reported_beside_others() {
    let Some(py) = python_with("torch, transformers") else { return };
    let dir = scratch("hf-cli");
    let text = dir.join("text.txt");
    let line = "The gate sits after the attention and before the output projection; it is sparse. ";
    std::fs::write(&text, (0..40).map(|i| format!("{i}: {line}")).collect::<String>()).unwrap();
    let ckpt = dir.join("tiny-qwen3");
    let script = manifest_dir().join("../model/tests/reference/hf_ref.py");
    let ok = Command::new(&py)
        .arg(&script)
        .args(["make", "qwen3", ckpt.to_str().unwrap(), "--vocab", "259"])
        .status()
        .unwrap();
    assert!(ok.success());
    // gatelab's byte tokenizer (256 bytes + BOS/EOS/PAD) fits the 259-token model.
    std::fs::write(ckpt.join("tokenizer.json"), r#"{"gatelab_tokenizer": "bytes"}"#).unwrap();
    let out = dir.join("released");
    let (code, stdout, err) = gatelab(&[
        "analyze",
        "--hf",
        ckpt.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--seq-len",
        "64",
        "--max-sequences",
        "12",
        "--batch-size",
        "4",
        out.join("tiny").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("tiny-qwen3: 12 sequences of 64"), "{stdout}");
    for f in ["config.json", "status.json", "eval.jsonl", "analysis.json", "attention_maps.png"] {
        assert!(out.join("tiny").join(f).is_file(), "{f}");
    }
    let (code, _, err) = gatelab(&["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| tiny-qwen3 | imported:"), "{md}");
    // Refusals are one line.
    let (code, _, err) =
        gatelab(&["analyze", "--hf", dir.join("nothing").to_str().unwrap(), "--text", text.to_str().unwrap()]);
    assert!(code == 1 && err.lines().count() == 1 && err.contains("no such checkpoint folder"), "{err}");
    std::fs::create_dir_all(dir.join("nothing")).unwrap();
    let (code, _, err) =
        gatelab(&["analyze", "--hf", dir.join("nothing").to_str().unwrap(), "--text", text.to_str().unwrap()]);
    assert!(code == 1 && err.lines().count() == 1 && err.contains("tokenizer.json"), "{err}");
    std::fs::write(ckpt.join("tokenizer.json"), r#"{"gatelab_tokenizer": "bytes"}"#).unwrap();
    std::fs::remove_file(ckpt.join("model.safetensors")).unwrap();
    let (code, _, err) = gatelab(&["analyze", "--hf", ckpt.to_str().unwrap(), "--text", text.to_str().unwrap()]);
    assert!(code == 1 && err.contains("no model.safetensors"), "{err}");
}
