//! Grid expansion: experiment × profile → the list of [`RunSpec`]s to execute. The method
//! decides the granularity (STL: one run per task; MTL: one run for all tasks), seeds
//! multiply everything, and per-method overrides are applied here so that the run spec,
//! and therefore the run id, records the values actually used.

use std::path::Path;

use super::run::{RunSpec, Stage, TrainConfig};
use super::validate::Experiment;
use crate::data::registry::Registry;
use crate::data::source::data_spec;
use crate::error::{Error, Result};
use crate::method::{self, Granularity};
use crate::CODE_VERSION;

/// Expand an experiment under one profile into runs, in a stable order
/// (stage, pre-training set, method, seed, task).
pub fn expand(
    exp: &Experiment,
    profile_name: &str,
    registry: &Registry,
    data_dir: &Path,
) -> Result<Vec<RunSpec>> {
    let profile = exp.profiles.get(profile_name).ok_or_else(|| {
        Error::input(format!(
            "no profile `{profile_name}` in {}",
            exp.path.display()
        ))
    })?;
    let mut runs = Vec::new();
    for &stage in &exp.stages {
        match stage {
            Stage::Decompose => {
                for pretrain in &exp.pretrain {
                    let entry = registry
                        .dataset(pretrain)
                        .ok_or_else(|| Error::input(format!("unknown data set `{pretrain}`")))?;
                    let data = data_spec(registry, pretrain, profile, data_dir)?;
                    let all_tasks: Vec<String> =
                        entry.tasks.iter().map(|t| t.key.clone()).collect();
                    for m in &exp.methods {
                        let method = method::lookup(m).ok_or_else(|| {
                            Error::input(format!("method `{m}` is not implemented"))
                        })?;
                        let overrides = exp.method_overrides.get(m).cloned().unwrap_or_default();
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
                            Granularity::PerTask => {
                                all_tasks.iter().map(|t| vec![t.clone()]).collect()
                            }
                            Granularity::Joint => vec![all_tasks.clone()],
                        };
                        for &seed in &exp.seeds {
                            for tasks in &task_sets {
                                runs.push(RunSpec {
                                    experiment: exp.name.clone(),
                                    profile: profile_name.to_string(),
                                    stage,
                                    method: m.clone(),
                                    pretrain: pretrain.clone(),
                                    downstream: None,
                                    foundation: None,
                                    tasks: tasks.clone(),
                                    seed,
                                    data: data.clone(),
                                    model: profile.model.clone(),
                                    train: train.clone(),
                                    code_version: CODE_VERSION.to_string(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(runs)
}
