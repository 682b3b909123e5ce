//! Grid expansion: experiment × profile → the list of [`RunSpec`]s to execute. The method
//! decides the granularity (STL: one run per task; MTL: one run for all tasks), seeds
//! multiply everything, and per-method overrides are applied here so that the run spec,
//! and therefore the run id, records the values actually used.
//!
//! Foundation models are trained (or loaded) once per (pre-training set, foundation), with
//! the experiment's first seed: seeds vary the decomposition, the teacher is a given, as in
//! the paper. A distilling method gets one set of runs per foundation model, each naming
//! its teacher's run id; the teacher's runs are planned even when the experiment lists
//! only the `decompose` stage, since those runs depend on them.
//!
//! The transfer stage fine-tunes, per downstream set of the grid, what each decomposition
//! run offers it ([`TransferRule`], supplement section C): STL-style students only where
//! their task is the set's matching expert (Table 1), MTL-style encoders always, KF and
//! LoRKD their matching expert or else their shared network (†); every foundation model of
//! the grid, once per seed (the pre-training baseline); and, with `[transfer] scratch`, the
//! student from random initialisation. Decomposition (and foundation) runs are planned
//! whenever the transfer stage is, since transfer runs start from them; so are they for the
//! analysis stage ([`super::analysis_plan`]).

use std::path::Path;

use super::run::{
    RunSpec, Stage, TeacherRef, TrainConfig, TransferRef, WeightsRef, FOUNDATION_METHOD,
    SCRATCH_METHOD,
};
use super::validate::{Experiment, Profile};
use crate::data::checksum::sha256_file;
use crate::data::registry::{Registry, Role};
use crate::data::source::data_spec;
use crate::error::{Error, Result};
use crate::spec::catalog::{Granularity, MethodCatalog, TransferRule};
use crate::CODE_VERSION;

/// Expand an experiment under one profile into runs, in a stable order
/// (stage, pre-training set, method, foundation, seed, task).
/// More runs than any table needs; a grid this large is a mistake (a seed range written
/// out by a script, say) and would spend minutes and gigabytes on planning alone.
pub const MAX_RUNS: usize = 20_000;

fn too_many_runs(exp: &Experiment) -> Error {
    Error::input(format!(
        "{}: the grid expands to more than {MAX_RUNS} runs ({} seeds × {} methods × {} pre-training sets × their tasks × {} downstream sets); split it into several experiment files or use fewer seeds",
        exp.path.display(),
        exp.seeds.len(),
        exp.methods.len(),
        exp.pretrain.len(),
        exp.downstream.len().max(1)
    ))
}

