//! The subcommands that work on experiments and the run store: `plan`, `run`, `status`, and
//! the options `report` renders with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::args::GlobalArgs;
use super::memory_check::check_memory;
use super::preflight::{check_inputs, check_weights_readable};
use super::workers::{layout, Jobs};
use crate::data::registry::Registry;
use crate::data::{source, DataKind};
use crate::error::Result;
use crate::method::{self, PAPER_METHODS};
use crate::report::{self, ReportOptions};
use crate::sched::dag::Plan;
use crate::sched::local::{run_plan, TrainExecutor};
use crate::sched::progress::Progress;
use crate::spec::expand::expand;
use crate::spec::run::{RunSpec, Stage};
use crate::spec::validate::{self, Experiment};
use crate::store::claim::{shown_state, ClaimSettings};
use crate::store::manifest::{write_manifest, Manifest};
use crate::store::run_dir::RunDir;
use crate::store::status::{now, Status};
use crate::train::runner::{open_device, CheckpointPolicy, RunContext};

pub(super) fn load_registry(path: &Path) -> Result<Registry> {
    Registry::load(path)
}

/// Registry + validated experiment + chosen profile + expanded runs.
pub(super) struct Loaded {
    pub registry: Registry,
    pub experiment: Experiment,
    pub profile: String,
    pub specs: Vec<RunSpec>,
}

pub(super) fn load_experiment(
    g: &GlobalArgs,
    file: &Path,
    profile: Option<&str>,
) -> Result<Loaded> {
    let registry = load_registry(&g.registry)?;
    let experiment = validate::load(file, &registry, &method::CATALOG)?;
    let (profile, _) = experiment.select_profile(profile)?;
    check_inputs(&experiment, &profile, &registry, &g.data_dir)?;
    let specs = expand(
        &experiment,
        &profile,
        &registry,
        &g.data_dir,
        &method::CATALOG,
    )?;
    Ok(Loaded {
        registry,
        experiment,
        profile,
        specs,
    })
}

pub(super) fn cmd_plan(g: &GlobalArgs, file: &Path, profile: Option<&str>) -> Result<u8> {
    let l = load_experiment(g, file, profile)?;
    let plan = Plan::new(l.specs, &g.results_dir)?;
    let kind = plan
        .nodes
        .first()
        .map(|n| n.spec.data.kind.as_str())
        .unwrap_or("-");
    println!(
        "experiment {} · profile {} · data {}{} · {} runs",
        l.experiment.name,
        l.profile,
        kind,
        if kind == "synthetic" {
            " (synthetic stand-ins, not the paper's data)"
        } else {
            ""
        },
        plan.nodes.len()
    );
    println!(
        "{:<10} {:<10} {:<10} {:<12} {:<24} {:>5} {:>7}  {:<16}  status",
        "stage", "method", "teacher", "pretrain", "tasks", "seed", "epochs", "run_id"
    );
    let mut cached = 0;
    for (i, n) in plan.nodes.iter().enumerate() {
        let status = match n.stored {
            _ if plan.is_cached(i) => {
                cached += 1;
                "cached".to_string()
            }
            Some(s) => format!("{} (will resume)", s.as_str()),
            None => "new".to_string(),
        };
        let tasks = match &n.spec.transfer {
            // What a transfer run fine-tunes, and on which downstream set.
            Some(t) => {
                let from = match (&t.source, &t.expert) {
                    (None, _) => "scratch",
                    (Some(_), Some(e)) => e.as_str(),
                    (Some(_), None) => "shared",
                };
                format!("{from} → {}", n.spec.downstream.as_deref().unwrap_or("?"))
            }
            None if n.spec.tasks.len() == 1 => n.spec.tasks[0].clone(),
            None => format!("all {} tasks", n.spec.tasks.len()),
        };
        // Foundation runs are named by their model; distilling runs show their teacher.
        let (method, teacher) = match (&n.spec.teacher, n.spec.stage) {
            (_, Stage::Foundation) => (n.spec.foundation.clone().unwrap_or_default(), "-"),
            (Some(t), _) => (n.spec.method.clone(), t.name.as_str()),
            (None, Stage::Transfer) => (
                n.spec.method.clone(),
                n.spec.foundation.as_deref().unwrap_or("-"),
            ),
            (None, _) => (n.spec.method.clone(), "-"),
        };
        println!(
            "{:<10} {:<10} {:<10} {:<12} {:<24} {:>5} {:>7}  {:<16}  {}",
            n.spec.stage.as_str(),
            method,
            teacher,
            n.spec.pretrain,
            tasks,
            n.spec.seed,
            n.spec.train.epochs,
            n.run_id,
            status
        );
    }
    println!("{} to run, {} cached", plan.nodes.len() - cached, cached);
    Ok(0)
}

