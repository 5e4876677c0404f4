//! The paper's sparse models as what they are: the paper grid's mixture-of-experts and
//! Switch-Head rows resolve to those modules with no two names for one configuration unless
//! marked, and a tiny mixture-of-experts sweep trains, is analysed and is reported with its
//! expert load (a duplicate variant trained once, reported under both names).

mod common;

use common::{gatelab, scratch};
use std::collections::BTreeMap;

#[test]
fn the_paper_grid_has_one_configuration_per_name_unless_marked() {
    let (code, stdout, err) = gatelab(&["grid", "list", "paper", "--json"]);
    assert_eq!(code, 0, "{err}");
    let variants: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let marked: BTreeMap<String, String> = variants
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), v["same_as"].as_str()?.to_string())))
        .collect();
    assert_eq!(marked, BTreeMap::from([("switchhead-v-1top1".to_string(), "g2-headwise".to_string())]));
    // Each variant's resolved configuration, read independently of the marking.
    let mut configs: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for v in &variants {
        let name = v["name"].as_str().unwrap();
        let (code, stdout, err) = gatelab(&["grid", "show", "paper", name, "--json"]);
        assert_eq!(code, 0, "{name}: {err}");
        let mut config: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        config["train"]["seed"] = 0.into();
        for (other, seen) in &configs {
            if *seen == config {
                assert_eq!(marked.get(name), Some(other), "{name} and {other} are one configuration, unmarked");
            }
        }
        configs.insert(name.to_string(), config);
    }
    let model = |name: &str| &configs[name]["model"];
    // The sparse rows use the new modules, not wider dense FFNs.
    assert_eq!(
        (model("baseline")["moe"]["experts"].as_u64(), model("baseline")["moe"]["top_k"].as_u64()),
        (Some(8), Some(2))
    );
    assert_eq!(
        (model("add-4-experts")["moe"]["experts"].as_u64(), model("add-4-experts")["moe"]["top_k"].as_u64()),
        (Some(12), Some(6))
    );
    assert_eq!(model("switchhead-kv-4top4")["switch_head"]["keys"], true);
    assert_eq!(model("switchhead-v-4top4")["switch_head"]["keys"], false);
    assert_eq!(model("switchhead-v-8top2")["switch_head"]["experts"], 8);
    assert_ne!(configs["switchhead-kv-4top4"], configs["switchhead-v-4top4"]);
    // Table 2 is the paper's dense model.
    assert_eq!(model("t2-shallow-baseline-lr4e-3")["moe"]["experts"], 0, "{}", model("t2-shallow-baseline-lr4e-3"));
    let (_, text, _) = gatelab(&["grid", "list", "paper"]);
    assert!(text.contains("[= g2-headwise: trained once]"), "{text}");
}

#[test]
fn a_tiny_mixture_of_experts_sweep_trains_and_reports_its_routing() {
    let dir = scratch("moe");
    let grid = dir.join("moe.json");
    std::fs::write(
        &grid,
        r#"{"name": "moe", "set": {"model.moe": {"experts": 4, "top_k": 2, "d_expert": 16}, "train.steps": 300},
            "variants": [
              {"name": "baseline", "paper": "Table 1 row 1"},
              {"name": "g1-elementwise", "paper": "Table 1 row 5", "set": {"model.gate.position": "g1"}},
              {"name": "same-baseline", "paper": "Table 1 row 1 again", "set": {"model.moe.top_k": 2}},
              {"name": "switchhead-v-4top2", "paper": "Table 6", "set": {"model.switch_head": {"experts": 4, "top_k": 2}}}
            ]}"#,
    )
    .unwrap();
    let out = dir.join("out");
    let (code, _, err) =
        gatelab(&["sweep", &grid.display().to_string(), "--preset", "tiny", "--out", &out.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("same-baseline (Table 1 row 1 again) is the same configuration as baseline"), "{err}");
    let runs = gatelab_rundir::runs_under(&out).unwrap();
    assert_eq!(runs.len(), 3, "the duplicate is trained once");
    assert!(runs.iter().all(|r| r.is_done()));
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("baseline = same-baseline"), "{summary}");
    assert!(summary.contains("Mixture-of-experts routing"), "{summary}");
    let png = std::fs::read(out.join("expert_load.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The routing is measured: loads sum to 1 per layer, every token went to top_k = 2 experts.
    let analysis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].file("analysis.json")).unwrap()).unwrap();
    let routing = &analysis["stats"]["layers"][0]["routing"];
    let load: Vec<f64> = routing["load"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(load.len(), 4);
    assert!((load.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{load:?}");
    assert!(routing["entropy"].as_f64().unwrap() <= routing["max_entropy"].as_f64().unwrap() + 1e-9);
    assert_eq!(routing["dropped"].as_f64(), Some(0.0));
}
