//! `gatelab bench`: gatelab against PyTorch, and each gate against the baseline, side by side in
//! one run (see `gatelab::bench`).

use gatelab::backend::Backend;
use gatelab::bench::{self, Measurement};
use gatelab::config::{RunConfig, preset};
use gatelab::grid;
use gatelab::{ExperimentError, Result};
use gatelab_rundir::config::Precision;
use gatelab_rundir::{read_json, write_json};
use std::fmt::Write as _;
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

fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
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
    let report = table(&best, &overhead, &peers, &args);
    print!("{report}");
    let json = serde_json::json!({
        "preset": args.preset, "overrides": args.overrides, "grid": g.name, "steps": args.steps, "warmup": args.warmup,
        "rounds": args.rounds, "interleave": args.interleave, "threads": args.threads, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "cpu": bench::cpu_info(), "precisions": args.precisions,
        "flops_per_token": cases.iter().map(|(v, c)| (v.clone(), serde_json::json!(bench::flops_per_token(c)))).collect::<serde_json::Map<_, _>>(),
        "measurements": best, "overhead": overhead, "against_pytorch": peers, "rounds_measured": every.iter().map(|(r, m)| serde_json::json!({"round": r, "measurement": m})).collect::<Vec<_>>(),
        "report": report,
    });
    write_json(&out, &json)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Each (implementation, variant)'s best round — the least disturbed by the machine — in the
/// order first measured (peak memory: the largest).
fn best_of(every: &[(usize, Measurement)]) -> Vec<Measurement> {
    let mut best: Vec<Measurement> = Vec::new();
    for (_, m) in every {
        match best.iter_mut().find(|b| b.implementation == m.implementation && b.variant == m.variant) {
            Some(b) => {
                b.train_tokens_per_s = b.train_tokens_per_s.max(m.train_tokens_per_s);
                b.forward_tokens_per_s = b.forward_tokens_per_s.max(m.forward_tokens_per_s);
                b.analysis_tokens_per_s = larger(b.analysis_tokens_per_s, m.analysis_tokens_per_s);
                b.peak_rss_mib = larger(b.peak_rss_mib, m.peak_rss_mib);
            }
            // Its steps' times stay with their round (`rounds_measured`).
            None => best.push(Measurement { step_seconds: Vec::new(), ..m.clone() }),
        }
    }
    best
}

/// One variant's training step time against the reference variant's on one implementation.
///
/// Without `--interleave`, from the rounds in which both were measured: each round's ratio is
/// taken between two processes that ran minutes apart at most, so a slow hour of the machine
/// cancels out; the median of those is the figure, and the spread says how far to trust it.
/// With it, from every timed step: the two variants' step `i` ran back to back in one process,
/// so each ratio is taken seconds apart; the median of all of them (over every round) is the
/// figure, with a distribution-free 95% confidence interval of that median.
#[derive(serde::Serialize, Debug, Clone)]
struct Overhead {
    implementation: String,
    variant: String,
    median: f64,
    min: f64,
    max: f64,
    /// Rounds in which both variants were measured.
    rounds: usize,
    /// Paired ratios the median is taken over: one per round, or one per interleaved step.
    pairs: usize,
    /// 95% confidence interval of the median (interleaved only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ci95: Option<[f64; 2]>,
}

/// The median of `sorted` (ascending, non-empty).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) }
}

/// A distribution-free 95% confidence interval of the median of `sorted` (ascending): the order
/// statistics `k` in from either end, `k = ⌊(n − 1.96·√n) / 2⌋` (the normal approximation of the
/// binomial count below the median); the whole range below six samples.
fn median_ci95(sorted: &[f64]) -> [f64; 2] {
    let n = sorted.len();
    let k = ((n as f64 - 1.96 * (n as f64).sqrt()) / 2.0).floor().max(0.0) as usize;
    [sorted[k.min(n - 1)], sorted[(n - 1).saturating_sub(k)]]
}

/// The measurement of `(implementation, variant)` in `round`.
fn measured<'a>(
    every: &'a [(usize, Measurement)],
    round: usize,
    implementation: &str,
    variant: &str,
) -> Option<&'a Measurement> {
    every
        .iter()
        .find(|(r, m)| *r == round && m.implementation == implementation && m.variant == variant)
        .map(|(_, m)| m)
}

