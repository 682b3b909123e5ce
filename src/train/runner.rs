//! Executing one run: write its spec, mark it running, load its data, build the method's
//! network, resume from a checkpoint if one exists, train, and record metrics and the final
//! status. Every failure ends up in `status.json` with its message; nothing here panics on
//! bad data or diverging losses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use candle_nn::VarMap;

use crate::analysis::similarity::{self, AnalysisInputs};
use crate::data::batch::TaskView;
use crate::data::registry::Registry;
use crate::data::source;
use crate::error::{Error, Result};
use crate::method::teacher::Teacher;
use crate::method::transfer::TransferNet;
use crate::method::weighting::{Equal, Weighting};
use crate::method::{self, BuildContext, TaskModel};
use crate::model::init::SeededInit;
use crate::model::weights::{self, KeyRename};
use crate::spec::run::{RunSpec, Stage, WeightsRef, FOUNDATION_METHOD, SCRATCH_METHOD};
use crate::store::artefacts;
use crate::store::claim::Claim;
use crate::store::metrics::{read_metrics, write_metrics, MetricRow};
use crate::store::run_dir::RunDir;
use crate::store::status::{now, State, Status};
use crate::store::task_weights::{read_task_weights, write_task_weights, WeightRow};
use crate::train::checkpoint::{self, Position};
pub use crate::train::checkpoint_policy::CheckpointPolicy;
use crate::train::fit::{fit, EpochTally, EpochValue, FitArgs, FitHooks, FitOutcome, StepProgress};
use crate::train::optim::{params_of, Optimizer};
use crate::train::transfer;
use crate::util::rng::SplitMix64;

/// What every run of a session shares.
#[derive(Clone)]
pub struct RunContext {
    /// The experiment whose plan is being executed, recorded on the metrics rows of the
    /// runs it trains (a run another experiment shares belongs to both through their
    /// manifests, whichever trained it).
    pub experiment: String,
    pub registry: Arc<Registry>,
    pub data_dir: PathBuf,
    pub results_dir: PathBuf,
    pub threads: u32,
    pub checkpoints: CheckpointPolicy,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Done { summary: String },
    Failed(String),
    Diverged(String),
}

/// Receives step progress of the run being executed.
pub trait StepSink: Sync {
    fn step(&self, p: &StepProgress);
}

/// Open a device by name (`cpu`, `cuda:N`).
pub fn open_device(name: &str) -> Result<Device> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(n) = name.strip_prefix("cuda:") {
        let ordinal: usize = n.parse().map_err(|_| {
            Error::input(format!(
                "--device {name}: expected cuda:N with N a GPU index"
            ))
        })?;
        if !candle_core::utils::cuda_is_available() {
            return Err(Error::input(format!(
                "--device {name}: this build has no CUDA support; rebuild with `cargo build --release --features cuda` or use --device cpu"
            )));
        }
        return Device::new_cuda(ordinal)
            .map_err(|e| Error::input(format!("--device {name}: {e}")));
    }
    Err(Error::input(format!(
        "--device {name}: unknown device; use cpu or cuda:N"
    )))
}

/// Records a run that was not started because a run it depends on did not succeed: its
/// spec and a `skipped` status with the reason, so that `harness status` and `harness
/// regress` can say what it is and why it has no results. Re-running retries it.
pub fn record_skipped(spec: &RunSpec, ctx: &RunContext, reason: &str) -> Result<()> {
    let dir = RunDir::new(&ctx.results_dir, &spec.run_id());
    dir.write_spec(spec)?;
    dir.write_status(&Status {
        finished_at: Some(now()),
        error: Some(reason.to_string()),
        ..new_status(spec, State::Skipped)
    })
}

