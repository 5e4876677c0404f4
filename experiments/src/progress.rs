//! Progress of a sweep on stderr: on a terminal, two `indicatif` bars — the run's (steps, loss,
//! tokens/s, ETA) and the sweep's (runs, steps, ETA from its pace); elsewhere (a log file, CI) a
//! plain line at every quarter of a run.

use crate::train::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// The display of one sweep.
pub struct SweepProgress {
    bars: Option<(MultiProgress, ProgressBar, ProgressBar)>,
    runs: usize,
    next_quarter: f64,
    run_started: Instant,
    resumed_at: usize,
    label: String,
}

/// Seconds as `42 s`, `3.5 min` or `1.2 h`.
pub fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.1} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

impl SweepProgress {
    /// A display for `runs` runs needing `total_steps` steps of training in all.
    pub fn new(runs: usize, total_steps: usize) -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let run = multi.add(ProgressBar::new(1));
            run.set_style(
                ProgressStyle::with_template("  {bar:20.cyan/blue} step {pos:>6}/{len} {msg} ETA {eta}")
                    .expect("template")
                    .progress_chars("█▉░"),
            );
            let sweep = multi.add(ProgressBar::new(total_steps.max(1) as u64));
            sweep.set_style(
                ProgressStyle::with_template("  {bar:20.green/white} sweep {msg}, {percent}% of its steps, ETA {eta}")
                    .expect("template")
                    .progress_chars("█▉░"),
            );
            (multi, run, sweep)
        });
        Self { bars, runs, next_quarter: 0.25, run_started: Instant::now(), resumed_at: 0, label: String::new() }
    }

    /// A line above the bars (or on its own without them).
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Run number `k` (from 0) starts, `resumed_at` steps already done of `steps`.
    pub fn start_run(&mut self, k: usize, label: &str, steps: usize, resumed_at: usize) {
        (self.run_started, self.resumed_at, self.next_quarter, self.label) =
            (Instant::now(), resumed_at, 0.25, label.to_string());
        if let Some((_, run, sweep)) = &self.bars {
            run.reset();
            run.set_length(steps as u64);
            run.set_position(resumed_at as u64);
            sweep.set_message(format!("run {}/{}", k + 1, self.runs));
        }
    }

    /// A run's progress report.
    pub fn update(&mut self, p: &Progress, sweep_done: usize) {
        let message = format!("loss {:.4}  {:>8.0} tok/s", p.loss, p.tokens_per_s);
        match &self.bars {
            Some((_, run, sweep)) => {
                run.set_position(p.step as u64);
                run.set_message(message);
                sweep.set_position(sweep_done as u64);
            }
            None => {
                let done = p.step as f64 / p.steps.max(1) as f64;
                if done >= self.next_quarter {
                    let rate = (p.step - self.resumed_at).max(1) as f64 / self.run_started.elapsed().as_secs_f64();
                    eprintln!(
                        "  {} step {:>6}/{} {message} ETA {}",
                        self.label,
                        p.step,
                        p.steps,
                        duration((p.steps - p.step) as f64 / rate)
                    );
                    while self.next_quarter <= done {
                        self.next_quarter += 0.25;
                    }
                }
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some((multi, run, sweep)) = &self.bars {
            run.finish_and_clear();
            sweep.finish_and_clear();
            let _ = multi.clear();
        }
    }
}
