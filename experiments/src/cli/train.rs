//! `gatelab train`: the README's main job.

use gatelab::backend::{self, Backend};
use gatelab::train::{self, Outcome, TrainConfig, lm_batch};
use gatelab_analysis::sink::{chance_first_token, first_token_attention};
use gatelab_data::synthetic::BigramBackcopy;
use gatelab_model::{GateSpec, ModelConfig};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Backend to run on.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Device index (wgpu discrete GPU / CUDA device).
    #[arg(long, default_value_t = 0)]
    device_index: usize,
    /// Optimiser steps per variant (metrics.md's recipe: 4000).
    #[arg(long, default_value_t = 4000)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the summary goes.
    #[arg(long, default_value = "results/train")]
    out: PathBuf,
}

/// Writes `contents` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, contents: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: &TrainArgs) -> Result<(), String> {
    let device = backend::open(args.backend, args.device_index)?;
    let data = BigramBackcopy::default();
    let corpus = data.build()?;
    // The positive control of ../shared/notes/metrics.md: 1 layer, attention only, d 64, 1 head.
    let base = ModelConfig {
        vocab_size: data.vocab_size(),
        d_model: 64,
        n_layers: 1,
        n_heads: 1,
        n_kv_heads: 1,
        head_dim: 64,
        d_ff: 0,
        qk_norm: false,
        // Untied: the direct path embed → head then carries the bigram, so the head is idle
        // (dormant, on BOS) except after triggers. Tied, E·Eᵀ is symmetric and cannot.
        tie_embeddings: false,
        ..ModelConfig::default()
    };
    let cfg = TrainConfig { steps: args.steps, batch_size: args.batch_size, seed: args.seed, ..TrainConfig::default() };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut rows = Vec::new();
    for (name, gate) in [("baseline", GateSpec::BASELINE), ("g1-elementwise", GateSpec::G1_ELEMENTWISE)] {
        let model = ModelConfig { gate, ..base.clone() };
        let params = model.param_count().total;
        eprintln!("{name}: {params} parameters, {} steps on {}", cfg.steps, args.backend.name());
        let started = std::time::Instant::now();
        // On a terminal one line redrawn in place; in a log, a line every 500 steps.
        let tty = std::io::stderr().is_terminal();
        let (net, outcome) = train::train(&model, &cfg, &corpus, &device, 100, |r| {
            let line = format!("  step {:>5}/{}  loss {:.4}  lr {:.2e}  {:>7.0} tok/s", r.step, cfg.steps, r.loss, r.lr, r.tokens_per_s);
            if tty {
                eprint!("\r{line}");
                let _ = std::io::stderr().flush();
            } else if r.step % 500 == 0 || r.step == cfg.steps {
                eprintln!("{line}");
            }
        })?;
        if tty {
            eprintln!();
        }
        // Held-out evaluation: sequences 0.. are never trained on.
        let (inputs, targets) = lm_batch(&corpus, 0, 64, cfg.seq_len, &device);
        let (logits, probes) = net.forward_probed(inputs);
        let loss = gatelab_model::cross_entropy(logits, targets).into_scalar::<f32>() as f64;
        let f_attn = first_token_attention(&probes.layers[0].attention.attn, 1);
        let f_attn = f_attn.iter().sum::<f64>() / f_attn.len() as f64;
        rows.push(serde_json::json!({
            "variant": name, "gate": gate, "params": params, "outcome": outcome,
            "eval_loss": loss, "first_token_attention": f_attn,
            "seconds": started.elapsed().as_secs_f64(),
        }));
        if let Outcome::Diverged { step } = outcome {
            eprintln!("  diverged at step {step}");
        }
    }
    let chance = chance_first_token(cfg.seq_len, 1);
    println!("\n{:<16} {:>10} {:>12} {:>22}", "variant", "params", "eval loss", "first-token attention");
    for r in &rows {
        println!("{:<16} {:>10} {:>12.4} {:>22.3}", r["variant"].as_str().unwrap(), r["params"], r["eval_loss"].as_f64().unwrap(), r["first_token_attention"].as_f64().unwrap());
    }
    println!("(queries 1..{} of 64 held-out sequences, mean over heads; chance level {chance:.3})", cfg.seq_len);
    let summary = serde_json::json!({ "backend": args.backend, "train": cfg, "chance_first_token": chance, "runs": rows });
    let path = args.out.join("summary.json");
    write_atomic(&path, &serde_json::to_string_pretty(&summary).unwrap())?;
    println!("wrote {}", path.display());
    Ok(())
}
