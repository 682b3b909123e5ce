//! Checkpoints in safetensors: every variable of the run (parameters and batch-norm
//! statistics, under their `VarBuilder` names), the optimiser state (`optim.*`) and the
//! training position (`meta.epoch`, `meta.steps`) and the weighting's state between steps
//! (`weighting.*`, MoCo-MTL's), written atomically after every epoch so a killed run resumes
//! from its last finished epoch exactly as if it had not stopped. A checkpoint written inside
//! an epoch (`--checkpoint-interval`) also holds how far that epoch got and its running
//! tallies (`tally.*`), so the resumed epoch skips the steps done and ends with the same
//! train metrics, bit for bit.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::method::weighting::Weighting;
use crate::train::fit::EpochTally;
use crate::train::optim::Optimizer;
use crate::util::fs::replace_atomically;

/// Where training stands according to a checkpoint.
pub struct Position {
    pub epochs_done: u32,
    pub steps: u64,
    /// Where epoch `epochs_done + 1` stands, for a checkpoint written inside it.
    pub inside: Option<EpochTally>,
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
    if let Some(t) = &pos.inside {
        // Counts as f64: exact far beyond any epoch's sample count.
        let counts = |v: &[usize]| v.iter().map(|&c| c as f64).collect::<Vec<_>>();
        tensors.insert("tally.steps".into(), Tensor::new(&[t.steps as f64], &dev)?);
        tensors.insert(
            "tally.loss_sum".into(),
            Tensor::new(t.loss_sum.as_slice(), &dev)?,
        );
        tensors.insert(
            "tally.correct".into(),
            Tensor::new(counts(&t.correct), &dev)?,
        );
        tensors.insert("tally.seen".into(), Tensor::new(counts(&t.seen), &dev)?);
        tensors.insert(
            "tally.samples".into(),
            Tensor::new(&[t.samples as f64], &dev)?,
        );
        tensors.insert(
            "tally.train_secs".into(),
            Tensor::new(&[t.train_secs], &dev)?,
        );
    }
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
    let inside = read_tally(&tensors).map_err(|why| {
        Error::Failed(format!(
            "{}: {why}; delete the checkpoint to restart the run",
            path.display()
        ))
    })?;
    optim.load_state(|n| tensors.get(n).cloned(), steps);
    if epochs_done > 0 || inside.is_some() {
        weighting.load_state(&tensors).map_err(|why| {
            Error::Failed(format!(
                "{}: {why}; delete the checkpoint to restart the run",
                path.display()
            ))
        })?;
    }
    Ok(Position {
        epochs_done,
        steps,
        inside,
    })
}

/// The tallies of a checkpoint written inside an epoch; `None` for one written at an end.
fn read_tally(
    tensors: &HashMap<String, Tensor>,
) -> std::result::Result<Option<EpochTally>, String> {
    if !tensors.contains_key("tally.steps") {
        return Ok(None);
    }
    let vec = |name: &str| -> std::result::Result<Vec<f64>, String> {
        tensors
            .get(name)
            .ok_or_else(|| format!("`{name}` is missing"))?
            .to_vec1::<f64>()
            .map_err(|e| format!("`{name}` is unreadable ({e})"))
    };
    let scalar = |name: &str| -> std::result::Result<f64, String> {
        vec(name)?
            .first()
            .copied()
            .ok_or_else(|| format!("`{name}` is empty"))
    };
    let counts = |name: &str| -> std::result::Result<Vec<usize>, String> {
        Ok(vec(name)?.into_iter().map(|c| c as usize).collect())
    };
    let tally = EpochTally {
        steps: scalar("tally.steps")? as usize,
        loss_sum: vec("tally.loss_sum")?,
        correct: counts("tally.correct")?,
        seen: counts("tally.seen")?,
        samples: scalar("tally.samples")? as usize,
        train_secs: scalar("tally.train_secs")?,
    };
    let tasks = tally.loss_sum.len();
    if tally.correct.len() != tasks || tally.seen.len() != tasks {
        return Err("its epoch tallies disagree on the number of tasks".into());
    }
    Ok(Some(tally))
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
