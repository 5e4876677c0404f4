//! The paper grid's report compares every row with the baseline the paper compares it with:
//! each variant but the baselines gets a paired row (Δ against its baseline, seed by seed).
//! Planned runs are written as finished folders with made-up losses (no training): the pairing
//! reads configs and metadata only.

use gatelab::backend::Backend;
use gatelab::sweep::{self, SweepOptions};
use gatelab_analysis::summary::{Metric, summarize};
use gatelab_rundir::{EvalRecord, RunFile, Status, StepRecord};

mod common;

use common::scratch;

/// The paper's baselines: rows that are compared with nothing (Table 1 row 1, and Table 2's
/// ungated rows at each depth, batch and learning rate).
fn is_baseline(variant: &str) -> bool {
    variant == "baseline" || variant.contains("-baseline-")
}

#[test]
fn every_paper_variant_but_the_baselines_has_a_paired_row() {
    let dir = scratch("pairing");
    let opts = SweepOptions {
        grid: "paper".into(),
        preset: "small".into(),
        backend: Backend::Flex,
        device_index: 0,
        devices: vec![],
        data: None,
        out: Some(dir.join("paper")),
        shard: None,
        seeds: 2,
        overrides: vec![],
        variants: vec![],
    };
    let plan = sweep::plan(&opts).unwrap();
    for (k, located) in plan.runs.iter().enumerate() {
        let meta = sweep::meta(&plan, &opts, located, "test");
        std::fs::create_dir_all(&located.dir.path).unwrap();
        located.dir.write_file(&RunFile { meta, config: located.run.config.clone() }).unwrap();
        let loss = 3.0 + 0.01 * k as f64;
        located.dir.log_eval(&EvalRecord { step: 10, loss, perplexity: loss.exp(), tokens: 100 }).unwrap();
        for step in [5, 10] {
            let record = StepRecord {
                step,
                loss: loss + 1.0 / step as f64,
                lr: 1e-3,
                grad_norm: 1.0,
                tokens_per_s: 1.0,
                spikes: 0,
            };
            located.dir.log_step(&record).unwrap();
        }
        std::fs::write(located.dir.file("model.safetensors"), b"weights").unwrap();
        located.dir.set_status(&Status::Done).unwrap();
    }
    let summary = summarize(&dir.join("paper")).unwrap();
    let grid = gatelab::grid::load("paper").unwrap();
    // Every variant of the grid is reported, under its own name or as another's `= name`.
    for v in &grid.variants {
        let group = summary
            .groups
            .iter()
            .find(|g| g.variant == v.name || g.also.iter().any(|o| o.variant == v.name))
            .unwrap_or_else(|| panic!("{} is not reported", v.name));
        if is_baseline(&v.name) {
            continue;
        }
        let b = group.baseline.unwrap_or_else(|| panic!("{} has no baseline to pair with", v.name));
        assert!(group.versus_baseline.contains_key(&Metric::ValLoss), "{}: no paired val loss", v.name);
        // The baseline it is paired with is the one the grid names, else the plain one.
        let want = v.baseline.as_deref().unwrap_or("baseline");
        assert_eq!(summary.groups[b].variant, want, "{} is paired with {}", v.name, summary.groups[b].variant);
    }
    // Table 2's gated rows, which also match the baseline's parameters, get their verdicts.
    let t2 = summary.groups.iter().find(|g| g.variant == "t2-shallow-g1-lr4e-3").unwrap();
    assert!(t2.verdicts.contains_key(&Metric::ValLoss), "{:?}", t2.verdicts);
    // Only the named variants, when asked: the pairing still names the baseline's run.
    let some = sweep::plan(&SweepOptions { variants: vec!["more-kv-heads".into()], ..opts.clone() }).unwrap();
    assert_eq!(some.runs.len(), 2);
    assert!(some.runs.iter().all(|l| l.baseline.as_ref().is_some_and(|b| b.variant == "baseline")));
    let err = sweep::plan(&SweepOptions { variants: vec!["g9".into()], ..opts }).unwrap_err();
    assert!(err.to_string().contains("--variants g9: grid paper has no such variant"), "{err}");

    // Its report: 36 configurations, each drawn in a look of its own; curves over training of that
    // many are small multiples, one panel each.
    let looks: Vec<_> = (0..summary.groups.len()).map(gatelab_analysis::charts::look).collect();
    for (i, a) in looks.iter().enumerate() {
        assert!(!looks[..i].contains(a), "configuration {i} looks like an earlier one");
    }
    let written = gatelab_analysis::report::write(&dir.join("paper")).unwrap();
    let curves = written.charts().find(|c| c.stem == "loss_curves").expect("loss curves");
    assert!(curves.caption.contains("One panel per configuration (36 of them"), "{}", curves.caption);
    assert!(std::fs::read(dir.join("paper/loss_curves.png")).unwrap().starts_with(b"\x89PNG"));
}
