//! The local scheduler: one worker thread per device pulls runs whose dependencies have
//! finished, skips runs that are already done, isolates failures (a failed or diverged run
//! is recorded and its dependants are skipped with the reason; everything else goes on) and
//! returns a summary for the final report and exit code.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::dag::{Plan, PlanNode};
use super::progress::Progress;
use crate::train::fit::StepProgress;
use crate::train::runner::{self, RunContext, RunOutcome, StepSink};

/// Does the work of one run. The real one trains; tests use a mock.
pub trait Executor: Sync {
    fn execute(&self, node: &PlanNode, device: &str, sink: &dyn StepSink) -> RunOutcome;

    /// Records that a run was not started because a dependency did not succeed.
    fn skipped(&self, _node: &PlanNode, _reason: &str) {}
}

/// The executor that trains with candle.
pub struct TrainExecutor {
    pub ctx: RunContext,
}

impl Executor for TrainExecutor {
    fn execute(&self, node: &PlanNode, device: &str, sink: &dyn StepSink) -> RunOutcome {
        runner::execute(&node.spec, device, &self.ctx, sink)
    }

    fn skipped(&self, node: &PlanNode, reason: &str) {
        // A status that cannot be written loses nothing: the run simply shows as pending.
        let _ = runner::record_skipped(&node.spec, &self.ctx, reason);
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    pub done: Vec<String>,
    pub cached: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub diverged: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
    pub wall_s: f64,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.diverged.is_empty() && self.skipped.is_empty()
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "{} trained, {} cached, {} failed, {} diverged, {} skipped in {:.1}s",
            self.done.len(),
            self.cached.len(),
            self.failed.len(),
            self.diverged.len(),
            self.skipped.len(),
            self.wall_s
        );
        for (l, e) in &self.failed {
            s.push_str(&format!("\n  failed   {l}: {e}"));
        }
        for (l, e) in &self.diverged {
            s.push_str(&format!("\n  diverged {l}: {e}"));
        }
        for (l, e) in &self.skipped {
            s.push_str(&format!("\n  skipped  {l}: {e}"));
        }
        s
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Waiting,
    Running,
    Ok,
    Bad,
}

struct Shared {
    states: Vec<NodeState>,
    remaining: BTreeSet<usize>,
    summary: Summary,
}

struct WorkerSink<'a> {
    progress: &'a Progress,
    worker: usize,
}

impl StepSink for WorkerSink<'_> {
    fn step(&self, p: &StepProgress) {
        self.progress.step(self.worker, p);
    }
}

/// Run every node of the plan that is not already done.
pub fn run_plan(
    plan: &Plan,
    devices: &[String],
    exec: &dyn Executor,
    progress: &Progress,
) -> Summary {
    let started = Instant::now();
    let mut shared = Shared {
        states: vec![NodeState::Waiting; plan.nodes.len()],
        remaining: BTreeSet::new(),
        summary: Summary::default(),
    };
    for i in plan.topological_order() {
        if plan.is_cached(i) {
            shared.states[i] = NodeState::Ok;
            shared.summary.cached.push(plan.nodes[i].spec.label());
        } else {
            shared.remaining.insert(i);
        }
    }
    let lock = Mutex::new(shared);
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        for (worker, device) in devices.iter().enumerate() {
            let (lock, wake) = (&lock, &wake);
            scope.spawn(move || loop {
                let next = {
                    let mut g = lock.lock().expect("scheduler lock");
                    loop {
                        if g.remaining.is_empty() {
                            break None;
                        }
                        // Skip dependants of failed runs, then take the first ready node.
                        let mut picked = None;
                        let candidates: Vec<usize> = g.remaining.iter().copied().collect();
                        for i in candidates {
                            let deps = &plan.nodes[i].deps;
                            if let Some(&bad) =
                                deps.iter().find(|&&d| g.states[d] == NodeState::Bad)
                            {
                                let reason = format!(
                                    "dependency {} did not succeed",
                                    plan.nodes[bad].spec.label()
                                );
                                g.remaining.remove(&i);
                                g.states[i] = NodeState::Bad;
                                let label = plan.nodes[i].spec.label();
                                exec.skipped(&plan.nodes[i], &reason);
                                progress.skipped(&label, &reason);
                                g.summary.skipped.push((label, reason));
                                continue;
                            }
                            if deps.iter().all(|&d| g.states[d] == NodeState::Ok) {
                                picked = Some(i);
                                break;
                            }
                        }
                        match picked {
                            Some(i) => {
                                g.remaining.remove(&i);
                                g.states[i] = NodeState::Running;
                                break Some(i);
                            }
                            None if g.remaining.is_empty() => break None,
                            None => g = wake.wait(g).expect("scheduler lock"),
                        }
                    }
                };
                let Some(i) = next else {
                    wake.notify_all();
                    return;
                };
                let node = &plan.nodes[i];
                let label = node.spec.label();
                progress.run_started(worker, &label, device);
                let t0 = Instant::now();
                let outcome = exec.execute(node, device, &WorkerSink { progress, worker });
                progress.run_finished(worker, &label, &outcome, t0.elapsed().as_secs_f64());
                let mut g = lock.lock().expect("scheduler lock");
                match outcome {
                    RunOutcome::Done { .. } => {
                        g.states[i] = NodeState::Ok;
                        g.summary.done.push(label);
                    }
                    RunOutcome::Failed(e) => {
                        g.states[i] = NodeState::Bad;
                        g.summary.failed.push((label, e));
                    }
                    RunOutcome::Diverged(e) => {
                        g.states[i] = NodeState::Bad;
                        g.summary.diverged.push((label, e));
                    }
                }
                wake.notify_all();
            });
        }
    });
    progress.finish();
    let mut summary = lock.into_inner().expect("scheduler lock").summary;
    summary.wall_s = started.elapsed().as_secs_f64();
    summary
}
