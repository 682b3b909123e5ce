//! The Slurm side of the command line: `harness run FILE --executor slurm` (submit the plan as
//! job arrays), `harness exec RUN_ID` (what each array task runs), `harness status FILE` (the
//! store's state of each run, and Slurm's for queued and running ones) and `harness cancel
//! FILE`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::args::GlobalArgs;
use super::experiment::{load_experiment, load_registry, prepare, train_executor};
use super::workers::{layout, Jobs};
use crate::error::{Error, Result};
use crate::sched::dag::{dependencies, Plan, PlanNode};
use crate::sched::local::run_plan;
use crate::sched::progress::Progress;
use crate::sched::slurm::arrays::{valid_time, waves, ExecPaths, SlurmOptions};
use crate::sched::slurm::queue::{self, TaskState};
use crate::sched::slurm::submission::{self, read_submissions, Submission};
use crate::store::claim::{shown_state, ClaimSettings};
use crate::store::manifest::read_manifests;
use crate::store::run_dir::RunDir;
use crate::store::status::{now, State};
use crate::train::runner::open_device;

/// An absolute version of `p` (array tasks start in another directory, maybe on another node).
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

pub(super) fn cmd_submit(
    g: &GlobalArgs,
    file: &Path,
    profile: Option<&str>,
    opts: &SlurmOptions,
    dry_run: bool,
) -> Result<u8> {
    if let Some(t) = &opts.time {
        if !valid_time(t) {
            return Err(Error::input(format!(
                "--time {t}: expected HH:MM:SS, D-HH:MM:SS or minutes, as sbatch takes it"
            )));
        }
    }
    let p = prepare(g, file, profile, dry_run)?;
    super::preflight::check_weights_readable(&p.plan, &p.todo)?;
    let name = &p.experiment.name;
    // Runs an earlier submission still has queued or running are not submitted twice.
    let subs = read_submissions(&g.results_dir, name)?;
    let active = if subs.is_empty() {
        BTreeSet::new()
    } else {
        active_runs(&subs)?
    };
    let waves = waves(&p.plan, &|id| active.contains(id));
    let queued = p
        .todo
        .iter()
        .filter(|&&i| active.contains(&p.plan.nodes[i].run_id))
        .count();
    if waves.is_empty() {
        eprintln!(
            "experiment {name}: nothing to submit ({} runs: {} done, {queued} queued or running in Slurm)",
            p.plan.nodes.len(),
            p.plan.nodes.len() - p.todo.len()
        );
        return Ok(0);
    }
    let paths = ExecPaths {
        harness: std::env::current_exe().map_err(|e| Error::io("harness executable", e))?,
        results_dir: absolute(&g.results_dir)?,
        data_dir: absolute(&g.data_dir)?,
        registry: absolute(&g.registry)?,
    };
    let prepared = submission::prepare(name, &waves, opts, &paths);
    let runs: usize = waves.iter().map(|w| w.run_ids.len()).sum();
    if dry_run {
        for (w, (path, text)) in waves.iter().zip(&prepared.scripts) {
            println!(
                "# {}\n# {}\n{text}",
                path.display(),
                submission::sbatch_line(w, path)
            );
        }
        eprintln!(
            "dry run: {} in {}, nothing written or submitted",
            counted(runs, "run"),
            counted(waves.len(), "array")
        );
        return Ok(0);
    }
    // `harness exec` reads each run's spec from the store.
    for node in &p.plan.nodes {
        if waves.iter().any(|w| w.run_ids.contains(&node.run_id)) {
            RunDir::new(&g.results_dir, &node.run_id).write_spec(&node.spec)?;
        }
    }
    let sub = submission::submit(&g.results_dir, name, &p.profile, &waves, &prepared)?;
    eprintln!(
        "experiment {name} · profile {} · submitted {} in {} ({} done, {queued} already queued):",
        p.profile,
        counted(runs, "run"),
        counted(sub.arrays.len(), "array"),
        p.plan.nodes.len() - p.todo.len()
    );
    for a in &sub.arrays {
        let after = if a.after.is_empty() {
            String::new()
        } else {
            format!(", after job {} succeeds", a.after.join(" and "))
        };
        eprintln!(
            "  job {:<8} {:<10} {}{after}",
            a.job_id,
            a.stages,
            counted(a.runs.len(), "run")
        );
    }
    eprintln!(
        "scripts and task logs: {}\nfollow with `harness status {f}`; stop with `harness cancel {f}`",
        sub.folder.display(),
        f = file.display()
    );
    Ok(0)
}

fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Where each run was last submitted: run id → (array job id, task index).
fn last_submitted(subs: &[Submission]) -> BTreeMap<String, (String, usize)> {
    let mut at = BTreeMap::new();
    for a in subs.iter().flat_map(|s| &s.arrays) {
        for (k, run) in a.runs.iter().enumerate() {
            at.insert(run.clone(), (a.job_id.clone(), k));
        }
    }
    at
}

fn array_ids(subs: &[Submission]) -> Vec<String> {
    subs.iter()
        .flat_map(|s| s.arrays.iter().map(|a| a.job_id.clone()))
        .collect()
}

/// Runs whose last submission is queued or running.
fn active_runs(subs: &[Submission]) -> Result<BTreeSet<String>> {
    let states = queue::query(&array_ids(subs))?;
    Ok(last_submitted(subs)
        .into_iter()
        .filter(|(_, (job, k))| {
            states
                .get(&format!("{job}_{k}"))
                .is_some_and(TaskState::is_active)
        })
        .map(|(run, _)| run)
        .collect())
}

