//! Checkpoints in safetensors: every variable of the run (parameters and batch-norm
//! statistics, under their `VarBuilder` names), the optimiser state (`optim.*`) and the
//! training position (`meta.epoch`, `meta.steps`), written atomically after every epoch so a
//! killed run resumes from its last finished epoch.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::train::optim::Optimizer;

/// Where training stands according to a checkpoint.
pub struct Position {
    pub epochs_done: u32,
    pub steps: u64,
}

pub fn save(path: &Path, map: &VarMap, optim: &Optimizer, pos: &Position) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in map.data().lock().expect("var map lock").iter() {
        tensors.insert(name.clone(), var.as_tensor().clone());
    }
    for (name, t) in optim.state() {
        tensors.insert(name, t);
    }
    let dev = Device::Cpu;
    tensors.insert("meta.epoch".into(), Tensor::new(&[pos.epochs_done], &dev)?);
    tensors.insert("meta.steps".into(), Tensor::new(&[pos.steps as f64], &dev)?);
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Load a checkpoint into `map` and `optim`; returns the training position. A checkpoint
/// that cannot be read is reported, not trusted.
pub fn load(path: &Path, map: &VarMap, optim: &mut Optimizer, device: &Device) -> Result<Position> {
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