/// `(a, b)` for every round in which both `(imp_a, variant_a)` and `(imp_b, variant_b)` were
/// measured, in the order `b`'s rounds were.
fn same_rounds<'a>(
    every: &'a [(usize, Measurement)],
    (imp_a, variant_a): (&str, &str),
    (imp_b, variant_b): (&str, &str),
) -> Vec<(&'a Measurement, &'a Measurement)> {
    every
        .iter()
        .filter(|(_, m)| m.implementation == imp_b && m.variant == variant_b)
        .filter_map(|(r, b)| Some((measured(every, *r, imp_a, variant_a)?, b)))
        .collect()
}

fn overheads(every: &[(usize, Measurement)], variants: &[String], interleaved: bool) -> Vec<Overhead> {
    let Some(reference) = variants.first() else { return vec![] };
    let imps: std::collections::BTreeSet<&str> = every.iter().map(|(_, m)| m.implementation.as_str()).collect();
    let mut out = Vec::new();
    for imp in imps {
        for v in &variants[1..] {
            let both = same_rounds(every, (imp, reference), (imp, v));
            let mut ratios: Vec<f64> = if interleaved {
                both.iter()
                    .flat_map(|(a, b)| b.step_seconds.iter().zip(&a.step_seconds).map(|(tb, ta)| tb / ta))
                    .collect()
            } else {
                both.iter().map(|(a, b)| a.train_tokens_per_s / b.train_tokens_per_s).collect()
            };
            if ratios.is_empty() {
                continue;
            }
            ratios.sort_by(f64::total_cmp);
            let n = ratios.len();
            out.push(Overhead {
                implementation: imp.into(),
                variant: v.clone(),
                median: median(&ratios),
                min: ratios[0],
                max: ratios[n - 1],
                rounds: both.len(),
                pairs: n,
                ci95: interleaved.then(|| median_ci95(&ratios)),
            });
        }
    }
    out
}

/// A gatelab implementation's training speed over PyTorch's on one variant, from the rounds in
/// which both were measured (minutes apart at most): the median of those rounds' ratios, and
/// their range.
#[derive(serde::Serialize, Debug, Clone)]
struct PeerRatio {
    implementation: String,
    variant: String,
    /// `pytorch-eager` or `pytorch-compile`.
    peer: String,
    median: f64,
    min: f64,
    max: f64,
    rounds: usize,
}

fn against_peers(every: &[(usize, Measurement)]) -> Vec<PeerRatio> {
    // Each gatelab (implementation, variant), in the order first measured.
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for (_, m) in every.iter().filter(|(_, m)| m.implementation.starts_with("gatelab-")) {
        if !cases.contains(&(m.implementation.as_str(), m.variant.as_str())) {
            cases.push((m.implementation.as_str(), m.variant.as_str()));
        }
    }
    let mut out = Vec::new();
    for (imp, variant) in cases {
        // Each precision against PyTorch in the same precision (bf16: autocast).
        let suffix = if imp.ends_with("-bf16") { "-bf16" } else { "" };
        for peer in ["pytorch-eager", "pytorch-compile"].map(|p| format!("{p}{suffix}")) {
            let peer = peer.as_str();
            let mut ratios: Vec<f64> = same_rounds(every, (peer, variant), (imp, variant))
                .iter()
                .map(|(p, a)| a.train_tokens_per_s / p.train_tokens_per_s)
                .collect();
            if ratios.is_empty() {
                continue;
            }
            ratios.sort_by(f64::total_cmp);
            out.push(PeerRatio {
                implementation: imp.into(),
                variant: variant.into(),
                peer: peer.into(),
                median: median(&ratios),
                min: ratios[0],
                max: ratios[ratios.len() - 1],
                rounds: ratios.len(),
            });
        }
    }
    out
}