/// An experiment ready to execute: its plan, with the data of every pending run loaded
/// and checked and the manifest written.
pub(super) struct Prepared {
    pub experiment: Experiment,
    pub profile: String,
    pub registry: Arc<Registry>,
    pub plan: Plan,
    /// Plan indices of the runs not done yet.
    pub todo: Vec<usize>,
}

/// `dry`: check everything but write nothing (no manifest).
pub(super) fn prepare(
    g: &GlobalArgs,
    file: &Path,
    profile: Option<&str>,
    dry: bool,
) -> Result<Prepared> {
    let l = load_experiment(g, file, profile)?;
    let plan = Plan::new(l.specs, &g.results_dir)?;
    let todo: Vec<usize> = (0..plan.nodes.len())
        .filter(|&i| !plan.is_cached(i))
        .collect();
    let registry = Arc::new(l.registry);
    // Load (and validate) every data set the pending runs need before training anything, so
    // bad data is a bad-input error up front rather than a string of failed runs.
    let mut loaded = std::collections::BTreeSet::new();
    for &i in &todo {
        let d = &plan.nodes[i].spec.data;
        if loaded.insert(serde_json::to_string(d).unwrap_or_default()) {
            let ds = source::load(&registry, d, &g.data_dir)?;
            if ds.kind == DataKind::Synthetic {
                eprintln!(
                    "note: `{}` uses SYNTHETIC stand-in data (generated, {} tasks, {} px); results are not paper reproductions",
                    d.dataset,
                    ds.tasks.len(),
                    ds.image_size
                );
            }
        }
    }
    if dry {
        return Ok(Prepared {
            experiment: l.experiment,
            profile: l.profile,
            registry,
            plan,
            todo,
        });
    }
    // The manifest first: it says which runs are this experiment's, so reports of a
    // half-finished sweep already show what is done.
    write_manifest(
        &g.results_dir,
        &Manifest {
            experiment: l.experiment.name.clone(),
            profile: l.profile.clone(),
            file: file.display().to_string(),
            description: l.experiment.description.clone(),
            runs: plan.nodes.iter().map(|n| n.run_id.clone()).collect(),
            downstream: l.experiment.downstream.clone(),
            expert_for: l.experiment.expert_for.clone(),
            reference: l.experiment.reference.clone(),
        },
    )?;
    Ok(Prepared {
        experiment: l.experiment,
        profile: l.profile,
        registry,
        plan,
        todo,
    })
}

/// `--checkpoint-every` and `--checkpoint-interval`.
fn checkpoint_policy(g: &GlobalArgs) -> Result<CheckpointPolicy> {
    let interval = match g.checkpoint_interval {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(crate::error::Error::input(format!(
                "--checkpoint-interval {s}: expected a positive number of seconds"
            )))
        }
    };
    Ok(CheckpointPolicy {
        every_epochs: g.checkpoint_every,
        interval,
    })
}

/// The local executor for `results_dir` with these workers.
pub(super) fn train_executor(
    g: &GlobalArgs,
    experiment: &str,
    registry: Arc<Registry>,
    threads: u32,
    pools: Vec<Option<rayon::ThreadPool>>,
    wide: Option<rayon::ThreadPool>,
    session_started: f64,
) -> Result<TrainExecutor> {
    Ok(TrainExecutor {
        ctx: RunContext {
            experiment: experiment.to_string(),
            registry,
            data_dir: g.data_dir.clone(),
            results_dir: g.results_dir.clone(),
            threads,
            checkpoints: checkpoint_policy(g)?,
        },
        claims: ClaimSettings::from_env()?,
        session_started,
        pools,
        wide,
    })
}

