//! The `gatelab` command.

mod cli;

use clap::{Parser, Subcommand};
use gatelab::Result;
use gatelab::backend::{self, Backend};
use gatelab_model::ModelConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gatelab", version, about = "Gated-attention experiments (Qiu et al. 2025) on Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the backends this binary was built with and whether each works here.
    Backends {
        /// Print JSON: one object per backend with its name, whether it works, and why not.
        #[arg(long)]
        json: bool,
    },
    /// Print the exact parameter counts of a model config, without building it.
    #[command(
        after_help = "Examples:\n  gatelab params results/core/baseline-0123456789/config.json\n  gatelab grid show core g1-elementwise --json > g1.json && gatelab params g1.json"
    )]
    Params {
        /// A run's config.json, the output of `grid show --json`, or a model config; the default
        /// model config when omitted.
        config: Option<PathBuf>,
    },
    /// Train every variant of a grid (resumable: finished runs are skipped, interrupted ones resume).
    #[command(after_help = "Examples:
  gatelab sweep core                                  the core grid at the small preset on flex
  gatelab sweep core --preset tiny --seeds 3          seconds per run, three seeds
  gatelab sweep core train.lr=3e-3,6e-3 --seeds 3     one configuration per learning rate
  gatelab sweep my-grid.json --data tinyshakespeare model.n_layers=2
  gatelab sweep paper --sbatch 8 > paper.sbatch       a Slurm job array of 8 shards
The override keys, with their values: gatelab grid show core baseline --json")]
    Sweep(cli::sweep::SweepArgs),
    /// Continue finished runs at a longer length and RoPE base, as new runs naming their parent.
    #[command(after_help = "Examples:
  gatelab extend results/core --seq-len 512 --rope-theta 1e5 --steps 500")]
    Extend(cli::sweep::ExtendArgs),
    /// Add a gate to finished runs trained without one and train it (alone, by default), beside
    /// a control that trains every parameter the same steps with no gate.
    #[command(after_help = "Examples:
  gatelab retrofit results/core --variants baseline --steps 1000            G1 2σ from zero, gate only
  gatelab retrofit results/core --variants baseline --init random --gate position=g1 --gate activation=sigmoid
  gatelab retrofit results/length --seq-len 512 --rope-theta 1e5 --train gate+norms
