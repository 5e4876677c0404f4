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
        // Each item's value per run, in the order of `runs`.
        let each = |f: &dyn Fn(&gatelab_rundir::RunFile) -> String| runs.iter().map(|r| f(r)).collect::<Vec<_>>();
        let seeds: BTreeSet<u64> = runs.iter().map(|r| r.meta.seed).collect();
        let per_config = summary.groups.iter().map(|g| g.runs.len()).collect::<BTreeSet<_>>();
        let seeds_text = format!(
            "{} ({}; {} run{} per configuration)",
            seeds.len(),
            seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            per_config.iter().map(usize::to_string).collect::<Vec<_>>().join(" or "),
            if per_config.iter().all(|&n| n == 1) { "" } else { "s" }
        );
        let grid = one_or_all(each(&|r| r.meta.grid.clone()).into_iter());
        let mut rows: Vec<(&str, Vec<String>)> = vec![
            ("grid", each(&|r| r.meta.grid.clone())),
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
            ("seeds", vec![seeds_text]),
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
            ("report by", vec![format!("gatelab {}", env!("CARGO_PKG_VERSION"))]),
        ];
        if runs.iter().any(|r| !r.config.model.cure.is_softmax()) {
            let cures = each(&|r| r.config.model.cure.describe());
            let at = rows.iter().position(|(k, _)| *k == "model").map_or(rows.len(), |i| i + 1);
            rows.insert(at, ("attention weights", cures));
        }
        if runs.iter().any(|r| !r.config.train.trainable.is_all()) {
            let trained = each(&|r| match r.meta.trainable_params {
                Some(n) => format!("{} ({n} parameters)", r.config.train.trainable),
                None => r.config.train.trainable.to_string(),
            });
            let at = rows.iter().position(|(k, _)| *k == "steps").map_or(rows.len(), |i| i + 1);
            rows.insert(at, ("parameters trained", trained));
        }
        if runs.iter().any(|r| r.meta.parent.is_some()) {
            let from = each(&|r| {
                r.meta.parent.as_ref().map_or("step 0".into(), |p| {
                    let sweep = p.parent().and_then(|s| s.file_name()).map(|n| n.to_string_lossy().to_string());
                    format!("the final weights of a run of {}", sweep.unwrap_or_else(|| p.display().to_string()))
                })
            });
            let at = rows.iter().position(|(k, _)| *k == "steps").map_or(rows.len(), |i| i);
            rows.insert(at, ("started from", from));
        }
        let mut shown: Vec<(String, String)> =
            rows.iter().map(|(k, v)| (k.to_string(), one_or_all(v.iter().cloned()))).collect();
        // Several sweep-level items that differ: which values go together, as setups A, B, … with
        // their runs.
        let differing: Vec<&(&str, Vec<String>)> = rows
            .iter()
            .filter(|(k, v)| {
                // The sweep-level items (a variant's own model, cure or learning rate is its row's).
                ["grid", "preset", "data", "tokenizer", "sequence length", "backend"].contains(k)
                    && v.len() == runs.len()
                    && v.iter().collect::<BTreeSet<_>>().len() > 1
            })
            .collect();
        if differing.len() > 1 {
            let mut combos: Vec<(Vec<&str>, usize)> = Vec::new();
            for i in 0..runs.len() {
                let combo: Vec<&str> = differing.iter().map(|(_, v)| v[i].as_str()).collect();
                match combos.iter_mut().find(|(c, _)| *c == combo) {
                    Some((_, n)) => *n += 1,
                    None => combos.push((combo, 1)),
                }
            }
            let text = combos
                .iter()
                .enumerate()
                .map(|(k, (combo, n))| {
                    let items: Vec<String> =
                        differing.iter().zip(combo).map(|((name, _), value)| format!("{name} {value}")).collect();
                    let letter = char::from(b'A' + (k % 26) as u8);
                    format!("{letter}: {} ({n} run{})", items.join(", "), if *n == 1 { "" } else { "s" })
                })
                .collect::<Vec<_>>()
                .join("; ");
            let at = shown.iter().position(|(k, _)| k == "seeds").unwrap_or(shown.len());
            shown.insert(at, ("setups".into(), text));
        }
        Setup { grid, rows: shown }
    }
}
