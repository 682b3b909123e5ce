//! Progress reporting: indicatif bars with ETA when stderr is a terminal, plain one-line
//! events otherwise (CI logs, pipes), so long sweeps are never silent and logs stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::train::fit::StepProgress;
use crate::train::runner::RunOutcome;

enum Mode {
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        workers: Mutex<Vec<Option<ProgressBar>>>,
    },
    Plain,
}

pub struct Progress {
    mode: Mode,
    total: usize,
    finished: Mutex<usize>,
    started: Instant,
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Progress {
    /// `total`: runs to execute (cached runs excluded); `workers`: one bar each.
    pub fn new(total: usize, workers: usize, force_plain: bool) -> Self {
        let mode = if !force_plain && std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} runs  {elapsed} elapsed, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix("runs");
            Mode::Bars {
                multi,
                overall,
                workers: Mutex::new(vec![None; workers]),
            }
        } else {
            Mode::Plain
        };
        Self {
            mode,
            total,
            finished: Mutex::new(0),
            started: Instant::now(),
        }
    }

    pub fn run_started(&self, worker: usize, label: &str, device: &str) {
        match &self.mode {
            Mode::Bars { multi, workers, .. } => {
                let bar = multi.add(ProgressBar::new(1));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} [{bar:30}] {pos}/{len} steps  ETA {eta}  {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(device.to_string());
                bar.set_message(label.to_string());
                workers.lock().expect("progress lock")[worker] = Some(bar);
            }
            Mode::Plain => eprintln!(
                "[{}/{}] start {label} on {device}",
                self.done() + 1,
                self.total
            ),
        }
    }

    pub fn step(&self, worker: usize, p: &StepProgress) {
        match &self.mode {
            Mode::Bars { workers, .. } => {
                if let Some(bar) = &workers.lock().expect("progress lock")[worker] {
                    bar.set_length((p.steps_per_epoch * p.epochs as usize) as u64);
                    bar.set_position((p.epoch as usize * p.steps_per_epoch + p.step) as u64);
                }
            }
            Mode::Plain => {
                if p.step == p.steps_per_epoch {
                    eprintln!(
                        "        epoch {}/{}: last batch loss {:.4}",
                        p.epoch + 1,
                        p.epochs,
                        p.loss
                    );
                }
            }
        }
    }

    fn done(&self) -> usize {
        *self.finished.lock().expect("progress lock")
    }

    pub fn run_finished(&self, worker: usize, label: &str, outcome: &RunOutcome, secs: f64) {
        let n = {
            let mut f = self.finished.lock().expect("progress lock");
            *f += 1;
            *f
        };
        let line = match outcome {
            RunOutcome::Done { summary } => format!("done   {label} in {secs:.1}s  {summary}"),
            RunOutcome::Failed(e) => format!("FAILED {label}: {e}"),
            RunOutcome::Diverged(e) => format!("DIVERGED {label}: {e}"),
        };
        match &self.mode {
            Mode::Bars {
                multi,
                overall,
                workers,
            } => {
                if let Some(bar) = workers.lock().expect("progress lock")[worker].take() {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                overall.inc(1);
                let _ = multi.println(line);
            }
            Mode::Plain => {
                let elapsed = self.started.elapsed();
                let eta = elapsed.mul_f64((self.total - n) as f64 / n as f64);
                eprintln!(
                    "[{n}/{}] {line}  (elapsed {}, ETA {})",
                    self.total,
                    fmt_duration(elapsed),
                    fmt_duration(eta)
                );
            }
        }
    }

    pub fn skipped(&self, label: &str, reason: &str) {
        self.finished_line(format!("SKIPPED {label}: {reason}"));
    }

    /// A run another process holds: this one waits for it (printed once per run).
    pub fn waiting(&self, label: &str, holder: &str) {
        self.note(format!(
            "WAITING {label}: claimed by {holder}; waiting for it to finish"
        ));
    }

    /// A run another process finished while this one waited for it or was about to start it.
    pub fn finished_elsewhere(&self, label: &str, outcome: &RunOutcome) {
        self.finished_line(match outcome {
            RunOutcome::Done { .. } => format!("done   {label} by another process"),
            RunOutcome::Failed(e) => format!("FAILED {label} in another process: {e}"),
            RunOutcome::Diverged(e) => format!("DIVERGED {label} in another process: {e}"),
        });
    }

    /// A line for a run that is over without this process training it.
    fn finished_line(&self, line: String) {
        let n = {
            let mut f = self.finished.lock().expect("progress lock");
            *f += 1;
            *f
        };
        match &self.mode {
            Mode::Bars { multi, overall, .. } => {
                overall.inc(1);
                let _ = multi.println(line);
            }
            Mode::Plain => eprintln!("[{n}/{}] {line}", self.total),
        }
    }

    fn note(&self, line: String) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
            Mode::Plain => eprintln!("        {line}"),
        }
    }

    pub fn finish(&self) {
        if let Mode::Bars { overall, .. } = &self.mode {
            overall.finish_and_clear();
        }
    }
}
