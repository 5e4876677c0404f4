//! `gatelab bench`: gatelab against PyTorch, and each gate against the baseline, side by side in
//! one run (see `gatelab::bench`). This file runs the cases, each in its own process; `compare`
//! pairs what they measured and writes the report.

mod compare;

use compare::{against_peers, best_of, bf16_over_f32, overheads, table};

use gatelab::backend::Backend;
use gatelab::bench::{self, Measurement};
use gatelab::config::{RunConfig, preset};
use gatelab::grid;
use gatelab::{ExperimentError, Result};
use gatelab_rundir::config::Precision;
use gatelab_rundir::{read_json, write_json};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// key=value overrides of the benchmarked config (e.g. model.d_model=256 model.n_layers=6).
    overrides: Vec<String>,
    /// Preset whose model, batch and sequence length to time.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Grid the variants come from.
    #[arg(long, default_value = "core")]
    grid: String,
    /// Variants to time (the first is the reference of the gate-overhead ratio).
    #[arg(long, value_delimiter = ',', default_value = "baseline,g1-elementwise")]
    variants: Vec<String>,
    /// gatelab backends to time (default: flex, and tch when built with it).
    #[arg(long, value_delimiter = ',')]
    backends: Vec<Backend>,
    /// Training precisions to time each gatelab backend in (`f32`, `bf16`: `train.precision`);
    /// the PyTorch peer runs the config as given.
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    precisions: Vec<String>,
    /// Timed steps per measurement.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed forward-only and analysis passes per measurement (default: as many as --steps).
    #[arg(long)]
    passes: Option<usize>,
    /// Rounds over every case (interleaved); each case reports its best.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Train every variant in one process per implementation, alternating step by step; the
    /// gate's overhead is then the median of those paired steps (with its 95% interval).
    #[arg(long)]
    interleave: bool,
    /// CPU threads for every implementation.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Skip the PyTorch peer.
    #[arg(long)]
    no_peer: bool,
    /// Also time the peer under torch.compile.
    #[arg(long)]
    compile: bool,
    /// Where to write the JSON (default results/bench/<preset>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: measure the `--config` cases on this backend in this process, a JSON line each.
    #[arg(long, hide = true)]
    one: Option<Backend>,
    /// Internal: the case's resolved config (several: interleaved, the first the reference).
    #[arg(long, hide = true)]
    config: Vec<PathBuf>,
}

fn child_env(cmd: &mut Command, threads: usize) -> &mut Command {
    for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
        cmd.env(var, threads.to_string());
    }
    cmd
}

/// A measuring child's JSON lines on stdout, `expected` of them; its last line of stderr if it
/// failed.
fn child_lines<T: serde::de::DeserializeOwned>(
    out: std::process::Output,
    what: &str,
    expected: usize,
) -> Result<Vec<T>> {
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(ExperimentError::Training(format!("{what}: {}", err.lines().last().unwrap_or("failed"))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<std::result::Result<Vec<T>, _>>()
        .map_err(|e| ExperimentError::Training(format!("{what}: {e}")))?;
    if lines.len() != expected {
        return Err(ExperimentError::Training(format!(
            "{what}: {} measurements on stdout, not {expected}",
            lines.len()
        )));
    }
    Ok(lines)
}

/// `bench/peer.py`: `$GATELAB_PEER`, else `bench/peer.py` in the working directory or the nearest
/// parent that has one, else in the checkout this binary was compiled from (a build cache shared
/// between clones can hold a binary whose checkout is gone, so that comes last).
fn peer_script() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("GATELAB_PEER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ExperimentError::Usage(format!("GATELAB_PEER={}: no such file", p.display())))
        };
    }
    let cwd = std::env::current_dir().map_err(|e| ExperimentError::file(".", e))?;
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    cwd.ancestors()
        .chain(std::iter::once(compiled.as_path()))
        .map(|dir| dir.join("bench/peer.py"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ExperimentError::Usage(
                "bench: bench/peer.py not found: run from the gatelab checkout, set GATELAB_PEER, or pass --no-peer"
                    .into(),
            )
        })
}