pub fn expand(
    exp: &Experiment,
    profile_name: &str,
    registry: &Registry,
    data_dir: &Path,
    catalog: &dyn MethodCatalog,
) -> Result<Vec<RunSpec>> {
    let profile = exp.profiles.get(profile_name).ok_or_else(|| {
        Error::input(format!(
            "no profile `{profile_name}` in {}",
            exp.path.display()
        ))
    })?;
    let distils = exp.methods.iter().any(|m| {
        profile
            .method_options
            .get(m)
            .is_some_and(|o| o.kd.is_some())
    });
    let transfer = exp.stages.contains(&Stage::Transfer);
    let analysis = exp.stages.contains(&Stage::Analysis);
    let decompose = exp.stages.contains(&Stage::Decompose) || transfer || analysis;
    let mut runs = Vec::new();
    for pretrain in &exp.pretrain {
        if exp.stages.contains(&Stage::Foundation) || (distils && decompose) || transfer {
            for name in &exp.foundation {
                runs.push(foundation_spec(
                    exp,
                    profile_name,
                    profile,
                    registry,
                    data_dir,
                    pretrain,
                    name,
                )?);
            }
        }
    }
    if !decompose {
        return Ok(runs);
    }
    for pretrain in &exp.pretrain {
        let entry = registry
            .dataset(pretrain)
            .ok_or_else(|| Error::input(format!("unknown data set `{pretrain}`")))?;
        let data = data_spec(registry, pretrain, &profile.data_settings(), data_dir)?;
        let all_tasks: Vec<String> = entry.tasks.iter().map(|t| t.key.clone()).collect();
        for m in &exp.methods {
            let method = catalog.require(m)?;
            let options = profile.method_options.get(m).copied().unwrap_or_default();
            let overrides = profile.method_overrides.get(m).cloned().unwrap_or_default();
            let mut optim = profile.optim.clone();
            if let Some(lr) = overrides.lr {
                optim.lr = lr;
            }
            if let Some(wd) = overrides.weight_decay {
                optim.weight_decay = wd;
            }
            let train = TrainConfig {
                epochs: overrides.epochs.unwrap_or(profile.epochs),
                batch_size: profile.batch_size,
                eval_batch_size: profile.eval_batch_size,
                optim,
            };
            let task_sets: Vec<Vec<String>> = match method.granularity() {
                Granularity::PerTask => all_tasks.iter().map(|t| vec![t.clone()]).collect(),
                Granularity::Joint => vec![all_tasks.clone()],
            };
            let teachers: Vec<Option<TeacherRef>> = if options.kd.is_some() {
                runs.iter()
                    .filter(|r| r.stage == Stage::Foundation && &r.pretrain == pretrain)
                    .map(|r| {
                        Some(TeacherRef {
                            name: r.foundation.clone().unwrap_or_default(),
                            run_id: r.run_id(),
                        })
                    })
                    .collect()
            } else {
                vec![None]
            };
            for teacher in &teachers {
                for &seed in &exp.seeds {
                    if runs.len() > MAX_RUNS {
                        return Err(too_many_runs(exp));
                    }
                    for tasks in &task_sets {
                        runs.push(RunSpec {
                            profile: profile_name.to_string(),
                            stage: Stage::Decompose,
                            method: m.clone(),
                            pretrain: pretrain.clone(),
                            downstream: None,
                            foundation: teacher.as_ref().map(|t| t.name.clone()),
                            tasks: tasks.clone(),
                            seed,
                            data: data.clone(),
                            model: profile.model.clone(),
                            train: train.clone(),
                            options,
                            teacher: teacher.clone(),
                            weights: None,
                            transfer: None,
                            analysis: None,
                            code_version: CODE_VERSION.to_string(),
                        });
                    }
                }
            }
        }
    }
    if runs.len() > MAX_RUNS {
        return Err(too_many_runs(exp));
    }
    if transfer {
        let planned = transfer_specs(
            exp,
            profile_name,
            profile,
            registry,
            data_dir,
            catalog,
            &runs,
        )?;
        runs.extend(planned);
    }
    if analysis {
        let planned =
            super::analysis_plan::analysis_specs(profile, catalog, &exp.analysis_protocols, &runs)?;
        runs.extend(planned);
    }
    if runs.len() > MAX_RUNS {
        return Err(too_many_runs(exp));
    }
    Ok(runs)
}

