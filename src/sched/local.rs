//! The local scheduler: worker threads (one or more per device) pull runs whose dependencies
//! have finished, skip runs that are already done, isolate failures (a failed or diverged run
//! is recorded and its dependants are skipped with the reason; everything else goes on) and
//! return a summary for the final report and exit code. Ready runs start in critical-path
//! order (see [`Queued`]); where the executor has a pool of every worker's threads, a run
//! that no other ready run could run beside usefully takes it (see [`Executor::can_widen`]).
//!
//! Several processes may execute the same plan on one results folder (two terminals, Slurm
//! array tasks, a cron job overlapping a manual run). A worker claims a run before executing
//! it ([`crate::store::claim`]); a run another live process holds is set aside and checked
//! again every [`POLL`] until that process finishes it (its outcome counts here, nothing is
//! trained twice) or dies (then its claim is taken over and the run resumed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::dag::{Plan, PlanNode};
use super::progress::Progress;
use crate::store::claim::{try_claim, Attempt, Claim, ClaimSettings};
use crate::store::run_dir::RunDir;
use crate::store::status::{State, Status};
use crate::train::fit::StepProgress;
use crate::train::runner::{self, RunContext, RunOutcome, StepSink};

/// How often a run held by another process is looked at again.
pub const POLL: Duration = Duration::from_millis(500);

/// What a worker found when it tried to claim a run.
pub enum Claimed {
    /// Ours to execute.
    Mine(Box<Claim>),
    /// Another live process holds it (described); look again later.
    Busy(String),
    /// Another process finished it since this session began, with this outcome.
    Finished(RunOutcome),
}

/// Does the work of one run. The real one trains; tests use a mock.
pub trait Executor: Sync {
    fn claim(&self, node: &PlanNode) -> Claimed;

    /// Execute a claimed run on `device` as worker `worker`; the claim is released after.
    /// `wide`: the run has the machine to itself (see [`Executor::can_widen`]).
    fn execute(
        &self,
        node: &PlanNode,
        claim: Box<Claim>,
        worker: usize,
        device: &str,
        wide: bool,
        sink: &dyn StepSink,
    ) -> RunOutcome;

    /// Whether a run can compute on every worker's threads at once: then a run that is the
    /// only one ready while every worker is idle (a foundation model its students wait for)
    /// does, and the other workers wait for it.
    fn can_widen(&self) -> bool {
        false
    }

    /// Records that a run was not started because a dependency did not succeed.
    fn skipped(&self, _node: &PlanNode, _reason: &str) {}
}

/// The executor that trains with candle.
pub struct TrainExecutor {
    pub ctx: RunContext,
    pub claims: ClaimSettings,
    /// Unix seconds when this process made its plan: a run finished after it was finished
    /// by another process during this session, and is not redone.
    pub session_started: f64,
    /// Each CPU worker's own thread pool (its share of the cores), which its runs execute
    /// inside; `None` (GPU workers): the global pool.
    pub pools: Vec<Option<rayon::ThreadPool>>,
    /// A pool of all the CPU threads, for a run that has the machine to itself.
    pub wide: Option<rayon::ThreadPool>,
}

impl TrainExecutor {
    fn dir(&self, node: &PlanNode) -> RunDir {
        RunDir::new(&self.ctx.results_dir, &node.run_id)
    }
}

impl Executor for TrainExecutor {
    fn claim(&self, node: &PlanNode) -> Claimed {
        let dir = self.dir(node);
        match try_claim(&dir.path, &node.spec.label(), &self.claims) {
            Err(e) => Claimed::Finished(RunOutcome::Failed(format!("cannot claim the run: {e}"))),
            Ok(Attempt::Busy(holder)) => Claimed::Busy(holder.describe()),
            Ok(Attempt::Claimed { claim, took_over }) => {
                if let Some(note) = took_over {
                    let _ = dir.log(&format!("took over the claim {note}"));
                }
                match dir.read_status() {
                    Ok(Some(s)) if self.finished_during_session(&s) => {
                        drop(claim);
                        Claimed::Finished(outcome_of(&s))
                    }
                    _ => Claimed::Mine(Box::new(claim)),
                }
            }
        }
    }