/// The PyTorch peer's measurements of `variants` (their resolved `configs`), interleaved when
/// there are several (its JSON names differ a little from ours).
fn peer(
    python: &str,
    script: &Path,
    configs: &[PathBuf],
    variants: &[String],
    args: &BenchArgs,
    compile: bool,
) -> Result<Vec<Measurement>> {
    let mut cmd = Command::new(python);
    cmd.arg(script).args(configs).args([
        "--steps",
        &args.steps.to_string(),
        "--warmup",
        &args.warmup.to_string(),
        "--threads",
        &args.threads.to_string(),
    ]);
    if let Some(p) = args.passes {
        cmd.args(["--passes", &p.to_string()]);
    }
    if compile {
        cmd.arg("--compile");
    }
    let out = child_env(&mut cmd, args.threads).output().map_err(|e| ExperimentError::file(python, e))?;
    let lines: Vec<serde_json::Value> = child_lines(out, "bench/peer.py", variants.len())?;
    Ok(lines
        .iter()
        .zip(variants)
        .map(|(v, variant)| Measurement {
            implementation: v["impl"].as_str().unwrap_or("pytorch").into(),
            variant: variant.clone(),
            train_tokens_per_s: v["train_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
            forward_tokens_per_s: v["forward_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
            analysis_tokens_per_s: None,
            peak_rss_mib: None,
            peak_device_mib: v["peak_device_mib"].as_f64(),
            steps: args.steps,
            step_seconds: v["step_seconds"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default(),
        })
        .collect())
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if let Some(backend) = args.one {
        let mut cases = Vec::new();
        for config in &args.config {
            let run: RunConfig = read_json(config)?;
            cases.push((config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(), run));
        }
        if cases.is_empty() {
            return Err(ExperimentError::option("bench --one", "no --config"));
        }
        for m in bench::measure(&cases, backend, args.steps, args.warmup, args.passes.unwrap_or(args.steps))? {
            println!("{}", serde_json::to_string(&m).expect("measurements serialise"));
        }
        return Ok(());
    }
    if args.steps == 0 || args.rounds == 0 || args.threads == 0 || args.passes == Some(0) {
        return Err(ExperimentError::Usage("--steps, --passes, --rounds and --threads must be at least 1".into()));
    }
    let backends = if args.backends.is_empty() {
        Backend::compiled().into_iter().filter(|b| matches!(b, Backend::Flex | Backend::Tch)).collect()
    } else {
        args.backends.clone()
    };
    let g = grid::load(&args.grid)?;
    let preset = preset(&args.preset)?;
    let planned = grid::plan(&g, &preset, None, &args.overrides, 1)?;
    let mut cases = Vec::new();
    for v in &args.variants {
        let run = planned
            .iter()
            .find(|r| &r.variant == v)
            .ok_or_else(|| ExperimentError::option("--variants", format!("grid {} has no variant {v}", g.name)))?;
        cases.push((v.clone(), run.config.clone()));
    }
    let python = std::env::var("GATELAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch =
        !args.no_peer && Command::new(&python).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    if !args.no_peer && !has_torch {
        eprintln!("bench: no Python with torch at `{python}` (scripts/setup-libtorch.sh); the PyTorch peer is skipped");
    }
    let script = if has_torch { Some(peer_script()?) } else { None };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results/bench").join(format!("{}.json", args.preset)));
    let configs = out.with_extension("configs");
    std::fs::create_dir_all(&configs).map_err(|e| ExperimentError::file(&configs, e))?;
    let precisions = args
        .precisions
        .iter()
        .map(|p| match p.as_str() {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(ExperimentError::option("--precisions", format!("{other:?} is not f32 or bf16"))),
        })
        .collect::<Result<Vec<_>>>()?;
    // One folder of configs per precision (a config's file stem is its variant's name).
    for (v, c) in &cases {
        for &p in &precisions {
            let mut c = c.clone();
            c.train.precision = p;
            std::fs::create_dir_all(configs.join(p.name())).map_err(|e| ExperimentError::file(&configs, e))?;
            write_json(&configs.join(p.name()).join(format!("{v}.json")), &c)?;
        }
    }
    let exe = std::env::current_exe().map_err(|e| ExperimentError::file("gatelab", e))?;
    let mut every: Vec<(usize, Measurement)> = Vec::new();
    let mut record = |round: usize, m: Measurement| {
        eprintln!(
            "round {round}: {:<16} {:<16} train {:>9.0} tok/s",
            m.variant, m.implementation, m.train_tokens_per_s
        );
        every.push((round, m));
    };
    // Per round, each process measures one variant, or (interleaved) all of them.
    let groups: Vec<Vec<String>> = if args.interleave {
        vec![args.variants.clone()]
    } else {
        args.variants.iter().map(|v| vec![v.clone()]).collect()
    };
    for round in 1..=args.rounds {
        for group in &groups {
            let config_paths = |p: Precision| -> Vec<PathBuf> {
                group.iter().map(|v| configs.join(p.name()).join(format!("{v}.json"))).collect()
            };
            let what = group.join(",");
            for (&b, &p) in backends.iter().flat_map(|b| precisions.iter().map(move |p| (b, p))) {
                let mut cmd = Command::new(&exe);
                cmd.args(["bench", "--one", b.name()]);
                for c in config_paths(p) {
                    cmd.arg("--config").arg(c);
                }
                cmd.args(["--steps", &args.steps.to_string(), "--warmup", &args.warmup.to_string()]);
                if let Some(p) = args.passes {
                    cmd.args(["--passes", &p.to_string()]);
                }
                let out = child_env(&mut cmd, args.threads).output().map_err(|e| ExperimentError::file(&exe, e))?;
                for m in child_lines::<Measurement>(out, &format!("{what} on {}", b.name()), group.len())? {
                    record(round, m);
                }
            }
            for (&p, script) in precisions.iter().filter_map(|p| Some((p, script.as_ref()?))) {
                for compile in [false, true].into_iter().filter(|c| !c || args.compile) {
                    match peer(&python, script, &config_paths(p), group, &args, compile) {
                        Ok(ms) => ms.into_iter().for_each(|m| record(round, m)),
                        Err(e) => eprintln!("round {round}: {what}: {e}"),
                    }
                }
            }
        }
    }
    let best = best_of(&every);
    let overhead = overheads(&every, &args.variants, args.interleave);
    let peers = against_peers(&every);
    let precision = bf16_over_f32(&every);
    let report = table(&best, &overhead, &peers, &precision, &args);
    print!("{report}");
    let json = serde_json::json!({
        "preset": args.preset, "overrides": args.overrides, "grid": g.name, "steps": args.steps, "warmup": args.warmup,
        "rounds": args.rounds, "interleave": args.interleave, "threads": args.threads, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "cpu": bench::cpu_info(), "precisions": args.precisions,
        "flops_per_token": cases.iter().map(|(v, c)| (v.clone(), serde_json::json!(bench::flops_per_token(c)))).collect::<serde_json::Map<_, _>>(),
        "measurements": best, "overhead": overhead, "against_pytorch": peers, "bf16_over_f32": precision, "rounds_measured": every.iter().map(|(r, m)| serde_json::json!({"round": r, "measurement": m})).collect::<Vec<_>>(),
        "report": report,
    });
    write_json(&out, &json)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