/// The status of `spec` in `state`, nothing timed or owned yet, with this build's and
/// machine's provenance.
fn new_status(spec: &RunSpec, state: State) -> Status {
    Status {
        state,
        run_id: spec.run_id(),
        label: spec.label(),
        started_at: None,
        finished_at: None,
        wall_time_s: None,
        epochs_done: 0,
        epochs_total: spec.train.epochs,
        error: None,
        pid: None,
        device: None,
        threads: None,
        code_version: spec.code_version.clone(),
        provenance: Some(crate::util::provenance::current()),
        artefacts: Default::default(),
        writing: false,
    }
}

/// Execute one run to completion (or failure), writing everything into its run folder. The
/// caller holds the run's claim: nobody else writes in the folder meanwhile, so leftover
/// temporary files are a dead process's and can go.
pub fn execute(
    spec: &RunSpec,
    device_name: &str,
    ctx: &RunContext,
    sink: &dyn StepSink,
    claim: &Claim,
) -> RunOutcome {
    let dir = RunDir::new(&ctx.results_dir, &spec.run_id());
    let started = Instant::now();
    let mut status = Status {
        started_at: Some(now()),
        pid: Some(std::process::id()),
        device: Some(device_name.to_string()),
        threads: Some(ctx.threads),
        ..new_status(spec, State::Running)
    };
    let mut analysed = None;
    let result = dir
        .clean_temporaries()
        .and_then(|_| set_aside_corrupt(&dir))
        .and_then(|_| dir.write_spec(spec))
        .and_then(|_| dir.write_status(&status))
        .and_then(|_| match spec.stage {
            Stage::Analysis => analyse(spec, device_name, ctx, &dir).map(|s| {
                analysed = Some(s);
                FitOutcome::Done
            }),
            _ => train(spec, device_name, ctx, &dir, sink, started, claim),
        });
    if claim.is_lost() {
        // Whoever took the claim over owns the status now.
        return RunOutcome::Failed(format!(
            "another process took over the claim of {} (this one looked dead to it); stopped without recording",
            spec.run_id()
        ));
    }
    let (state, outcome) = match result {
        Ok(FitOutcome::Done) => {
            let summary = analysed.unwrap_or_else(|| summarise(&dir).unwrap_or_default());
            (State::Done, RunOutcome::Done { summary })
        }
        Ok(FitOutcome::Diverged(msg)) => (State::Diverged, RunOutcome::Diverged(msg)),
        Err(e) => (State::Failed, RunOutcome::Failed(e.to_string())),
    };
    status.state = state;
    status.finished_at = Some(now());
    status.wall_time_s = Some(started.elapsed().as_secs_f64());
    status.pid = None;
    status.epochs_done = read_metrics(&dir.metrics_path())
        .map(|rows| rows.iter().map(|r| r.epoch).max().unwrap_or(0))
        .unwrap_or(0);
    if let RunOutcome::Failed(m) | RunOutcome::Diverged(m) = &outcome {
        status.error = Some(m.clone());
    }
    match artefacts::record(&dir) {
        Ok(a) => status.artefacts = a,
        Err(e) => return RunOutcome::Failed(format!("could not checksum the run's files: {e}")),
    }
    let _ = dir.log(&format!(
        "{} {}",
        state.as_str(),
        status.error.clone().unwrap_or_default()
    ));
    if let Err(e) = dir.write_status(&status) {
        return RunOutcome::Failed(format!("could not record status: {e}"));
    }
    outcome
}

/// A run folder whose files fail their recorded checksums (or whose status cannot be read)
/// is not resumed from: its files move to `corrupt-<time>/` and the run starts afresh.
fn set_aside_corrupt(dir: &RunDir) -> Result<()> {
    let bad = artefacts::folder_problems(dir, artefacts::Depth::Full);
    if bad.is_empty() {
        return Ok(());
    }
    let to = artefacts::quarantine(dir)?;
    dir.log(&format!(
        "set the run's files aside into {} and started afresh: {}",
        to.display(),
        bad.join("; ")
    ))
}

