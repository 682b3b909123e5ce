//! `task_weights.parquet`: the weight a gradient-balancing method (MoCo-MTL, Aligned-MTL)
//! gave each task at every optimiser step, so reports can show how it balanced the tasks.
//! Columns: `run_id, epoch, step, task, weight`. Written with the metrics after every
//! epoch (write-to-temporary-then-rename); on resume, rows past the checkpoint are dropped.

use std::path::Path;

use polars::prelude::*;

use super::parquet::{not_ours, read_frame, write_frame};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct WeightRow {
    pub epoch: u32,
    pub step: u64,
    pub task: String,
    pub weight: f64,
}

pub fn write_task_weights(path: &Path, run_id: &str, rows: &[WeightRow]) -> Result<()> {
    let columns = vec![
        Column::new("run_id".into(), vec![run_id; rows.len()]),
        Column::new(
            "epoch".into(),
            rows.iter().map(|r| r.epoch).collect::<Vec<u32>>(),
        ),
        Column::new(
            "step".into(),
            rows.iter().map(|r| r.step).collect::<Vec<u64>>(),
        ),
        Column::new(
            "task".into(),
            rows.iter().map(|r| r.task.as_str()).collect::<Vec<&str>>(),
        ),
        Column::new(
            "weight".into(),
            rows.iter().map(|r| r.weight).collect::<Vec<f64>>(),
        ),
    ];
    write_frame(path, DataFrame::new(rows.len(), columns)?)
}

pub fn read_task_weights(path: &Path) -> Result<Vec<WeightRow>> {
    let bad = |e: &dyn std::fmt::Display| not_ours(path, "task-weights", e);
    let df = read_frame(path, "task-weights")?;
    let epoch = df
        .column("epoch")
        .and_then(|c| c.u32().cloned())
        .map_err(|e| bad(&e))?;
    let step = df
        .column("step")
        .and_then(|c| c.u64().cloned())
        .map_err(|e| bad(&e))?;
    let task = df
        .column("task")
        .and_then(|c| c.str().cloned())
        .map_err(|e| bad(&e))?;
    let weight = df
        .column("weight")
        .and_then(|c| c.f64().cloned())
        .map_err(|e| bad(&e))?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        match (epoch.get(i), step.get(i), task.get(i), weight.get(i)) {
            (Some(e), Some(s), Some(t), Some(w)) => out.push(WeightRow {
                epoch: e,
                step: s,
                task: t.to_string(),
                weight: w,
            }),
            _ => return Err(bad(&format!("row {i} has a null value"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.parquet");
        let rows = vec![
            WeightRow {
                epoch: 1,
                step: 1,
                task: "a".into(),
                weight: 0.25,
            },
            WeightRow {
                epoch: 1,
                step: 1,
                task: "b".into(),
                weight: -0.5,
            },
        ];
        write_task_weights(&p, "r", &rows).unwrap();
        assert_eq!(read_task_weights(&p).unwrap(), rows);
    }
}