/// The markdown report: every measurement (its best round) with its ratio to PyTorch eager; each
/// gatelab implementation against PyTorch eager and compiled, round by round; and each variant's
/// step time against the first variant's per implementation (median over rounds).
fn table(best: &[Measurement], overhead: &[Overhead], peers: &[PeerRatio], args: &BenchArgs) -> String {
    let find = |imp: &str, v: &str| best.iter().find(|m| m.implementation == imp && m.variant == v);
    let opt = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let cpu = bench::cpu_info();
    let flags: Vec<&str> = cpu["flags"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect();
    let mut s = format!(
        "CPU: {} ({}), {} threads.\n\n",
        cpu["model"].as_str().unwrap_or("unknown"),
        if flags.is_empty() { "none of avx2, avx512f, avx512_bf16, amx_bf16".to_string() } else { flags.join(", ") },
        args.threads
    );
    s.push_str(
        "| variant | implementation | train tok/s | × PyTorch eager | forward tok/s | analysis tok/s | peak MiB |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for m in best {
        let suffix = if m.implementation.ends_with("-bf16") { "-bf16" } else { "" };
        let ratio =
            find(&format!("pytorch-eager{suffix}"), &m.variant).map(|p| m.train_tokens_per_s / p.train_tokens_per_s);
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {:.0} | {} | {} |",
            m.variant,
            m.implementation,
            m.train_tokens_per_s,
            opt(ratio, 2),
            m.forward_tokens_per_s,
            opt(m.analysis_tokens_per_s, 0),
            opt(m.peak_rss_mib, 0)
        );
    }
    if !peers.is_empty() {
        let compiled = peers.iter().any(|p| p.peer == "pytorch-compile");
        let _ = writeln!(
            s,
            "\nTraining speed against PyTorch (same variant, same round; median of the rounds' ratios, lowest–highest in brackets):\n\n| variant | implementation | × PyTorch eager |{}\n|---|---|---:|{}",
            if compiled { " × torch.compile |" } else { "" },
            if compiled { "---:|" } else { "" }
        );
        let cell = |imp: &str, v: &str, peer: &str| match peers
            .iter()
            .find(|p| p.implementation == imp && p.variant == v && p.peer == peer)
        {
            Some(p) if p.rounds > 1 => format!("{:.2} ({:.2}–{:.2})", p.median, p.min, p.max),
            Some(p) => format!("{:.2}", p.median),
            None => "-".into(),
        };
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for p in peers {
            if !rows.contains(&(p.variant.as_str(), p.implementation.as_str())) {
                rows.push((p.variant.as_str(), p.implementation.as_str()));
            }
        }
        for (v, imp) in rows {
            let mut line = format!("| {v} | {imp} | {} |", cell(imp, v, "pytorch-eager"));
            if compiled {
                line += &format!(" {} |", cell(imp, v, "pytorch-compile"));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    if let Some(reference) = args.variants.first() {
        let spread = if args.interleave {
            format!(
                "median of {} interleaved step pairs ({} rounds of {} steps), its 95% confidence interval in brackets",
                args.rounds * args.steps,
                args.rounds,
                args.steps
            )
        } else if args.rounds > 1 {
            format!("median of {} rounds' paired ratios, lowest–highest in brackets", args.rounds)
        } else {
            "one round".into()
        };
        let _ = writeln!(
            s,
            "\nTraining step time against {reference} (same tokens per step; {spread}):\n\n| implementation | {} |\n|---|{}",
            args.variants[1..].join(" | "),
            "---:|".repeat(args.variants.len().saturating_sub(1))
        );
        let imps: std::collections::BTreeSet<&str> = best.iter().map(|m| m.implementation.as_str()).collect();
        for imp in imps {
            let cells: Vec<String> = args.variants[1..]
                .iter()
                .map(|v| match overhead.iter().find(|o| o.implementation == imp && &o.variant == v) {
                    Some(Overhead { median, ci95: Some([lo, hi]), .. }) => format!("{median:.2}× ({lo:.2}–{hi:.2})"),
                    Some(o) if o.rounds > 1 => format!("{:.2}× ({:.2}–{:.2})", o.median, o.min, o.max),
                    Some(o) => format!("{:.2}×", o.median),
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(s, "| {imp} | {} |", cells.join(" | "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{median, median_ci95};

    #[test]
    fn the_median_interval_leaves_out_the_order_statistics_the_binomial_allows() {
        let x: Vec<f64> = (1..=100).map(f64::from).collect();
        // n = 100: k = ⌊(100 − 19.6) / 2⌋ = 40, so the 41st and 60th values.
        assert_eq!(median_ci95(&x), [41.0, 60.0]);
        assert_eq!(median(&x), 50.5);
        // n = 10: k = ⌊(10 − 6.20) / 2⌋ = 1.
        assert_eq!(median_ci95(&x[..10]), [2.0, 9.0]);
        // Below six samples the interval is the range.
        assert_eq!(median_ci95(&x[..5]), [1.0, 5.0]);
        assert_eq!(median_ci95(&x[..1]), [1.0, 1.0]);
        assert_eq!(median(&x[..5]), 3.0);
    }
}