/// An analysis run: compare the experts of its source runs (nothing is trained).
fn analyse(spec: &RunSpec, device_name: &str, ctx: &RunContext, dir: &RunDir) -> Result<String> {
    let device = open_device(device_name)?;
    dir.log(&format!("start {} on {device_name}", spec.label()))?;
    let inputs = AnalysisInputs {
        experiment: &ctx.experiment,
        registry: &ctx.registry,
        data_dir: &ctx.data_dir,
        results_dir: &ctx.results_dir,
        device: &device,
    };
    let summary = similarity::run(spec, &inputs, dir)?;
    dir.log(&summary)?;
    Ok(summary)
}

/// Mean test accuracy over the run's tasks, for the progress line.
fn summarise(dir: &RunDir) -> Result<String> {
    let rows = read_metrics(&dir.metrics_path())?;
    let acc: Vec<f64> = rows
        .iter()
        .filter(|r| r.split == "test" && r.metric == "accuracy")
        .map(|r| r.value)
        .collect();
    if acc.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "test acc {:.1}%",
        100.0 * acc.iter().sum::<f64>() / acc.len() as f64
    ))
}

struct Hooks<'a> {
    experiment: String,
    spec: &'a RunSpec,
    dir: &'a RunDir,
    rows: Vec<MetricRow>,
    task_keys: Vec<String>,
    device_name: String,
    threads: u32,
    data_kind: String,
    started: Instant,
    /// Copied onto every metrics row.
    provenance: crate::util::provenance::Provenance,
    /// Where the reference throughput is measured, after every epoch (README "Nightly
    /// regression sweeps").
    device: candle_core::Device,
    sink: &'a dyn StepSink,
    /// Per-step task weights, kept for methods that balance gradients (equal weighting's
    /// are all 1 and are not written).
    weights: Option<Vec<WeightRow>>,
    claim: &'a Claim,
    checkpoints: CheckpointPolicy,
    /// Epochs the checkpoint on disk holds, and when it was written.
    checkpointed: u32,
    last_checkpoint: Instant,
}

impl FitHooks for Hooks<'_> {
    fn task_weights(&mut self, epoch: u32, step: u64, weights: &[(usize, f64)]) {
        if let Some(rows) = &mut self.weights {
            rows.extend(weights.iter().map(|&(t, w)| WeightRow {
                epoch: epoch + 1,
                step,
                task: self.task_keys[t].clone(),
                weight: w,
            }));
        }
    }

    fn epoch_done(
        &mut self,
        epoch: u32,
        values: Vec<EpochValue>,
        map: &VarMap,
        optim: &Optimizer,
        weighting: &dyn Weighting,
    ) -> Result<()> {
        self.ensure_claim_held()?;
        let wall = self.started.elapsed().as_secs_f64();
        let reference = EpochValue {
            task: None,
            split: crate::data::batch::SplitName::Train,
            metric: super::speed_reference::METRIC,
            // Right after the epoch, so that it sees the machine as busy as the epoch did.
            value: super::speed_reference::measure(&self.device)?,
        };
        for v in values.into_iter().chain(std::iter::once(reference)) {
            self.rows.push(MetricRow {
                experiment: self.experiment.clone(),
                run_id: self.spec.run_id(),
                stage: self.spec.stage.as_str().into(),
                method: self.spec.method.clone(),
                pretrain: self.spec.pretrain.clone(),
                downstream: self.spec.downstream.clone(),
                foundation: self.spec.foundation.clone(),
                task: v
                    .task
                    .map(|t| self.task_keys[t].clone())
                    .unwrap_or_else(|| "all".into()),
                seed: self.spec.seed,
                epoch: epoch + 1,
                split: v.split.as_str().into(),
                metric: v.metric.into(),
                value: v.value,
                profile: self.spec.profile.clone(),
                code_version: self.spec.code_version.clone(),
                data_kind: self.data_kind.clone(),
                device: self.device_name.clone(),
                threads: self.threads,
                wall_time_s: wall,
                provenance: self.provenance.clone(),
            });
        }
        let since = self.last_checkpoint.elapsed();
        let checkpoint = self
            .checkpoints
            .due(epoch + 1, self.spec.train.epochs, since)
            .then_some(Position {
                epochs_done: epoch + 1,
                steps: optim.steps,
                inside: None,
            });
        self.persist(true, checkpoint, map, optim, weighting)?;
        self.dir.log(&format!(
            "epoch {}/{} done after {:.1} s ({} optimiser steps)",
            epoch + 1,
            self.spec.train.epochs,
            wall,
            optim.steps
        ))?;
        Ok(())
    }

    fn step(&mut self, p: &StepProgress) {
        self.sink.step(p);
    }

    fn checkpoint_due(&mut self) -> bool {
        self.checkpoints
            .interval
            .is_some_and(|i| self.last_checkpoint.elapsed() >= i)
    }

    fn inside_epoch(
        &mut self,
        epoch: u32,
        tally: &EpochTally,
        map: &VarMap,
        optim: &Optimizer,
        weighting: &dyn Weighting,
    ) -> Result<()> {
        self.ensure_claim_held()?;
        let position = Position {
            epochs_done: epoch,
            steps: optim.steps,
            inside: Some(tally.clone()),
        };
        self.persist(false, Some(position), map, optim, weighting)?;
        self.dir.log(&format!(
            "checkpoint inside epoch {}/{} after step {} ({} optimiser steps)",
            epoch + 1,
            self.spec.train.epochs,
            tally.steps,
            optim.steps
        ))
    }
}

