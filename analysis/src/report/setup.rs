//! What a report says was run: grid, preset, data, model, optimisation, seeds, backend, code.

use crate::summary::Summary;
use serde::Serialize;
use std::collections::BTreeSet;

/// The setup of a sweep, one line per item; items that differ between its runs list every value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Setup {
    /// The grid's name (the report's title), or the names of several.
    pub grid: String,
    /// `(item, value)` in the order printed.
    pub rows: Vec<(String, String)>,
}

/// The distinct values of `items`, joined; several are marked as differing.
fn one_or_all(items: impl Iterator<Item = String>) -> String {
    let set: BTreeSet<String> = items.filter(|s| !s.is_empty()).collect();
    match set.len() {
        0 => "-".into(),
        1 => set.into_iter().next().expect("one"),
        _ => format!(
            "{} (differs between configurations; see the table)",
            set.into_iter().collect::<Vec<_>>().join("; ")
        ),
    }
}

impl Setup {
    /// The setup of `summary`'s runs.
    pub fn of(summary: &Summary) -> Setup {
        let runs: Vec<&gatelab_rundir::RunFile> =
            summary.groups.iter().flat_map(|g| g.runs.iter().map(|r| &r.file)).collect();
        let each = |f: &dyn Fn(&gatelab_rundir::RunFile) -> String| one_or_all(runs.iter().map(|r| f(r)));
        let seeds: BTreeSet<u64> = runs.iter().map(|r| r.meta.seed).collect();
        let per_config = summary.groups.iter().map(|g| g.runs.len()).collect::<BTreeSet<_>>();
        let seeds_text = format!(
            "{} ({}; {} run{} per configuration)",
            seeds.len(),
            seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            per_config.iter().map(usize::to_string).collect::<Vec<_>>().join(" or "),
            if per_config.iter().all(|&n| n == 1) { "" } else { "s" }
        );
        let grid = each(&|r| r.meta.grid.clone());
        let mut rows = vec![
            ("grid", grid.clone()),
            ("preset", each(&|r| r.meta.preset.clone())),
            ("data", each(&|r| r.config.data.corpus.describe())),
            (
                "tokenizer",
                each(&|r| {
                    if r.config.data.corpus.is_synthetic() {
                        "synthetic ids".into()
                    } else {
                        r.config.data.tokenizer.describe()
                    }
                }),
            ),
            ("sequence length", each(&|r| r.config.data.seq_len.to_string())),
            (
                "model",
                each(&|r| {
                    let m = &r.config.model;
                    let mut ffn = if !m.moe.is_dense() {
                        format!(
                            "mixture-of-experts FFN: {} SwiGLU experts of {}, top-{}{}",
                            m.moe.experts,
                            m.moe.d_expert,
                            m.moe.top_k,
                            if m.moe.shared_experts > 0 {
                                format!(", {} shared", m.moe.shared_experts)
                            } else {
                                String::new()
                            }
                        )
                    } else if m.d_ff == 0 {
                        "attention-only".to_string()
                    } else {
                        format!("SwiGLU {}", m.ffn_width())
                    };
                    let sh = &m.switch_head;
                    if !sh.is_off() {
                        let on: Vec<&str> = [(sh.keys, "key"), (sh.values, "value"), (sh.outputs, "output")]
                            .into_iter()
                            .filter_map(|(on, name)| on.then_some(name))
                            .collect();
                        ffn.push_str(&format!(
                            "; Switch-Head: {} {} experts per head, top-{}",
                            sh.experts,
                            on.join("/"),
                            sh.top_k
                        ));
                    }
                    format!(
                        "{} layers, d_model {}, {} heads ({} KV) of {}, {ffn}",
                        m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.head_dim
                    )
                }),
            ),
            ("steps", each(&|r| r.config.train.steps.to_string())),
            ("batch", each(&|r| format!("{} sequences", r.config.train.batch_size))),
            (
                "learning rate",
                each(&|r| {
                    format!(
                        "{} (AdamW, warmup {}, cosine to {}×)",
                        r.config.train.lr, r.config.train.warmup_steps, r.config.train.min_lr_ratio
                    )
                }),
            ),
            ("seeds", seeds_text),
            ("backend", each(&|r| r.meta.backend.clone())),
            (
                "trained by",
                each(&|r| {
                    let version = if r.meta.gatelab_version.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", r.meta.gatelab_version)
                    };
                    let c = &r.meta.git_commit;
                    let dirty = if c.ends_with("+dirty") { " with uncommitted changes" } else { "" };
                    let commit = if c.is_empty() || c == "unknown" {
                        String::new()
                    } else {
                        format!(", commit {}{dirty}", &c[..c.len().min(10)])
                    };
                    format!("gatelab{version}{commit}")
                }),
            ),
            ("report by", format!("gatelab {}", env!("CARGO_PKG_VERSION"))),
        ];
        if runs.iter().any(|r| !r.config.model.cure.is_softmax()) {
            let cures = each(&|r| r.config.model.cure.name().to_string());
            let at = rows.iter().position(|(k, _)| *k == "model").map_or(rows.len(), |i| i + 1);
            rows.insert(at, ("attention weights", cures));
        }
        Setup { grid, rows: rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }
}