pub(super) fn cmd_run(
    g: &GlobalArgs,
    file: &Path,
    profile: Option<&str>,
    devices: &[String],
    jobs: Jobs,
    plain: bool,
) -> Result<u8> {
    for d in devices {
        open_device(d)?;
    }
    let all_threads = candle_core::utils::get_num_threads();
    let mut workers = layout(devices, jobs, all_threads)?;
    ClaimSettings::from_env()?;
    let session_started = now();
    let Prepared {
        experiment,
        profile,
        registry,
        plan,
        todo,
    } = prepare(g, file, profile, false)?;
    check_weights_readable(&plan, &todo)?;
    // Before any training: a step too large for free memory would be killed by the OS
    // (CPU) or fail at its first step (GPU).
    if let Err(e) = check_memory(&experiment, &profile, &workers.devices) {
        // `auto` chose the workers: fewer steps at once before refusing.
        if jobs != Jobs::Auto || workers.devices.len() == devices.len() {
            return Err(e);
        }
        workers = layout(devices, Jobs::Fixed(1), all_threads)?;
        check_memory(&experiment, &profile, &workers.devices)?;
        eprintln!("--jobs auto: one worker per device, as a training step per thread at once would not fit in memory");
    }
    let threads = workers.threads as u32;
    let per_worker = match &workers.wide {
        Some(pool) => format!(
            " per CPU worker, {} for a run alone",
            pool.current_num_threads()
        ),
        None if workers.devices.len() > 1 => " per CPU worker".to_string(),
        None => String::new(),
    };
    eprintln!(
        "experiment {} · profile {} · {} runs ({} cached, {} to run) · workers {} · {threads} thread{}{per_worker}",
        experiment.name,
        profile,
        plan.nodes.len(),
        plan.nodes.len() - todo.len(),
        todo.len(),
        workers.devices.join(","),
        if threads == 1 { "" } else { "s" }
    );
    let executor = train_executor(
        g,
        &experiment.name,
        registry,
        threads,
        workers.pools,
        workers.wide,
        session_started,
    )?;
    let progress = Progress::new(todo.len(), workers.devices.len(), plain);
    let summary = run_plan(&plan, &workers.devices, &executor, &progress);
    eprintln!("{}", summary.render());
    if !summary.ok() {
        eprintln!("see results/<run_id>/status.json and log.txt of the runs above; re-running the same command retries them");
    }
    Ok(if summary.ok() { 0 } else { 1 })
}

pub(super) fn cmd_status(g: &GlobalArgs) -> Result<u8> {
    let mut rows: Vec<Status> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&g.results_dir) {
        for e in entries.flatten() {
            let dir = RunDir { path: e.path() };
            if let Ok(Some(s)) = dir.read_status() {
                rows.push(s);
            }
        }
    }
    if rows.is_empty() {
        println!(
            "no runs in {} (run `harness run FILE` first)",
            g.results_dir.display()
        );
        return Ok(0);
    }
    rows.sort_by(|a, b| a.label.cmp(&b.label));
    let claims = ClaimSettings::from_env()?;
    let mut interrupted = 0;
    for s in &rows {
        // A run whose holder is gone (killed, machine restarted) is not running: the next
        // `harness run` resumes it from its last checkpoint. The claim knows about holders
        // on other hosts, which a pid cannot tell.
        let state = shown_state(
            &RunDir::new(&g.results_dir, &s.run_id).path,
            s.state,
            &claims,
        );
        if state == "interrupted" {
            interrupted += 1;
        }
        println!(
            "{:<16}  {:<11}  {:>3}/{:<3} epochs  {:>8}  {}{}",
            s.run_id,
            state,
            s.epochs_done,
            s.epochs_total,
            s.wall_time_s
                .map(|w| format!("{w:.1}s"))
                .unwrap_or_default(),
            s.label,
            s.error
                .as_ref()
                .map(|e| format!("  — {e}"))
                .unwrap_or_default()
        );
    }
    if interrupted > 0 {
        eprintln!(
            "{interrupted} interrupted: `harness run FILE` resumes those FILE still plans, from their last finished epoch"
        );
    }
    Ok(0)
}

pub(super) fn report_options(
    g: &GlobalArgs,
    registry: &Registry,
    experiment: Option<String>,
    format: report::Format,
    reports_dir: &Path,
) -> ReportOptions {
    let task_order: BTreeMap<String, Vec<(String, String)>> = registry
        .datasets
        .iter()
        .map(|d| {
            (
                d.key.clone(),
                d.tasks
                    .iter()
                    .map(|t| (t.key.clone(), t.name.clone()))
                    .collect(),
            )
        })
        .collect();
    ReportOptions {
        results_dir: g.results_dir.clone(),
        reports_dir: reports_dir.to_path_buf(),
        experiment,
        format,
        task_order,
        method_order: PAPER_METHODS.iter().map(|(k, _)| k.to_string()).collect(),
        method_display: PAPER_METHODS
            .iter()
            .map(|(k, _)| (k.to_string(), method::display_name(k)))
            .collect(),
    }
}