pub(super) fn cmd_exec(
    g: &GlobalArgs,
    run_id: &str,
    experiment: Option<&str>,
    device: &str,
) -> Result<u8> {
    open_device(device)?;
    let dir = RunDir::new(&g.results_dir, run_id);
    if !dir.spec_path().exists() {
        return Err(Error::input(format!(
            "run {run_id}: no {}; `harness exec` executes runs that `harness run FILE --executor slurm` submitted (it writes their specs)",
            dir.spec_path().display()
        )));
    }
    let spec = dir.read_spec()?;
    if spec.run_id() != run_id {
        return Err(Error::input(format!(
            "{} describes run {}, not {run_id}: it was written by another version of harness; submit the experiment again",
            dir.spec_path().display(),
            spec.run_id()
        )));
    }
    for dep in dependencies(&spec) {
        let state = RunDir::new(&g.results_dir, dep)
            .read_status()?
            .map(|s| s.state);
        if state != Some(State::Done) {
            eprintln!(
                "{}: dependency {dep} is {}, not done; it runs in an earlier array (see `harness status FILE`)",
                spec.label(),
                state.map_or("not started", State::as_str)
            );
            return Ok(1);
        }
    }
    let experiment = match experiment {
        Some(e) => e.to_string(),
        None => read_manifests(&g.results_dir)?
            .into_iter()
            .find(|m| m.runs.iter().any(|r| r == run_id))
            .map(|m| m.experiment)
            .unwrap_or_default(),
    };
    let stored = dir.effective_state()?;
    let plan = Plan {
        nodes: vec![PlanNode {
            spec,
            run_id: run_id.to_string(),
            deps: Vec::new(),
            stored,
        }],
    };
    if plan.is_cached(0) {
        eprintln!("{}: already done", plan.nodes[0].spec.label());
        return Ok(0);
    }
    let registry = Arc::new(load_registry(&g.registry)?);
    let threads = candle_core::utils::get_num_threads();
    // One worker, inside its own pool as in `harness run` (see `cli::workers`).
    let workers = layout(&[device.to_string()], Jobs::Fixed(1), threads)?;
    let exec = train_executor(
        g,
        &experiment,
        registry,
        threads as u32,
        workers.pools,
        None,
        now(),
    )?;
    let progress = Progress::new(1, 1, true);
    let summary = run_plan(&plan, &[device.to_string()], &exec, &progress);
    eprintln!("{}", summary.render());
    Ok(if summary.ok() { 0 } else { 1 })
}

pub(super) fn cmd_status_of(g: &GlobalArgs, file: &Path, profile: Option<&str>) -> Result<u8> {
    let l = load_experiment(g, file, profile)?;
    let plan = Plan::new(l.specs, &g.results_dir)?;
    let subs = read_submissions(&g.results_dir, &l.experiment.name)?;
    let at = last_submitted(&subs);
    let slurm = if subs.is_empty() {
        BTreeMap::new()
    } else {
        queue::query(&array_ids(&subs)).unwrap_or_else(|e| {
            eprintln!("note: {e}; showing the store only");
            BTreeMap::new()
        })
    };
    let claims = ClaimSettings::from_env()?;
    println!(
        "experiment {} · profile {} · {} runs",
        l.experiment.name,
        l.profile,
        plan.nodes.len()
    );
    println!(
        "{:<16}  {:<11}  {:>7}  {:<32}  run",
        "run_id", "store", "epochs", "slurm"
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in &plan.nodes {
        let dir = RunDir::new(&g.results_dir, &n.run_id);
        let status = dir.read_status()?;
        let state = status
            .as_ref()
            .map_or("not started", |s| shown_state(&dir.path, s.state, &claims));
        *counts.entry(state.to_string()).or_default() += 1;
        let epochs = status
            .as_ref()
            .map(|s| format!("{}/{}", s.epochs_done, s.epochs_total))
            .unwrap_or_else(|| format!("0/{}", n.spec.train.epochs));
        let task = at.get(&n.run_id).map(|(job, k)| format!("{job}_{k}"));
        let slurm_state = match task.as_ref().map(|t| (t, slurm.get(t))) {
            None => "-".to_string(),
            Some((t, None)) => format!("{t} (gone from Slurm)"),
            Some((t, Some(st))) if st.detail.is_empty() => format!("{t} {}", st.state),
            Some((t, Some(st))) => format!("{t} {} ({})", st.state, st.detail),
        };
        println!(
            "{:<16}  {:<11}  {:>7}  {:<32}  {}",
            n.run_id,
            state,
            epochs,
            slurm_state,
            n.spec.label()
        );
    }
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("{}", summary.join(", "));
    Ok(0)
}

pub(super) fn cmd_cancel(g: &GlobalArgs, file: &Path, profile: Option<&str>) -> Result<u8> {
    let l = load_experiment(g, file, profile)?;
    let name = &l.experiment.name;
    let subs = read_submissions(&g.results_dir, name)?;
    let ids = array_ids(&subs);
    let states = queue::query(&ids)?;
    let live: Vec<String> = ids
        .into_iter()
        .filter(|id| {
            states
                .iter()
                .any(|(t, st)| t.starts_with(&format!("{id}_")) && st.is_active())
        })
        .collect();
    if live.is_empty() {
        println!("experiment {name}: no queued or running Slurm jobs");
        return Ok(0);
    }
    let tasks = states.values().filter(|s| s.is_active()).count();
    queue::cancel(&live)?;
    println!(
        "experiment {name}: cancelled array jobs {} ({tasks} tasks queued or running); runs stopped midway resume from their last finished epoch when submitted again",
        live.join(", ")
    );
    Ok(0)
}
