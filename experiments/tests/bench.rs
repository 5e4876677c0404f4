//! `gatelab bench` end to end at a tiny size: every case is measured in its own process, the
//! PyTorch peer runs beside it from the same resolved config (required under
//! GATELAB_REQUIRE_TORCH=1), and the JSON and the tables hold what was measured. Nothing here
//! asserts on how fast anything is.

mod common;

use common::{gatelab_in, manifest_dir, python_with, scratch};

const TINY: [&str; 6] = [
    "model.d_model=32",
    "model.n_heads=2",
    "model.n_kv_heads=2",
    "model.head_dim=16",
    "data.seq_len=32",
    "train.batch_size=4",
];

/// Runs `gatelab bench --backends flex OPTIONS --out DIR/tiny.json` at the tiny size, with the
/// PyTorch peer where a Python with torch is found, from the repository root as scripts/gatelab
/// runs it (that is where bench/peer.py is found); it must succeed. Whether the peer ran, the
/// JSON written, stdout and stderr.
fn tiny_bench(dir: &std::path::Path, options: &[&str]) -> (bool, serde_json::Value, String, String) {
    let out = dir.join("tiny.json");
    let with_peer = python_with("torch").is_some();
    let mut args = vec!["bench", "--backends", "flex", "--out", out.to_str().unwrap()];
    args.extend(options);
    if !with_peer {
        args.push("--no-peer");
    }
    args.extend(TINY);
    let (code, stdout, stderr) = gatelab_in(&args, &manifest_dir().join(".."), &[]);
    assert_eq!(code, 0, "{stderr}");
    let json = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (with_peer, json, stdout, stderr)
}