    fn execute(
        &self,
        node: &PlanNode,
        claim: Box<Claim>,
        worker: usize,
        device: &str,
        wide: bool,
        sink: &dyn StepSink,
    ) -> RunOutcome {
        if let (true, Some(pool)) = (wide, &self.wide) {
            let ctx = RunContext {
                threads: pool.current_num_threads() as u32,
                ..self.ctx.clone()
            };
            return pool.install(|| runner::execute(&node.spec, device, &ctx, sink, &claim));
        }
        let run = || runner::execute(&node.spec, device, &self.ctx, sink, &claim);
        match self.pools.get(worker) {
            Some(Some(pool)) => pool.install(run),
            _ => run(),
        }
    }

    fn can_widen(&self) -> bool {
        self.wide.is_some()
    }

    fn skipped(&self, node: &PlanNode, reason: &str) {
        // Only the holder writes a run's status; a run someone else holds is theirs to record.
        if let Claimed::Mine(_claim) = self.claim(node) {
            // Another process may have had the dependency succeed and finished this run.
            let done =
                matches!(self.dir(node).read_status(), Ok(Some(s)) if s.state == State::Done);
            if !done {
                // A status that cannot be written loses nothing: the run shows as pending.
                let _ = runner::record_skipped(&node.spec, &self.ctx, reason);
            }
        }
    }
}

impl TrainExecutor {
    fn finished_during_session(&self, s: &Status) -> bool {
        matches!(s.state, State::Done | State::Failed | State::Diverged)
            && s.finished_at.is_some_and(|t| t >= self.session_started)
    }
}