/// The transfer runs of every decomposition and foundation run of `runs`, downstream set by
/// downstream set, then the from-scratch baseline.
fn transfer_specs(
    exp: &Experiment,
    profile_name: &str,
    profile: &Profile,
    registry: &Registry,
    data_dir: &Path,
    catalog: &dyn MethodCatalog,
    runs: &[RunSpec],
) -> Result<Vec<RunSpec>> {
    let settings = &profile.transfer;
    let train = |optim| TrainConfig {
        epochs: settings.epochs,
        batch_size: profile.batch_size,
        eval_batch_size: profile.eval_batch_size,
        optim,
    };
    let mut out = Vec::new();
    for d in &exp.downstream {
        let set = registry
            .datasets
            .iter()
            .find(|e| e.role == Role::Downstream && e.tasks.iter().any(|t| &t.key == d))
            .ok_or_else(|| Error::input(format!("unknown downstream set `{d}`")))?;
        let data = data_spec(registry, &set.key, &profile.data_settings(), data_dir)?;
        // One transfer run: `from` is (source run, its expert) or `None` for the student
        // from scratch; everything else of the spec follows.
        let spec = |method: &str, source: Option<(&RunSpec, Option<String>)>, seed: u64| {
            let (pretrain, foundation, model, optim, from) = match source {
                Some((r, expert)) => (
                    r.pretrain.clone(),
                    r.foundation.clone(),
                    r.model.clone(),
                    settings.optim.clone(),
                    (Some(r.run_id()), expert),
                ),
                // The student trained on the downstream set alone, with the profile's own
                // optimiser (as decomposition runs train) for the transfer epochs.
                None => (
                    String::new(),
                    None,
                    profile.model.clone(),
                    profile.optim.clone(),
                    (None, None),
                ),
            };
            RunSpec {
                profile: profile_name.to_string(),
                stage: Stage::Transfer,
                method: method.to_string(),
                pretrain,
                downstream: Some(d.clone()),
                foundation,
                tasks: vec![d.clone()],
                seed,
                data: data.clone(),
                model,
                train: train(optim),
                options: Default::default(),
                teacher: None,
                weights: None,
                transfer: Some(TransferRef {
                    source: from.0,
                    expert: from.1,
                    mode: settings.mode,
                }),
                analysis: None,
                code_version: CODE_VERSION.to_string(),
            }
        };
        for r in runs.iter().filter(|r| r.stage == Stage::Decompose) {
            let matched = exp
                .expert_for
                .get(&r.pretrain)
                .and_then(|row| row.get(d))
                .cloned()
                .flatten();
            let expert = match (catalog.require(&r.method)?.transfer_rule(), matched) {
                (TransferRule::MatchingStudent, Some(t)) if r.tasks == [t.clone()] => Some(t),
                (TransferRule::MatchingStudent, _) => continue,
                (TransferRule::SharedEncoder, _) => None,
                (TransferRule::ExpertOrShared, m) => m,
            };
            out.push(spec(&r.method, Some((r, expert)), r.seed));
        }
        for f in runs.iter().filter(|r| r.stage == Stage::Foundation) {
            for &seed in &exp.seeds {
                out.push(spec(FOUNDATION_METHOD, Some((f, None)), seed));
            }
        }
        if exp.transfer_scratch {
            for &seed in &exp.seeds {
                out.push(spec(SCRATCH_METHOD, None, seed));
            }
        }
    }
    Ok(out)
}

/// The run that trains or loads foundation model `name` on `pretrain`.
fn foundation_spec(
    exp: &Experiment,
    profile_name: &str,
    profile: &Profile,
    registry: &Registry,
    data_dir: &Path,
    pretrain: &str,
    name: &str,
) -> Result<RunSpec> {
    let def = profile.foundations.get(name).ok_or_else(|| {
        Error::input(format!(
            "{}: foundation `{name}` is not defined for profile `{profile_name}`",
            exp.path.display()
        ))
    })?;
    let entry = registry
        .dataset(pretrain)
        .ok_or_else(|| Error::input(format!("unknown data set `{pretrain}`")))?;
    let weights = match &def.weights {
        Some(path) => {
            let file = Path::new(path);
            if !file.is_file() {
                return Err(Error::input(format!(
                    "{}: profile.{profile_name}.foundation.{name}.weights: `{path}` does not exist (paths are relative to the working directory; place the file there or fix the path)",
                    exp.path.display()
                )));
            }
            Some(WeightsRef {
                path: path.clone(),
                sha256: sha256_file(file)?,
                rename: def.rename.clone(),
                ignore: def.ignore.clone(),
            })
        }
        None => None,
    };
    let mut optim = profile.optim.clone();
    if let Some(lr) = def.lr {
        optim.lr = lr;
    }
    if let Some(name) = def.optimizer {
        optim.name = name;
    }
    if let Some(wd) = def.weight_decay {
        optim.weight_decay = wd;
    }
    Ok(RunSpec {
        profile: profile_name.to_string(),
        stage: Stage::Foundation,
        method: FOUNDATION_METHOD.to_string(),
        pretrain: pretrain.to_string(),
        downstream: None,
        foundation: Some(name.to_string()),
        tasks: entry.tasks.iter().map(|t| t.key.clone()).collect(),
        seed: exp.seeds[0],
        data: data_spec(registry, pretrain, &profile.data_settings(), data_dir)?,
        model: def.model.clone(),
        train: TrainConfig {
            epochs: def.epochs.unwrap_or(profile.epochs),
            batch_size: profile.batch_size,
            eval_batch_size: profile.eval_batch_size,
            optim,
        },
        options: Default::default(),
        teacher: None,
        weights,
        transfer: None,
        analysis: None,
        code_version: CODE_VERSION.to_string(),
    })
}
