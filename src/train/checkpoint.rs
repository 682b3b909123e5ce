//! Checkpoints in safetensors: every variable of the run (parameters and batch-norm
//! statistics, under their `VarBuilder` names), the optimiser state (`optim.*`) and the
//! training position (`meta.epoch`, `meta.steps`) and the weighting's state between steps
//! (`weighting.*`, MoCo-MTL's), written atomically after every epoch so a killed run resumes
//! from its last finished epoch exactly as if it had not stopped.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::method::weighting::Weighting;
use crate::train::optim::Optimizer;
use crate::util::fs::replace_atomically;

/// Where training stands according to a checkpoint.
pub struct Position {
    pub epochs_done: u32,
    pub steps: u64,
}

pub fn save(
    path: &Path,
    map: &VarMap,
    optim: &Optimizer,
    weighting: &dyn Weighting,
    pos: &Position,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in map.data().lock().expect("var map lock").iter() {
        tensors.insert(name.clone(), var.as_tensor().clone());
    }
    for (name, t) in optim.state().into_iter().chain(weighting.state()?) {
        tensors.insert(name, t);
    }
    let dev = Device::Cpu;
    tensors.insert("meta.epoch".into(), Tensor::new(&[pos.epochs_done], &dev)?);
    tensors.insert("meta.steps".into(), Tensor::new(&[pos.steps as f64], &dev)?);
    replace_atomically(path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other)
    })
}

/// Load a checkpoint into `map`, `optim` and `weighting`; returns the training position. A
/// checkpoint that cannot be read, or lacks what the run needs, is reported, not trusted.
pub fn load(
    path: &Path,
    map: &VarMap,
    optim: &mut Optimizer,
    weighting: &mut dyn Weighting,
    device: &Device,
) -> Result<Position> {
    let tensors = load_vars(path, map, device)?;
    let epochs_done = tensors
        .get("meta.epoch")
        .map(|t| t.to_vec1::<u32>().map(|v| v[0]))
        .transpose()?
        .unwrap_or(0);
    let steps = tensors
        .get("meta.steps")
        .map(|t| t.to_vec1::<f64>().map(|v| v[0] as u64))
        .transpose()?
        .unwrap_or(0);
    optim.load_state(|n| tensors.get(n).cloned(), steps);
    if epochs_done > 0 {
        weighting.load_state(&tensors).map_err(|why| {
            Error::Failed(format!(
                "{}: {why}; delete the checkpoint to restart the run",
                path.display()
            ))
        })?;
    }
    Ok(Position { epochs_done, steps })
}

/// Set every variable of `map` from a checkpoint; returns all of the checkpoint's tensors.
pub fn load_vars(path: &Path, map: &VarMap, device: &Device) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| {
        Error::Failed(format!(
            "{}: unreadable checkpoint ({e}); delete it to restart the run",
            path.display()
        ))
    })?;
    for (name, var) in map.data().lock().expect("var map lock").iter() {
        let t = tensors.get(name).ok_or_else(|| {
            Error::Failed(format!(
                "{}: checkpoint lacks variable `{name}`",
                path.display()
            ))
        })?;
        var.set(&t.to_dtype(DType::F32)?)?;
    }
    Ok(tensors)
}