impl Hooks<'_> {
    fn ensure_claim_held(&self) -> Result<()> {
        if self.claim.is_lost() {
            return Err(Error::Failed(
                "another process took over this run's claim; stopped before writing epoch results"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Writes the metrics (when `metrics`), the task weights and the checkpoint (when
    /// given), then the status with the new files' checksums.
    fn persist(
        &mut self,
        metrics: bool,
        checkpoint: Option<Position>,
        map: &VarMap,
        optim: &Optimizer,
        weighting: &dyn Weighting,
    ) -> Result<()> {
        // The status says the files are being replaced, so that a kill in between does
        // not make the new ones look corrupt against the old checksums.
        let mut status = self.dir.read_status()?;
        if let Some(s) = &mut status {
            s.writing = true;
            self.dir.write_status(s)?;
        }
        // Metrics first, checkpoint second: on resume the checkpoint's position decides, and
        // rows past it are dropped, so the two can never disagree.
        if metrics {
            write_metrics(&self.dir.metrics_path(), &self.rows)?;
        }
        if let Some(rows) = &self.weights {
            write_task_weights(&self.dir.task_weights_path(), &self.spec.run_id(), rows)?;
        }
        if let Some(pos) = checkpoint {
            checkpoint::save(&self.dir.checkpoint_path(), map, optim, weighting, &pos)?;
            if pos.inside.is_none() {
                self.checkpointed = pos.epochs_done;
            }
            self.last_checkpoint = Instant::now();
        }
        // Keep `harness status` current while the run is going: the epochs a resumed run
        // would not redo.
        if let Some(mut status) = status {
            status.epochs_done = self.checkpointed;
            status.artefacts = artefacts::record(self.dir)?;
            status.writing = false;
            self.dir.write_status(&status)?;
        }
        Ok(())
    }
}

fn train(
    spec: &RunSpec,
    device_name: &str,
    ctx: &RunContext,
    dir: &RunDir,
    sink: &dyn StepSink,
    started: Instant,
    claim: &Claim,
) -> Result<FitOutcome> {
    let device = open_device(device_name)?;
    let data = source::load(&ctx.registry, &spec.data, &ctx.data_dir)?;
    let (task_idx, heads) = data.task_heads(&spec.tasks)?;
    let view = TaskView {
        dataset: &data,
        tasks: task_idx,
        normalize: spec.data.normalize,
    };
    let map = VarMap::new();
    let init_seed = SplitMix64::derive(spec.seed, "init", &[]).next_u64();
    let vb = SeededInit::var_builder(&map, init_seed, &device);
    let teacher = match &spec.teacher {
        Some(t) => Some(Arc::new(load_teacher(ctx, &t.run_id, &data, &device)?)),
        None => None,
    };
    let (model, mut weighting) = build_model(spec, &heads, teacher, vb)?;
    if let Some(w) = &spec.weights {
        load_backbone_weights(&map, w)?;
    }
    if let Some(source) = spec.transfer.as_ref().and_then(|t| t.source.as_ref()) {
        let start = transfer::start_weights(spec, &ctx.results_dir, &device)?;
        crate::method::expert_source::load_weights(&map, &start, source)?;
    }
    let params: Vec<_> = params_of(&map)
        .into_iter()
        .filter(|p| model.trainable(&p.name))
        .collect();
    let trainable: Vec<candle_core::Var> = params.iter().map(|p| p.var.clone()).collect();
    let shared: Vec<candle_core::Var> = params
        .iter()
        .filter(|p| p.name.starts_with("backbone."))
        .map(|p| p.var.clone())
        .collect();
    let mut optim = Optimizer::new(&spec.train.optim, params);

    let mut rows = Vec::new();
    let mut weight_rows = weighting.logs_weights().then(Vec::new);
    let mut start_epoch = 0;
    let mut resume_tally = None;
    if dir.checkpoint_path().exists() {
        let pos = checkpoint::load(
            &dir.checkpoint_path(),
            &map,
            &mut optim,
            weighting.as_mut(),
            &device,
        )?;
        start_epoch = pos.epochs_done.min(spec.train.epochs);
        if dir.metrics_path().exists() {
            rows = read_metrics(&dir.metrics_path())?;
            rows.retain(|r| r.epoch <= start_epoch);
        }
        if let (Some(w), true) = (&mut weight_rows, dir.task_weights_path().exists()) {
            *w = read_task_weights(&dir.task_weights_path())?;
            // Steps count from 1 over the whole run, so this also keeps the rows of the
            // steps an epoch resumed inside has done.
            w.retain(|r| r.step <= pos.steps);
        }
        match &pos.inside {
            Some(t) => dir.log(&format!(
                "resuming inside epoch {} after step {}",
                start_epoch + 1,
                t.steps
            ))?,
            None => dir.log(&format!("resuming after epoch {start_epoch}"))?,
        }
        if let Some(t) = &pos.inside {
            if t.loss_sum.len() != view.tasks.len() {
                return Err(Error::Failed(format!(
                    "{}: its epoch tallies are for {} tasks, the run has {}; delete the checkpoint to restart the run",
                    dir.checkpoint_path().display(),
                    t.loss_sum.len(),
                    view.tasks.len()
                )));
            }
        }
        resume_tally = pos.inside;
    } else {
        dir.log(&format!("start {} on {device_name}", spec.label()))?;
    }
    let mut hooks = Hooks {
        experiment: ctx.experiment.clone(),
        spec,
        dir,
        rows,
        task_keys: spec.tasks.clone(),
        device_name: device_name.to_string(),
        threads: ctx.threads,
        data_kind: spec.data.kind.as_str().to_string(),
        started,
        provenance: crate::util::provenance::current(),
        device: device.clone(),
        sink,
        weights: weight_rows,
        claim,
        checkpoints: ctx.checkpoints,
        checkpointed: start_epoch,
        last_checkpoint: Instant::now(),
    };
    if start_epoch >= spec.train.epochs {
        return Ok(FitOutcome::Done);
    }
    let seed = SplitMix64::derive(spec.seed, "batches", &[]).next_u64();
    fit(
        FitArgs {
            model: model.as_ref(),
            weighting: weighting.as_mut(),
            shared: &shared,
            params: &trainable,
            optim: &mut optim,
            map: &map,
            view: &view,
            cfg: &spec.train,
            seed,
            device: &device,
            start_epoch,
            resume_tally,
        },
        &mut hooks,
    )
}

/// The network of a run (its method's, or the foundation model's) and its weighting.
/// `teacher` is needed for training distilling runs only.
pub fn build_model(
    spec: &RunSpec,
    heads: &[(String, usize)],
    teacher: Option<Arc<Teacher>>,
    vb: candle_nn::VarBuilder,
) -> Result<(Box<dyn TaskModel>, Box<dyn Weighting>)> {
    let build = BuildContext {
        model: &spec.model,
        tasks: heads,
        options: &spec.options,
        teacher,
        seed: SplitMix64::derive(spec.seed, "kd-projection", &[]).next_u64(),
        frozen_backbone: spec.weights.is_some(),
    };
    Ok(match spec.stage {
        // The foundation model is a supervised multi-task network: MTL's architecture and
        // equal weighting, on the teacher's own architecture.
        Stage::Foundation => (
            method::require("mtl")?.build(&build, vb)?,
            Box::new(Equal) as Box<dyn Weighting>,
        ),
        Stage::Decompose => {
            let method = method::require(&spec.method)?;
            (
                method.build(&build, vb)?,
                method.weighting(&spec.options, heads.len()),
            )
        }
        Stage::Transfer => {
            let Some(t) = &spec.transfer else {
                return Err(Error::input(format!(
                    "transfer run {} has no `transfer` settings in its spec",
                    spec.run_id()
                )));
            };
            let [(_, classes)] = heads else {
                return Err(Error::input(format!(
                    "transfer run {} names {} tasks; it fine-tunes on one downstream set",
                    spec.run_id(),
                    heads.len()
                )));
            };
            // A KF expert brings its task network; a shared network, a foundation
            // backbone and a student from scratch are the plain student.
            let tsn = match (&t.expert, spec.method.as_str()) {
                (Some(_), m) if m != FOUNDATION_METHOD && m != SCRATCH_METHOD => {
                    method::require(m)?.expert_tsn(&spec.model)
                }
                _ => None,
            };
            let net = TransferNet::new(&spec.model, tsn.as_ref(), *classes, t.mode, vb)?;
            (
                Box::new(net) as Box<dyn TaskModel>,
                Box::new(Equal) as Box<dyn Weighting>,
            )
        }
        Stage::Analysis => {
            return Err(Error::input(format!(
                "analysis run {} trains no network; its experts come from its source runs",
                spec.run_id()
            )))
        }
    })
}

/// The frozen model of the finished foundation run `run_id`, trained on every task of
/// `data`.
pub fn load_teacher(
    ctx: &RunContext,
    run_id: &str,
    data: &crate::data::Dataset,
    device: &Device,
) -> Result<Teacher> {
    let tasks: Vec<(String, usize)> = data
        .tasks
        .iter()
        .map(|t| (t.key.clone(), t.num_classes))
        .collect();
    let dir = RunDir::new(&ctx.results_dir, run_id);
    if !dir.checkpoint_path().exists() {
        return Err(Error::Failed(format!(
            "foundation run {run_id} has no trained model yet; run the experiment's foundation stage first"
        )));
    }
    let spec = dir.read_spec()?;
    Teacher::load(
        &spec,
        &artefacts::verified_checkpoint(&dir)?,
        &tasks,
        device,
    )
}

/// Load pre-trained weights into the `backbone.*` variables of `map` (all or nothing).
fn load_backbone_weights(map: &VarMap, w: &WeightsRef) -> Result<()> {
    let backbone = VarMap::new();
    {
        let all = map.data().lock().expect("var map");
        let mut sub = backbone.data().lock().expect("var map");
        for (name, var) in all.iter() {
            if let Some(rest) = name.strip_prefix("backbone.") {
                // Same variable, shorter name: loading through `backbone` sets `map`'s.
                sub.insert(rest.to_string(), var.clone());
            }
        }
    }
    let renames: Vec<KeyRename> = w
        .rename
        .iter()
        .map(|(from, to)| KeyRename {
            from: from.clone(),
            to: to.clone(),
        })
        .collect();
    weights::load_into(
        &backbone,
        std::path::Path::new(&w.path),
        &renames,
        &w.ignore,
    )?;
    Ok(())
}
