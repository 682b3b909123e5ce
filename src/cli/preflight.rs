//! Before a real-data profile plans or runs: everything it needs from the user's disk (the
//! registry's files for each data set and task it uses, and every foundation model's
//! weights file), listed in one error with what to do, rather than the first missing file
//! alone. Synthetic profiles need nothing. Then, before any training, the weights files of
//! the runs still to do must read: a corrupt one is bad input now, not a failed run later.

use std::collections::BTreeSet;
use std::path::Path;

use candle_core::Device;

use crate::data::registry::{Registry, Role};
use crate::data::registry_render::{task_presence, Presence};
use crate::data::DataKind;
use crate::error::{Error, Result};
use crate::model::weights::read_tensors;
use crate::sched::dag::Plan;
use crate::spec::run::Stage;
use crate::spec::validate::Experiment;

/// Refuses a real-data profile with any input missing, listing all of them.
pub fn check_inputs(
    exp: &Experiment,
    profile: &str,
    registry: &Registry,
    data_dir: &Path,
) -> Result<()> {
    let Some(p) = exp.profiles.get(profile) else {
        return Ok(());
    };
    if p.data != DataKind::Real {
        return Ok(());
    }
    let mut missing = Vec::new();
    let transfer = exp.stages.contains(&Stage::Transfer);
    for entry in &registry.datasets {
        let tasks: Vec<_> = match entry.role {
            Role::Pretrain if exp.pretrain.contains(&entry.key) => entry.tasks.iter().collect(),
            Role::Downstream if transfer => entry
                .tasks
                .iter()
                .filter(|t| exp.downstream.contains(&t.key))
                .collect(),
            _ => continue,
        };
        for task in tasks {
            let path = data_dir.join(&task.path);
            match task_presence(entry, task, data_dir) {
                Presence::Present => {}
                Presence::Missing => missing.push(format!(
                    "data   {}/{}: {} ({})",
                    entry.key,
                    task.key,
                    path.display(),
                    task.format.describe()
                )),
                Presence::ChecksumMismatch { expected, actual } => missing.push(format!(
                    "data   {}/{}: {} has sha256 {actual}, the registry says {expected}",
                    entry.key,
                    task.key,
                    path.display()
                )),
            }
        }
    }
    for name in &exp.foundation {
        let Some(w) = p.foundations.get(name).and_then(|f| f.weights.as_ref()) else {
            continue;
        };
        if !Path::new(w).is_file() {
            missing.push(format!(
                "weights {name}: {w} (profile.{profile}.foundation.{name}.weights, relative to the working directory)"
            ));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: profile `{profile}` uses real data and {} of its inputs are missing:\n  {}\n\
         Place the data sets under the data root {} (see `harness datasets` for each file's place \
         and format) or point --data-dir / HARNESS_DATA_DIR at them; place the weights files at \
         the paths above (nothing is downloaded); or run the synthetic stand-ins with --profile smoke",
        exp.path.display(),
        missing.len(),
        missing.join("\n  "),
        data_dir.display()
    )))
}

/// Reads each distinct weights file that a run in `todo` loads, once, on the CPU: a file that
/// does not parse (cut short, not the format its extension says) is bad input naming it,
/// found before the first epoch instead of as a failed foundation run and skipped students.
pub fn check_weights_readable(plan: &Plan, todo: &[usize]) -> Result<()> {
    let mut read = BTreeSet::new();
    for &i in todo {
        if let Some(w) = &plan.nodes[i].spec.weights {
            if read.insert(w.path.as_str()) {
                read_tensors(Path::new(&w.path), &Device::Cpu)?;
            }
        }
    }
    Ok(())
}