#[test]
fn bench_measures_each_case_and_its_peer_side_by_side() {
    let dir = scratch("bench-run");
    let (with_peer, json, stdout, stderr) = tiny_bench(&dir, &["--rounds", "2", "--steps", "2", "--warmup", "1"]);
    let ms = json["measurements"].as_array().unwrap();
    let mut expected = vec![("baseline", "gatelab-flex"), ("g1-elementwise", "gatelab-flex")];
    if with_peer {
        expected.extend([("baseline", "pytorch-eager"), ("g1-elementwise", "pytorch-eager")]);
    }
    for (variant, imp) in &expected {
        let m = ms
            .iter()
            .find(|m| m["variant"] == *variant && m["implementation"] == *imp)
            .unwrap_or_else(|| panic!("no {variant} on {imp}: {json}"));
        for key in ["train_tokens_per_s", "forward_tokens_per_s"] {
            assert!(m[key].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{variant} {imp} {key}: {m}");
        }
        if imp.starts_with("gatelab") {
            assert!(
                m["analysis_tokens_per_s"].as_f64().is_some_and(|v| v > 0.0)
                    && m["peak_rss_mib"].as_f64().is_some_and(|v| v > 0.0),
                "{m}"
            );
        }
    }
    assert_eq!(ms.len(), expected.len(), "{json}");
    assert_eq!((json["rounds"].as_u64(), json["steps"].as_u64()), (Some(2), Some(2)));
    // Both rounds ran every case (each reports its best of them).
    for (variant, imp) in &expected {
        assert_eq!(stderr.matches(&format!("{variant:<16} {imp:<16} train")).count(), 2, "{variant} {imp}:\n{stderr}");
    }
    // The tables: ratios to PyTorch where the peer ran, and the gate's step time against the baseline.
    // The gate's overhead is the median of the rounds' paired ratios, each from that round's two
    // measurements.
    let rounds = json["rounds_measured"].as_array().unwrap();
    assert_eq!(rounds.len(), 2 * expected.len());
    let tok = |round: u64, variant: &str| {
        let r = rounds
            .iter()
            .find(|r| {
                r["round"] == round
                    && r["measurement"]["implementation"] == "gatelab-flex"
                    && r["measurement"]["variant"] == variant
            })
            .unwrap();
        r["measurement"]["train_tokens_per_s"].as_f64().unwrap()
    };
    let paired: Vec<f64> = (1..=2).map(|r| tok(r, "baseline") / tok(r, "g1-elementwise")).collect();
    let o = json["overhead"].as_array().unwrap().iter().find(|o| o["implementation"] == "gatelab-flex").unwrap();
    assert_eq!((o["variant"].as_str(), o["rounds"].as_u64()), (Some("g1-elementwise"), Some(2)));
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * a.abs().max(1.0);
    assert!(close(o["median"].as_f64().unwrap(), 0.5 * (paired[0] + paired[1])), "{o} {paired:?}");
    assert!(
        close(o["min"].as_f64().unwrap(), paired[0].min(paired[1]))
            && close(o["max"].as_f64().unwrap(), paired[0].max(paired[1])),
        "{o}"
    );
    let cell = stdout.lines().find(|l| l.starts_with("| gatelab-flex |")).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        cell,
        format!(
            "| gatelab-flex | {:.2}× ({:.2}–{:.2}) |",
            o["median"].as_f64().unwrap(),
            o["min"].as_f64().unwrap(),
            o["max"].as_f64().unwrap()
        )
    );
    let row = stdout.lines().find(|l| l.starts_with("| baseline | gatelab-flex |")).unwrap();
    assert_eq!(row.split('|').nth(4).unwrap().trim() != "-", with_peer, "{row}");
    assert_eq!(json["report"].as_str().unwrap(), stdout);
    // The resolved configs the cases (and the peer) read.
    assert!(
        dir.join("tiny.configs/f32/baseline.json").is_file()
            && dir.join("tiny.configs/f32/g1-elementwise.json").is_file()
    );
    // The CPU it ran on, and the FLOPs per token an MFU is computed from (bench/mfu.py).
    assert!(json["cpu"]["model"].is_string() && json["cpu"]["flags"].is_array(), "{}", json["cpu"]);
    assert!(stdout.starts_with("CPU: "), "{stdout}");
    assert!(json["flops_per_token"]["g1-elementwise"].as_f64() > json["flops_per_token"]["baseline"].as_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--precisions f32,bf16` times each backend in both (`train.precision`), under two names, and
/// the peer in bf16 autocast beside the bf16 case.
#[test]
fn bench_times_each_precision_under_its_own_name() {
    let dir = scratch("bench-precisions");
    let (with_peer, json, _, stderr) =
        tiny_bench(&dir, &["--precisions", "f32,bf16", "--rounds", "1", "--steps", "2", "--warmup", "1"]);
    let ms = json["measurements"].as_array().unwrap();
    let mut expected = vec!["gatelab-flex", "gatelab-flex-bf16"];
    if with_peer {
        expected.extend(["pytorch-eager", "pytorch-eager-bf16"]);
    }
    for imp in expected {
        assert!(
            ms.iter().any(|m| m["implementation"] == imp && m["variant"] == "baseline"),
            "no {imp}: {json}\n{stderr}"
        );
    }
    let ratio = json["bf16_over_f32"].as_array().unwrap().iter().find(|r| r["of"] == "gatelab-flex").cloned();
    assert!(ratio.is_some_and(|r| r["median"].as_f64().is_some_and(|m| m > 0.0)), "{json}");
    assert!(json["report"].as_str().unwrap().contains("bf16 ÷ f32"), "{}", json["report"]);
    let bf16: gatelab_rundir::RunConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny.configs/bf16/baseline.json")).unwrap()).unwrap();
    assert_eq!(bf16.train.precision, gatelab_rundir::config::Precision::Bf16);
    if with_peer {
        let peers = json["against_pytorch"].as_array().unwrap();
        assert!(
            peers.iter().any(|p| p["implementation"] == "gatelab-flex-bf16" && p["peer"] == "pytorch-eager-bf16"),
            "{peers:?}"
        );
    }
    let (code, _, err) = gatelab_in(
        &[
            "bench",
            "--backends",
            "flex",
            "--no-peer",
            "--precisions",
            "fp8",
            "--out",
            dir.join("x.json").to_str().unwrap(),
        ],
        &manifest_dir().join(".."),
        &[],
    );
    assert!(code != 0 && err.contains("--precisions"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_interleaves_the_variants_step_by_step_and_pairs_their_steps() {
    let dir = scratch("bench-interleave");
    let (with_peer, json, stdout, _) =
        tiny_bench(&dir, &["--interleave", "--rounds", "2", "--steps", "3", "--warmup", "1", "--passes", "2"]);
    assert_eq!(json["interleave"], true);
    let rounds = json["rounds_measured"].as_array().unwrap();
    let mut imps = vec!["gatelab-flex"];
    if with_peer {
        imps.push("pytorch-eager");
    }
    assert_eq!(rounds.len(), 2 * 2 * imps.len(), "{json}");
    for imp in imps {
        // Every measurement carries its three steps' times, and they add up to its tokens/s.
        let steps = |round: u64, variant: &str| -> Vec<f64> {
            let m = &rounds
                .iter()
                .find(|r| {
                    r["round"] == round
                        && r["measurement"]["implementation"] == imp
                        && r["measurement"]["variant"] == variant
                })
                .unwrap_or_else(|| panic!("{imp} {variant} round {round}: {json}"))["measurement"];
            let s: Vec<f64> = m["step_seconds"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!(s.len(), 3, "{m}");
            let tokens = (3 * 4 * 32) as f64;
            assert!(
                (m["train_tokens_per_s"].as_f64().unwrap() - tokens / s.iter().sum::<f64>()).abs()
                    < 1e-6 * m["train_tokens_per_s"].as_f64().unwrap(),
                "{m}"
            );
            if imp.starts_with("gatelab") {
                // Two models shared the process: its peak memory is no one variant's.
                assert!(m["peak_rss_mib"].is_null(), "{m}");
            }
            s
        };
        // The overhead is the median of the six per-step ratios, gate over baseline, same step.
        let mut ratios: Vec<f64> = (1..=2)
            .flat_map(|r| {
                steps(r, "g1-elementwise").into_iter().zip(steps(r, "baseline")).map(|(g, b)| g / b).collect::<Vec<_>>()
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let o = json["overhead"].as_array().unwrap().iter().find(|o| o["implementation"] == imp).unwrap();
        assert_eq!((o["pairs"].as_u64(), o["rounds"].as_u64()), (Some(6), Some(2)), "{o}");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * a.abs().max(1.0);
        assert!(close(o["median"].as_f64().unwrap(), 0.5 * (ratios[2] + ratios[3])), "{o} {ratios:?}");
        // Six pairs are too few to leave any out: the interval is their range.
        let ci: Vec<f64> = o["ci95"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(close(ci[0], ratios[0]) && close(ci[1], ratios[5]), "{o} {ratios:?}");
        let cell = stdout.lines().find(|l| l.starts_with(&format!("| {imp} |"))).unwrap_or_else(|| panic!("{stdout}"));
        assert_eq!(cell, format!("| {imp} | {:.2}× ({:.2}–{:.2}) |", o["median"].as_f64().unwrap(), ci[0], ci[1]));
    }
    assert!(stdout.contains("median of 6 interleaved step pairs (2 rounds of 3 steps)"), "{stdout}");
    // The best-round table holds rates only; the steps' times stay with their rounds.
    assert!(json["measurements"].as_array().unwrap().iter().all(|m| m.get("step_seconds").is_none()), "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Extra arguments, environment, and the one line expected.
type BadCase<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bench_refuses_bad_options_in_one_line_before_writing() {
    let dir = scratch("bench-bad");
    let out = dir.join("x.json");
    let out_s = out.to_str().unwrap();
    let cases: Vec<BadCase> = vec![
        (vec!["--steps", "0"], &[], "gatelab: --steps, --passes, --rounds and --threads must be at least 1"),
        (vec!["--passes", "0"], &[], "gatelab: --steps, --passes, --rounds and --threads must be at least 1"),
        (vec!["--variants", "baseline,nope"], &[], "gatelab: --variants: grid core has no variant nope"),
        (
            vec!["model.d_model=abc"],
            &[],
            "gatelab: grid core, variant baseline: override model.d_model: expected a number, not \"abc\"",
        ),
    ];
    let mut cases = cases;
    if python_with("torch").is_some() {
        cases.push((
            vec![],
            &[("GATELAB_PEER", "/nonexistent/peer.py")],
            "gatelab: GATELAB_PEER=/nonexistent/peer.py: no such file",
        ));
    }
    for (extra, env, expected) in cases {
        let mut args = vec!["bench", "--backends", "flex", "--out", out_s];
        args.extend(extra.iter().copied());
        let (code, _, stderr) = gatelab_in(&args, &dir, env);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("gatelab: ") && stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out.exists() && !dir.join("x.configs").exists(), "{args:?} wrote before refusing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
