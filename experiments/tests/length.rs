//! Length generalisation on a tiny sweep: `gatelab eval-length` writes its files and charts, and
//! `gatelab extend` continues a finished run at a longer length as a new run naming its parent.

use gatelab::backend::Backend;
use gatelab::sweep::{self, SweepOptions};
use gatelab_analysis::length::{LengthEval, ScalingMethod};
use std::path::Path;

mod common;

use common::{gatelab, scratch};

fn read_eval(dir: &Path) -> LengthEval {
    serde_json::from_str(&std::fs::read_to_string(dir.join("length.json")).unwrap()).unwrap()
}

#[test]
fn eval_length_and_extend_on_a_tiny_sweep() {
    let dir = scratch("length");
    let grid = dir.join("pair.json");
    std::fs::write(
        &grid,
        r#"{"name": "pair", "variants": [{"name": "baseline", "paper": "Table 1 row 1"}, {"name": "g1-elementwise", "paper": "Table 1 row 5", "set": {"model.gate.position": "g1"}}]}"#,
    )
    .unwrap();
    let out = dir.join("pair");
    // A shorter tiny run is enough to have weights worth evaluating.
    let opts = SweepOptions {
        grid: grid.display().to_string(),
        preset: "tiny".into(),
        backend: Backend::Flex,
        device_index: 0,
        devices: vec![],
        data: None,
        out: Some(out.clone()),
        shard: None,
        seeds: 1,
        overrides: vec!["train.steps=1500".into()],
        variants: vec![],
    };
    let rows = sweep::run(&opts).unwrap();
    assert!(rows.iter().all(|r| r.status.word() == "done"));

    // Bad options are one line and touch nothing.
    let path = out.display().to_string();
    let (code, _, err) = gatelab(&["eval-length", &path, "--methods", "none,rope9"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("unknown RoPE scaling method \"rope9\""), "{err}");
    let (code, _, err) = gatelab(&["eval-length", &path, "--depths", "0,2"]);
    assert!(code == 1 && err.contains("--depths:") && !err.contains("needle-depths"), "{err}");
    assert!(!rows[0].dir.join("length.json").exists());

    let (code, stdout, err) = gatelab(&[
        "eval-length",
        &path,
        "--factors",
        "1,2,4",
        "--sequences",
        "16",
        "--sink-sequences",
        "8",
        "--needle-samples",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("| baseline | yarn |"), "{stdout}");
    // Perplexity is paired with the baseline, seed by seed, on every corpus.
    let paired = stdout.split("Held-out perplexity, paired difference").nth(1).expect("a paired perplexity table");
    assert!(paired.lines().any(|l| l.starts_with("| g1-elementwise | yarn | ")), "{stdout}");
    for r in &rows {
        let e = read_eval(&r.dir);
        assert_eq!((e.train_length, e.points.len(), e.held_out_clean), (32, 3 * 4, true));
        let at = |m, k| e.point(m, k).unwrap();
        // At factor 1 every method is plain RoPE: the same numbers.
        for m in ScalingMethod::ALL {
            assert_eq!(at(m, 1).perplexity, at(ScalingMethod::None, 1).perplexity);
        }
        // Beyond it, the methods differ, and every number is a number.
        assert_ne!(at(ScalingMethod::Yarn, 4).perplexity, at(ScalingMethod::None, 4).perplexity);
        for p in &e.points {
            assert!(p.perplexity.is_finite() && p.perplexity > 1.0, "{p:?}");
            assert_eq!(
                (p.length, p.segment_loss.len(), p.first_token_attention.len(), p.retrieval.len()),
                (32 * p.factor, p.factor, 1, 5)
            );
            assert!(
                p.retrieval
                    .iter()
                    .all(|d| (0.0..=1.0).contains(&d.accuracy) && (0.0..=1.0).contains(&d.control) && d.samples == 4)
            );
        }
        let csv = std::fs::read_to_string(r.dir.join("length.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 12);
        assert_eq!(std::fs::read_to_string(r.dir.join("retrieval.csv")).unwrap().lines().count(), 1 + 12 * 5);
    }
    for stem in ["length_perplexity_none", "length_perplexity_yarn", "length_first_token_ntk", "length_retrieval"] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        assert!(std::fs::read_to_string(out.join(format!("{stem}.csv"))).unwrap().lines().count() > 2, "{stem}.csv");
    }
    let summary = std::fs::read_to_string(out.join("length_summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 1 + 2 * 4 * 3);
    // The report picks the length charts up.
    let report = gatelab_analysis::report::write(&out).unwrap();
    assert!(report.charts().any(|c| c.stem == "length_retrieval"));
    // A moved sweep folder keeps its length results: length.json names its run folder, not a path.
    let moved = dir.join("pair-moved");
    std::fs::rename(&out, &moved).unwrap();
    std::fs::remove_file(moved.join("length_summary.csv")).unwrap();
    gatelab_analysis::report::write(&moved).unwrap();
    let again = std::fs::read_to_string(moved.join("length_summary.csv")).unwrap();
    assert_eq!(again, summary, "the moved sweep's length summary");
    std::fs::rename(&moved, &out).unwrap();

    // Continued training: a new run from the baseline's weights at twice the length and a new base.
    let parent = &rows.iter().find(|r| r.variant == "baseline").unwrap().dir;
    let ext = dir.join("ext");
    let (code, _, err) = gatelab(&["extend", &dir.join("nothing").display().to_string(), "--seq-len", "64"]);
    assert!(code == 1 && err.lines().count() == 1, "{err}");
    let (code, _, err) = gatelab(&[
        "extend",
        &parent.display().to_string(),
        "--seq-len",
        "64",
        "--rope-theta",
        "100000",
        "--steps",
        "40",
        "--out",
        &ext.display().to_string(),
        "train.log_every=10",
    ]);
    assert_eq!(code, 0, "{err}");
    let child = gatelab_rundir::runs_under(&ext).unwrap().remove(0);
    let file = child.read_file().unwrap();
    assert_eq!(file.meta.parent.as_deref(), Some(parent.as_path()));
    assert_eq!(file.config.train.init_from.as_deref(), Some(parent.as_path()));
    assert_eq!((file.config.data.seq_len, file.config.model.rope_theta, file.config.train.steps), (64, 1e5, 40));
    assert!(child.is_done());
    // It starts where the parent ended, not from chance (ln 65 = 4.17).
    let first: f64 = child.metrics().unwrap()[0].loss;
    assert!(first < 65f64.ln() - 0.5, "first loss {first}: the parent's weights were not loaded");
    // Rerunning skips it.
    let (code, _, err) = gatelab(&[
        "extend",
        &parent.display().to_string(),
        "--seq-len",
        "64",
        "--rope-theta",
        "100000",
        "--steps",
        "40",
        "--out",
        &ext.display().to_string(),
        "train.log_every=10",
    ]);
    assert!(code == 0 && err.contains("already"), "{err}");
}

/// A copy of a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn runs_trained_at_different_lengths_meet_at_the_same_lengths() {
    let dir = scratch("length-mixed");
    let out = dir.join("mixed");
    // Two runs of the tiny preset, one trained at T = 32 and one at T = 64, in one folder.
    for (i, t) in [32, 64].into_iter().enumerate() {
        let (code, _, err) = gatelab(&[
            "sweep",
            "core",
            "--preset",
            "tiny",
            "--variants",
            "baseline",
            "--out",
            &dir.join(format!("t{t}")).display().to_string(),
            "--no-report",
            "train.steps=40",
            "train.warmup_steps=10",
            &format!("data.seq_len={t}"),
        ]);
        assert_eq!(code, 0, "{err}");
        let run = gatelab_rundir::runs_under(&dir.join(format!("t{t}"))).unwrap().remove(0);
        copy_tree(&run.path, &out.join(format!("{i}-{}", run.name())));
    }
    let path = out.display().to_string();
    let eval = |lengths: &str| {
        gatelab(&[
            "eval-length",
            &path,
            "--lengths",
            lengths,
            "--methods",
            "none",
            "--sequences",
            "8",
            "--sink-sequences",
            "4",
            "--needle-samples",
            "2",
        ])
    };
    // A length that fits no run, and a run that no length fits, are refused before anything is
    // written.
    let (code, _, err) = eval("48");
    assert!(code == 1 && err.contains("48 is a multiple of no run's training length"), "{err}");
    let (code, _, err) = eval("32");
    assert!(code == 1 && err.contains("trained at T = 64, and none of the lengths"), "{err}");
    assert!(gatelab_rundir::runs_under(&out).unwrap().iter().all(|r| !r.file("length.json").exists()));
    let (code, stdout, err) = eval("32,64,128");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("trained at T = 64; not evaluated at 32"), "{err}");
    let runs = gatelab_rundir::runs_under(&out).unwrap();
    let got: Vec<Vec<(usize, usize)>> =
        runs.iter().map(|r| read_eval(&r.path).points.iter().map(|p| (p.factor, p.length)).collect()).collect();
    assert_eq!(got, [vec![(1, 32), (2, 64), (4, 128)], vec![(1, 64), (2, 128)]]);
    // The summary's columns are lengths in tokens, and both runs have numbers at 64 and 128.
    assert!(stdout.contains("| configuration | method | 32 | 64 | 128 |"), "{stdout}");
    let ppl: Vec<&str> = stdout.lines().filter(|l| l.contains("| none |")).take(2).collect();
    assert_eq!(ppl.len(), 2, "{stdout}");
    assert!(ppl.iter().any(|l| l.contains("| - |")), "the T = 64 run has no point at 32: {stdout}");
    assert!(ppl.iter().all(|l| l.matches("| -").count() <= 1), "{stdout}");
}