Refused before anything is written: an unfinished parent, one with a gate, a cure or experts, and
--init identity with a gate that does not start as no gate.")]
    Retrofit(cli::retrofit::RetrofitArgs),
    /// Measure sinks, activations and gates of finished runs on their held-out analysis split
    /// (writes analysis.json in each run folder).
    #[command(after_help = "Examples:
  gatelab analyze results/core                        every finished run of a sweep
  gatelab analyze --hf released/gate_elementwise --text sample.txt results/hf/gate")]
    Analyze(cli::analyze::AnalyzeArgs),
    /// Write a finished run as a Hugging Face Qwen3 checkpoint directory.
    #[command(after_help = "Examples:
  gatelab export results/core-big/g1-elementwise-0123456789 --out hf/g1")]
    Export(cli::export::ExportArgs),
    /// Report a sweep: one row per configuration with 95% intervals over seeds and paired
    /// differences to the baseline, figures and report.html (analysing runs that need it).
    #[command(after_help = "Examples:
  gatelab report results/core                         summary.md, summary.csv, figures, report.html")]
    Report(cli::report::ReportArgs),
    /// Two sweeps side by side: two backends, two seeds, two presets.
    #[command(after_help = "Examples:
  gatelab compare results/core results/core-tch --out compare.md")]
    Compare(cli::report::CompareArgs),
    /// Held-out perplexity of finished runs (their validation split, or --text), and the
    /// streaming probe (--window): writes perplexity.json beside each run.
    #[command(after_help = "Examples:
  gatelab eval results/core --json                               validation perplexity of every run
  gatelab eval results/ladder/m-baseline-530114c5d2 --text data/corpora/tinyshakespeare.txt --seq-len 256
  gatelab eval results/cures --window 32                          first token kept vs evicted from a 32-key window")]
    Eval(cli::eval::EvalArgs),
    /// Perplexity, first-token attention and needle retrieval beyond the training length, per
    /// RoPE scaling method (writes length.json beside each run; charts for a sweep).
    #[command(after_help = "Examples:
  gatelab eval-length results/core                    T, 2T, 4T, 8T under none, linear, ntk, yarn
  gatelab eval-length results/core --factors 1,4 --methods none,yarn --rope-theta 1e6")]
    EvalLength(cli::length::EvalLengthArgs),
    /// Training, forward and analysis throughput per backend and variant, against the same model
    /// in PyTorch (bench/peer.py), measured side by side.
    #[command(after_help = "Examples:
  gatelab bench --compile --rounds 3 --steps 30
  gatelab bench --interleave --backends flex model.d_model=256 model.n_layers=6")]
    Bench(cli::bench::BenchArgs),
    /// The analysis's cost against a plain forward over the same tokens.
    AnalyzeBench(cli::analyze::AnalyzeBenchArgs),
    /// List grids, or the variants of one (with their paper table and row); show a variant.
    #[command(
        after_help = "Examples:\n  gatelab grid list\n  gatelab grid list paper --json\n  gatelab grid show paper g2-headwise --preset tiny --json   every override key and its value"
    )]
    Grid {
        #[command(subcommand)]
        what: GridCommand,
    },
    /// Prepare a corpus as a run would (tokenizer, splits) and print what it holds.
    #[command(
        after_help = "Examples:\n  gatelab data --data tinyshakespeare --tokenizer bpe:1024 --seq-len 256\n  gatelab data --data zipf-markov"
    )]
    Data {
        #[command(flatten)]
        data: cli::data::DataArgs,
        /// Save the tokenizer (text corpora) to this tokenizer.json.
        #[arg(long)]
        save_tokenizer: Option<PathBuf>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Tokenisation and batching throughput on a text corpus.
    DataBench {
        /// The text: tinyshakespeare (built in), a file, a directory of .txt, a .jsonl file.
        #[arg(long, alias = "text", default_value = "tinyshakespeare")]
        data: String,
        /// BPE vocabulary to train and encode with.
        #[arg(long, default_value_t = 4096)]
        vocab: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GridCommand {
    /// The built-in grids, or the variants of GRID.
    List {
        /// A built-in grid (core, paper, ladder, stability, stability-deep, activations, cures, recall, gates) or a grid JSON file.
        grid: Option<String>,
        /// Print JSON (each variant with its paper reference and settings).
        #[arg(long)]
        json: bool,
    },
    /// One variant's resolved config.
    Show {
        /// A built-in grid (core, paper, ladder, stability, stability-deep, activations, cures, recall, gates) or a grid JSON file.
        grid: String,
        /// One of its variants (`gatelab grid list GRID`).
        variant: String,
        /// Scale: tiny, small or paper.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Print the resolved config as JSON: every override key with its value, and the
        /// parameter counts.
        #[arg(long)]
        json: bool,
    },
}

/// glibc's allocator returns large freed blocks to the OS and faults fresh pages in for the next
/// one; a training step allocates and frees the same large buffers every step (activations,
/// attention scores, gradients). Keeping them in the heap (blocks up to 32 MB from the heap, no
/// trimming below 1 GB) measured 25-30% faster training on flex at the small preset
/// (`gatelab bench`), with the same peak memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only adjusts allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Vulkan's loader complains on stderr, at every device it enumerates, when `XDG_RUNTIME_DIR` is
/// unset or not writable, even for runs that never touch wgpu: point it at a private folder.
fn quiet_vulkan() {
    let usable = std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|d| std::fs::metadata(&d).is_ok_and(|m| m.is_dir() && !m.permissions().readonly()));
    if !usable {
        let dir = std::env::temp_dir().join(format!("gatelab-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            // SAFETY: called first thing in main, before any other thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}

fn main() -> ExitCode {
    // Printing into a closed pipe (`gatelab grid list | head -1`) ends the process quietly, as
    // Unix tools do, instead of panicking on the write.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    quiet_vulkan();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backends { json } => backends(json),
        Command::Params { config } => params(config.as_deref()),
        Command::Sweep(args) => {
            gatelab::interrupt::install();
            cli::sweep::sweep(args)
        }
        Command::Extend(args) => {
            gatelab::interrupt::install();
            cli::sweep::extend(args)
        }
        Command::Retrofit(args) => {
            gatelab::interrupt::install();
            cli::retrofit::retrofit(args)
        }
        Command::Analyze(args) => {
            gatelab::interrupt::install();
            cli::analyze::analyze(args)
        }
        Command::Export(args) => cli::export::export(args),
        Command::Report(args) => {
            gatelab::interrupt::install();
            cli::report::report(args)
        }
        Command::Compare(args) => cli::report::compare(args),
        Command::Eval(args) => {
            gatelab::interrupt::install();
            cli::eval::eval(args)
        }
        Command::EvalLength(args) => {
            gatelab::interrupt::install();
            cli::length::eval_length(args)
        }
        Command::Bench(args) => cli::bench::bench(args),
        Command::AnalyzeBench(args) => cli::analyze::analyze_bench(args),
        Command::Grid { what: GridCommand::List { grid, json } } => cli::sweep::list(grid.as_deref(), json),
        Command::Grid { what: GridCommand::Show { grid, variant, preset, json } } => {
            cli::sweep::show(&grid, &variant, &preset, json)
        }
        Command::Data { data, save_tokenizer, json } => cli::data::inspect(&data, save_tokenizer.as_ref(), json),
        Command::DataBench { data, vocab, json } => cli::data::bench(&data, vocab, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatelab: {}", e.one_line());
            // 130, as a shell reports a process ended by Ctrl-C.
            if matches!(e, gatelab::ExperimentError::Interrupted { .. } | gatelab::ExperimentError::Stopped(_)) {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn backends(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for b in Backend::compiled() {
        let state = backend::open(b, 0).map(|_| None).unwrap_or_else(|e| Some(e.one_line()));
        let attention = if state.is_none() { cuda_attention(b) } else { None };
        if json {
            rows.push(serde_json::json!({ "backend": b.name(), "ok": state.is_none(), "error": state, "attention": attention }));
        } else {
            let note = attention.map(|a| format!(" (causal attention: {a})")).unwrap_or_default();
            println!("{:<9} {}{note}", b.name(), state.as_deref().unwrap_or("ok"));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    }
    Ok(())
}

/// On tch-cuda, the kernel libtorch's dispatcher picks for causal attention (`model/src/sdpa/tch.rs`)
/// at GPT-2 small's head shape, f32 and bf16: e.g. `f32 efficient, bf16 flash`.
#[allow(unused_variables)]
fn cuda_attention(b: Backend) -> Option<String> {
    #[cfg(feature = "tch")]
    if b == Backend::TchCuda {
        use tch::{Device, Kind};
        let pick = |kind| gatelab_model::sdpa::cuda_kernel(1, 12, 1024, 64, kind, Device::Cuda(0));
        return Some(format!("f32 {}, bf16 {} at [1, 12, 1024, 64]", pick(Kind::Float), pick(Kind::BFloat16)));
    }
    None
}

/// `gatelab params FILE`: the parameter counts of a model config — a run's `config.json`, the
/// output of `grid show --json`, or a bare model config.
fn params(config: Option<&Path>) -> Result<()> {
    let config: ModelConfig = match config {
        Some(path) => {
            let value: serde_json::Value = gatelab_rundir::read_json(path)?;
            let model = value.pointer("/config/model").or_else(|| value.get("model")).cloned().unwrap_or(value);
            serde_path_to_error::deserialize(model).map_err(|e| {
                gatelab::ExperimentError::file(
                    path,
                    format!(
                        "not a model config (nor a run's config.json, nor grid show --json): {}: {}",
                        e.path(),
                        e.inner()
                    ),
                )
            })?
        }
        None => ModelConfig::default(),
    };
    config.validate().map_err(|e| gatelab_rundir::RunDirError::invalid(format!("model.{}", e.field), e.message))?;
    println!("{}", serde_json::to_string_pretty(&config.param_count()).expect("json"));
    Ok(())
}
