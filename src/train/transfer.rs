//! Starting a transfer run: the weights its network begins with, cut from the finished
//! source run's checkpoint by the source method's own rules ([`crate::method::Method`]'s
//! `export_expert` for a matching expert, the shared network otherwise), and loaded into
//! the new network by name. Every variable of the network but the new head must be covered,
//! so a source that does not fit the network is an error, never a silent partial start.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::method::transfer::HEAD;
use crate::method::{self, expert};
use crate::spec::run::{RunSpec, Stage};
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

/// The starting weights of transfer run `spec` (empty for a run from scratch): its
/// source's expert of `transfer.expert`, or the source's shared network.
pub fn start_weights(
    spec: &RunSpec,
    results_dir: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let Some(t) = &spec.transfer else {
        return Ok(BTreeMap::new());
    };
    let Some(source_id) = &t.source else {
        return Ok(BTreeMap::new());
    };
    let dir = RunDir::new(results_dir, source_id);
    if dir.effective_state()? != Some(State::Done) {
        return Err(Error::Failed(format!(
            "source run {source_id} is not finished; run its experiment's decomposition (or foundation) stage first"
        )));
    }
    let source = dir.read_spec()?;
    let map = checkpoint_vars(&dir.checkpoint_path(), device)?;
    let mut start = match (&t.expert, source.stage) {
        (Some(task), Stage::Decompose) => {
            let i = source.tasks.iter().position(|k| k == task).ok_or_else(|| {
                Error::input(format!(
                    "source run {source_id} has no task `{task}` (its tasks: {})",
                    source.tasks.join(", ")
                ))
            })?;
            method::require(&source.method)?.export_expert(
                &map,
                &source.tasks,
                i,
                &source.options,
            )?
        }
        (None, Stage::Decompose | Stage::Foundation) => expert::shared_backbone(&map),
        (expert, stage) => {
            return Err(Error::input(format!(
                "transfer from a {} run with expert {expert:?} is not defined",
                stage.as_str()
            )))
        }
    };
    // The pre-training task's head does not carry over: the downstream set has its own.
    start.retain(|name, _| !name.starts_with(&format!("{HEAD}.")));
    Ok(start)
}

/// Sets the variables of `map` from `start`; every variable but the new head must be
/// there, with its shape.
pub fn load_start(map: &VarMap, start: &BTreeMap<String, Tensor>, source: &str) -> Result<()> {
    let vars = map.data().lock().expect("var map");
    for (name, var) in vars.iter() {
        if name.starts_with(&format!("{HEAD}.")) {
            continue;
        }
        let t = start.get(name).ok_or_else(|| {
            Error::Failed(format!(
                "source run {source} has no `{name}` for the network to fine-tune (the source's architecture differs from the transfer run's)"
            ))
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Failed(format!(
                "source run {source}: `{name}` is {:?}, the network to fine-tune wants {:?}",
                t.dims(),
                var.dims()
            )));
        }
        var.set(t)?;
    }
    Ok(())
}
