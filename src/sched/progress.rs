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
    /// Estimated work ([`super::work`]) of all the runs to execute, of those over, and of
    /// those this process trained: the time left is the time so far × what is left ÷ what
    /// was trained, so one long run first does not read as every run being long.
    work: Mutex<Work>,
}

#[derive(Default)]
struct Work {
    total: u64,
    over: u64,
    trained: u64,
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
                    "{prefix:>8} [{bar:30}] {msg} runs  {elapsed} elapsed, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix("runs");
            overall.set_message(format!("0/{total}"));
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
            work: Mutex::new(Work::default()),
        }
    }

    /// The estimated work of all the runs to execute (else the ETA counts runs).
    pub fn set_total_work(&self, total: u64) {
        self.work.lock().expect("progress lock").total = total;
        if let Mode::Bars { overall, .. } = &self.mode {
            overall.set_length(total.max(1));
        }
    }

    /// Records `work` as over (and trained here, if `trained`); the estimated time left.
    fn count_work(&self, work: u64, trained: bool) -> Duration {
        let mut w = self.work.lock().expect("progress lock");
        w.over = w.over.saturating_add(work);
        if trained {
            w.trained = w.trained.saturating_add(work);
        }
        let done = *self.finished.lock().expect("progress lock");
        let (left, basis) = if w.total > 0 {
            (w.total.saturating_sub(w.over) as f64, w.trained as f64)
        } else {
            ((self.total - done.min(self.total)) as f64, done as f64)
        };
        if basis <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(self.started.elapsed().as_secs_f64() * left / basis)
            .unwrap_or(Duration::MAX)
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

    pub fn run_finished(
        &self,
        worker: usize,
        label: &str,
        outcome: &RunOutcome,
        secs: f64,
        work: u64,
    ) {
        let n = {
            let mut f = self.finished.lock().expect("progress lock");
            *f += 1;
            *f
        };
        let eta = self.count_work(work, true);
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
                overall.inc(work);
                overall.set_message(format!("{n}/{}", self.total));
                let _ = multi.println(line);
            }
            Mode::Plain => {
                let elapsed = self.started.elapsed();
                eprintln!(
                    "[{n}/{}] {line}  (elapsed {}, ETA {})",
                    self.total,
                    fmt_duration(elapsed),
                    fmt_duration(eta)
                );
            }
        }
    }

    pub fn skipped(&self, label: &str, reason: &str, work: u64) {
        self.finished_line(format!("SKIPPED {label}: {reason}"), work);
    }

    /// A run another process holds: this one waits for it (printed once per run).
    pub fn waiting(&self, label: &str, holder: &str) {
        self.note(format!(
            "WAITING {label}: claimed by {holder}; waiting for it to finish"
        ));
    }

    /// A run another process finished while this one waited for it or was about to start it.
    pub fn finished_elsewhere(&self, label: &str, outcome: &RunOutcome, work: u64) {
        let line = match outcome {
            RunOutcome::Done { .. } => format!("done   {label} by another process"),
            RunOutcome::Failed(e) => format!("FAILED {label} in another process: {e}"),
            RunOutcome::Diverged(e) => format!("DIVERGED {label} in another process: {e}"),
        };
        self.finished_line(line, work);
    }

    /// A line for a run that is over without this process training it.
    fn finished_line(&self, line: String, work: u64) {
        let n = {
            let mut f = self.finished.lock().expect("progress lock");
            *f += 1;
            *f
        };
        self.count_work(work, false);
        match &self.mode {
            Mode::Bars { multi, overall, .. } => {
                overall.inc(work);
                overall.set_message(format!("{n}/{}", self.total));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_follows_the_work_not_the_run_count() {
        let p = Progress::new(4, 1, true);
        p.set_total_work(100);
        std::thread::sleep(Duration::from_millis(20));
        let lo = p.started.elapsed();
        // The first of four runs holds 75 of the 100 units: a third of the time so far is
        // left (counting runs would say three times it).
        let eta = p.count_work(75, true);
        let hi = p.started.elapsed();
        assert!(
            eta >= lo.mul_f64(1.0 / 3.0) && eta <= hi.mul_f64(1.0 / 3.0),
            "{eta:?} outside a third of {lo:?}..{hi:?}"
        );
        // A run another process finished leaves less to do and says nothing of the rate.
        assert_eq!(p.count_work(25, false), Duration::ZERO);
        // Without estimates the runs are counted.
        let q = Progress::new(2, 1, true);
        *q.finished.lock().unwrap() = 1;
        let eta = q.count_work(0, true);
        assert!(eta >= Duration::from_nanos(1), "{eta:?}");
    }
}
