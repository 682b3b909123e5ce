//! Cutting one task's expert out of a trained run: the plain student (`backbone.*`) and the
//! task's head (`head.weight`, `head.bias`), as a standalone network with exactly the
//! student's parameter count; or the run's shared network alone.
//!
//! For LoRKD every convolution with low-rank experts is merged, `W = W0 + (α/r)·reshape(B_t
//! A_t)`, and the factors are dropped: no extra parameters at inference, as in the paper.

use std::collections::BTreeMap;

use candle_core::Tensor;
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::spec::options::LowRankConfig;

/// Marks the low-rank factors of a convolution in variable names (`….lora_A.3`).
const LORA_A: &str = ".lora_A.";
const LORA_B: &str = ".lora_B.";

/// The key of local task `task` of a run.
pub fn task_key(tasks: &[String], task: usize) -> Result<&String> {
    tasks.get(task).ok_or_else(|| {
        Error::input(format!(
            "task index {task} out of range ({} tasks)",
            tasks.len()
        ))
    })
}

/// The shared network of a run: its plain student `backbone.*` without any task's
/// low-rank factors (LoRKD's `W0`, KF's CKN, an MTL encoder, a foundation backbone).
pub fn shared_backbone(map: &VarMap) -> BTreeMap<String, Tensor> {
    let vars = map.data().lock().expect("var map");
    vars.iter()
        .filter(|(name, _)| {
            name.starts_with("backbone.") && !name.contains(LORA_A) && !name.contains(LORA_B)
        })
        .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
        .collect()
}

/// The expert of local task `task` (of the run's `tasks`) from the run's variables.
pub fn backbone_and_head(
    map: &VarMap,
    tasks: &[String],
    task: usize,
    low_rank: Option<LowRankConfig>,
) -> Result<BTreeMap<String, Tensor>> {
    let key = task_key(tasks, task)?;
    let vars = map.data().lock().expect("var map");
    let mut out = BTreeMap::new();
    for (name, var) in vars.iter() {
        if name.contains(LORA_A) || name.contains(LORA_B) {
            continue;
        }
        if name.starts_with("backbone.") {
            let mut t = var.as_tensor().detach();
            if let (Some(lr), Some(layer)) = (low_rank, name.strip_suffix(".weight")) {
                let a = vars.get(&format!("{layer}{LORA_A}{task}"));
                let b = vars.get(&format!("{layer}{LORA_B}{task}"));
                if let (Some(a), Some(b)) = (a, b) {
                    let delta = (b.as_tensor().matmul(a.as_tensor())?
                        * (lr.alpha / lr.rank as f64))?
                        .reshape(t.shape())?;
                    t = (t + delta)?;
                }
            }
            out.insert(name.clone(), t);
        } else if let Some(rest) = name.strip_prefix(&format!("heads.{key}.")) {
            out.insert(format!("head.{rest}"), var.as_tensor().detach());
        }
    }
    if !out.contains_key("head.weight") {
        return Err(Error::Failed(format!(
            "the run has no head for task `{key}`"
        )));
    }
    Ok(out)
}