/// The outcome a stored final status stands for.
fn outcome_of(s: &Status) -> RunOutcome {
    let error = || s.error.clone().unwrap_or_default();
    match s.state {
        State::Done => RunOutcome::Done {
            summary: String::new(),
        },
        State::Diverged => RunOutcome::Diverged(error()),
        _ => RunOutcome::Failed(error()),
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    pub done: Vec<String>,
    pub cached: Vec<String>,
    /// Finished by another process while this one ran the plan.
    pub elsewhere: Vec<String>,
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
        let elsewhere = if self.elsewhere.is_empty() {
            String::new()
        } else {
            format!(", {} by another process", self.elsewhere.len())
        };
        let mut s = format!(
            "{} trained, {} cached{elsewhere}, {} failed, {} diverged, {} skipped in {:.1}s",
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

/// A run not yet started, in the order runs start: the most work first on the longest
/// chain from the run to the end of the plan (its own work, [`super::work`], plus its
/// dependants'; critical-path list scheduling), then by plan index. So a foundation model
/// starts before the students nobody waits on, and long students before short ones.
type Queued = (std::cmp::Reverse<u64>, usize);

/// Each node's queue place, and whether runs still to do wait on it.
fn priorities(
    plan: &Plan,
    order: &[usize],
    work: &[u64],
    todo: &BTreeSet<usize>,
) -> (Vec<Queued>, Vec<bool>) {
    let n = plan.nodes.len();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &j in todo {
        for &d in &plan.nodes[j].deps {
            dependants[d].push(j);
        }
    }
    let mut chain = vec![0u64; n];
    for &i in order.iter().rev() {
        let after = dependants[i].iter().map(|&j| chain[j]).max().unwrap_or(0);
        chain[i] = work[i].saturating_add(after);
    }
    let queued = (0..n).map(|i| (std::cmp::Reverse(chain[i]), i)).collect();
    (queued, dependants.iter().map(|d| !d.is_empty()).collect())
}

struct Shared {
    states: Vec<NodeState>,
    remaining: BTreeSet<Queued>,
    /// Each node's place in `remaining`.
    queued: Vec<Queued>,
    /// Whether runs still to do wait on the node.
    awaited: Vec<bool>,
    /// Each node's estimated work ([`super::work`]).
    work: Vec<u64>,
    /// Runs picked and not yet recorded (or put back).
    running: usize,
    /// A run computing on every worker's threads is running: the other workers wait.
    wide_running: bool,
    /// Runs another process holds, with when to look again.
    held_elsewhere: BTreeMap<usize, Instant>,
    /// Runs whose wait has been announced.
    announced: BTreeSet<usize>,
    summary: Summary,
}

impl Shared {
    /// The next node to work on, and whether it runs wide: a ready one (the longest
    /// first), else one held elsewhere that is due for another look; `Err(wait)` when there
    /// is none yet (`None`: nothing left at all).
    fn pick(
        &mut self,
        plan: &Plan,
        exec: &dyn Executor,
        progress: &Progress,
    ) -> Result<(usize, bool), Option<Duration>> {
        if self.wide_running {
            return Err(Some(Duration::from_secs(3600)));
        }
        // Skip dependants of failed runs, then take the first ready node. With nothing
        // running (nor held by another process), it runs wide if no other ready run
        // could use the cores instead: it is the only one, or the only one others wait on
        // (a foundation model before its students; two foundations train side by side).
        let may_widen = exec.can_widen() && self.running == 0 && self.held_elsewhere.is_empty();
        let mut first: Option<usize> = None;
        let candidates: Vec<Queued> = self.remaining.iter().copied().collect();
        for q in candidates {
            let i = q.1;
            let deps = &plan.nodes[i].deps;
            if let Some(&bad) = deps.iter().find(|&&d| self.states[d] == NodeState::Bad) {
                let reason = format!(
                    "dependency {} did not succeed",
                    plan.nodes[bad].spec.label()
                );
                self.remaining.remove(&q);
                self.states[i] = NodeState::Bad;
                let label = plan.nodes[i].spec.label();
                exec.skipped(&plan.nodes[i], &reason);
                progress.skipped(&label, &reason, self.work[i]);
                self.summary.skipped.push((label, reason));
                continue;
            }
            if !deps.iter().all(|&d| self.states[d] == NodeState::Ok) {
                continue;
            }
            match first {
                None if !may_widen => return Ok(self.start(i, false)),
                None => first = Some(i),
                Some(f) if !self.awaited[f] || self.awaited[i] => return Ok(self.start(f, false)),
                Some(_) => {}
            }
        }
        if let Some(f) = first {
            return Ok(self.start(f, true));
        }
        let now = Instant::now();
        if let Some(i) = self
            .held_elsewhere
            .iter()
            .find(|(_, &due)| due <= now)
            .map(|(&i, _)| i)
        {
            self.held_elsewhere.remove(&i);
            self.states[i] = NodeState::Running;
            self.running += 1;
            return Ok((i, false));
        }
        if self.remaining.is_empty() && self.held_elsewhere.is_empty() {
            return Err(None);
        }
        let next_look = self.held_elsewhere.values().min();
        Err(Some(next_look.map_or(Duration::from_secs(3600), |due| {
            due.saturating_duration_since(now)
        })))
    }

    /// Take node `i` out of the queue to run it.
    fn start(&mut self, i: usize, wide: bool) -> (usize, bool) {
        self.remaining.remove(&self.queued[i]);
        self.states[i] = NodeState::Running;
        self.running += 1;
        self.wide_running = wide;
        (i, wide)
    }

    /// A picked node went back to waiting (another process holds it).
    fn put_back(&mut self, i: usize) {
        self.states[i] = NodeState::Waiting;
        self.running -= 1;
        self.wide_running = false;
    }

    fn record(&mut self, i: usize, label: String, outcome: RunOutcome, elsewhere: bool) {
        self.running -= 1;
        self.wide_running = false;
        let place = |e: String| {
            if elsewhere {
                format!("in another process: {e}")
            } else {
                e
            }
        };
        match outcome {
            RunOutcome::Done { .. } => {
                self.states[i] = NodeState::Ok;
                if elsewhere {
                    self.summary.elsewhere.push(label);
                } else {
                    self.summary.done.push(label);
                }
            }
            RunOutcome::Failed(e) => {
                self.states[i] = NodeState::Bad;
                self.summary.failed.push((label, place(e)));
            }
            RunOutcome::Diverged(e) => {
                self.states[i] = NodeState::Bad;
                self.summary.diverged.push((label, place(e)));
            }
        }
    }
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

/// Run every node of the plan that is not already done, with one worker per entry of
/// `workers` (a device name each; a device may appear several times).
pub fn run_plan(
    plan: &Plan,
    workers: &[String],
    exec: &dyn Executor,
    progress: &Progress,
) -> Summary {
    let started = Instant::now();
    let mut shared = Shared {
        states: vec![NodeState::Waiting; plan.nodes.len()],
        remaining: BTreeSet::new(),
        queued: Vec::new(),
        awaited: Vec::new(),
        work: Vec::new(),
        running: 0,
        wide_running: false,
        held_elsewhere: BTreeMap::new(),
        announced: BTreeSet::new(),
        summary: Summary::default(),
    };
    let mut todo: BTreeSet<usize> = BTreeSet::new();
    // Quadratic in the runs: computed once.
    let order = plan.topological_order();
    for &i in &order {
        if plan.is_cached(i) {
            shared.states[i] = NodeState::Ok;
            shared.summary.cached.push(plan.nodes[i].spec.label());
        } else {
            todo.insert(i);
        }
    }
    let work = super::work::estimates(plan);
    progress.set_total_work(todo.iter().fold(0u64, |t, &i| t.saturating_add(work[i])));
    (shared.queued, shared.awaited) = priorities(plan, &order, &work, &todo);
    shared.work = work.clone();
    let work = &work;
    shared.remaining = todo.iter().map(|&i| shared.queued[i]).collect();
    let lock = Mutex::new(shared);
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        for (worker, device) in workers.iter().enumerate() {
            let (lock, wake) = (&lock, &wake);
            scope.spawn(move || loop {
                let next = {
                    let mut g = lock.lock().expect("scheduler lock");
                    loop {
                        match g.pick(plan, exec, progress) {
                            Ok(picked) => break Some(picked),
                            Err(None) => break None,
                            Err(Some(wait)) => {
                                g = wake.wait_timeout(g, wait).expect("scheduler lock").0;
                            }
                        }
                    }
                };
                let Some((i, wide)) = next else {
                    wake.notify_all();
                    return;
                };
                let node = &plan.nodes[i];
                let label = node.spec.label();
                let (outcome, elsewhere) = match exec.claim(node) {
                    Claimed::Busy(holder) => {
                        let mut g = lock.lock().expect("scheduler lock");
                        if g.announced.insert(i) {
                            progress.waiting(&label, &holder);
                        }
                        g.put_back(i);
                        g.held_elsewhere.insert(i, Instant::now() + POLL);
                        wake.notify_all();
                        continue;
                    }
                    Claimed::Finished(outcome) => {
                        progress.finished_elsewhere(&label, &outcome, work[i]);
                        (outcome, true)
                    }
                    Claimed::Mine(claim) => {
                        progress.run_started(worker, &label, device);
                        let t0 = Instant::now();
                        let sink = WorkerSink { progress, worker };
                        let outcome = exec.execute(node, claim, worker, device, wide, &sink);
                        let secs = t0.elapsed().as_secs_f64();
                        progress.run_finished(worker, &label, &outcome, secs, work[i]);
                        (outcome, false)
                    }
                };
                lock.lock()
                    .expect("scheduler lock")
                    .record(i, label, outcome, elsewhere);
                wake.notify_all();
            });
        }
    });
    progress.finish();
    let mut summary = lock.into_inner().expect("scheduler lock").summary;
    summary.wall_s = started.elapsed().as_secs_f64();
    summary
}
