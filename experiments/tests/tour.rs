//! The README's short tour, walked as a newcomer walks it: every fenced command of its `sh`
//! block, in order, in a fresh folder, each of which must exit 0. Sweeps run at the tiny preset
//! (where a command names none) and shorter, so that the tour takes minutes here; nothing else
//! is changed, so a command that the README gets wrong fails here.

mod common;

use common::{manifest_dir, scratch};
use std::process::Command;

/// The tour's commands: the `scripts/gatelab …` lines of the first `sh` block after the
/// heading "A short tour", comments removed, as words.
fn tour() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(manifest_dir().join("../README.md")).unwrap();
    let after = readme.split("## A short tour").nth(1).expect("the README has a short tour");
    let block = after.split("```sh").nth(1).and_then(|b| b.split("```").next()).expect("a sh block in the tour");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim())
        .filter(|l| l.starts_with("scripts/gatelab "))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect()
}

/// A tour command as this test runs it: a sweep at the tiny preset where it names none, and
/// shorter (the sink needs the full 6000 steps; exit codes do not).
fn as_run(words: &[String]) -> Vec<String> {
    let mut args = words.to_vec();
    if args[0] == "sweep" {
        if !args.iter().any(|a| a == "--preset") {
            args.extend(["--preset".into(), "tiny".into()]);
        }
        if !args.iter().any(|a| a.starts_with("train.steps=")) {
            args.push("train.steps=300".into());
        }
    }
    args
}

#[test]
fn every_command_of_the_readme_tour_exits_0_in_order() {
    let commands = tour();
    assert!(commands.len() >= 8, "the tour has {} commands", commands.len());
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    for needed in ["grid", "sweep", "report", "eval", "eval-length", "data"] {
        assert!(names.contains(&needed), "the tour runs no {needed}: {names:?}");
    }
    let dir = scratch("tour");
    for words in &commands {
        let args = as_run(words);
        let out = Command::new(env!("CARGO_BIN_EXE_gatelab")).args(&args).current_dir(&dir).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        assert!(
            out.status.success(),
            "scripts/gatelab {} (run as gatelab {}) exited {:?}:\n{}",
            words.join(" "),
            args.join(" "),
            out.status.code(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // The tour's results are where it says: a report over every setup it trained, and the
    // streaming probe's results beside each run.
    let core = dir.join("results/core");
    assert!(core.join("report.html").is_file() && core.join("length_summary.md").is_file());
    let runs = gatelab_rundir::runs_under(&core).unwrap();
    assert!(runs.iter().all(|r| r.file("perplexity.json").is_file()), "eval wrote perplexity.json beside every run");
}
