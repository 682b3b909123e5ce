//! The network of one expert of a finished run, read from the run's checkpoint: its
//! matching task's expert (by the method's own `export_expert`) or its shared network,
//! without any head. Transfer runs start from it; analysis runs compare these networks.
//! Every variable the receiving network has (but its new head) must be covered, so a
//! source that does not fit is an error, never a silent partial load.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use super::transfer::HEAD;
use super::{expert, require};
use crate::error::{Error, Result};
use crate::spec::run::{RunSpec, Stage};
use crate::store::artefacts::verified_checkpoint;
use crate::store::run_dir::RunDir;
use crate::store::status::State;

/// The variables of a checkpoint (optimiser, weighting and position entries left out).
fn checkpoint_vars(path: &Path, device: &Device) -> Result<VarMap> {
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| {
        Error::Failed(format!(
            "{}: unreadable checkpoint ({e}); delete the source run's folder to re-run it",
            path.display()
        ))
    })?;
    let map = VarMap::new();
    {
        let mut data = map.data().lock().expect("var map");
        for (name, t) in tensors {
            if ["optim.", "meta.", "weighting."]
                .iter()
                .any(|p| name.starts_with(p))
            {
                continue;
            }
            data.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
        }
    }
    Ok(map)
}

/// A finished run of the store: its spec and its trained variables.
pub struct FinishedRun {
    pub run_id: String,
    pub spec: RunSpec,
    vars: VarMap,
}

impl FinishedRun {
    /// Run `run_id` of `results_dir`, which must have finished.
    pub fn open(results_dir: &Path, run_id: &str, device: &Device) -> Result<FinishedRun> {
        let dir = RunDir::new(results_dir, run_id);
        if dir.effective_state()? != Some(State::Done) {
            return Err(Error::Failed(format!(
                "source run {run_id} is not finished; run its experiment's decomposition (or foundation) stage first"
            )));
        }
        Ok(FinishedRun {
            run_id: run_id.to_string(),
            spec: dir.read_spec()?,
            vars: checkpoint_vars(&verified_checkpoint(&dir)?, device)?,
        })
    }

    /// The network of expert `task` (a task key of the run; `None`: the shared network),
    /// without any head.
    pub fn expert_weights(&self, task: Option<&str>) -> Result<BTreeMap<String, Tensor>> {
        let source = &self.spec;
        let mut weights = match (task, source.stage) {
            (Some(task), Stage::Decompose) => {
                let i = source.tasks.iter().position(|k| k == task).ok_or_else(|| {
                    Error::input(format!(
                        "source run {} has no task `{task}` (its tasks: {})",
                        self.run_id,
                        source.tasks.join(", ")
                    ))
                })?;
                require(&source.method)?.export_expert(
                    &self.vars,
                    &source.tasks,
                    i,
                    &source.options,
                )?
            }
            (None, Stage::Decompose | Stage::Foundation) => expert::shared_backbone(&self.vars),
            (task, stage) => {
                return Err(Error::input(format!(
                    "the expert {task:?} of a {} run is not defined",
                    stage.as_str()
                )))
            }
        };
        weights.retain(|name, _| !name.starts_with(&format!("{HEAD}.")));
        Ok(weights)
    }
}

/// Sets the variables of `map` from `weights`; every variable but the head must be there,
/// with its shape.
pub fn load_weights(map: &VarMap, weights: &BTreeMap<String, Tensor>, source: &str) -> Result<()> {
    let vars = map.data().lock().expect("var map");
    for (name, var) in vars.iter() {
        if name.starts_with(&format!("{HEAD}.")) {
            continue;
        }
        let t = weights.get(name).ok_or_else(|| {
            Error::Failed(format!(
                "source run {source} has no `{name}` for the network to load (the source's architecture differs from this run's)"
            ))
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Failed(format!(
                "source run {source}: `{name}` is {:?}, the network wants {:?}",
                t.dims(),
                var.dims()
            )));
        }
        var.set(t)?;
    }
    Ok(())
}
