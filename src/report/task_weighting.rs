//! The task-weights table: how each gradient-balancing method (MoCo-MTL's λ, Aligned-MTL's
//! α) weighted the tasks, from the `task_weights.parquet` its runs log at every step.
//!
//! A run's value for a task is the mean of its weights over the steps of the run's last
//! epoch (the balance the method settled on; the weights of the first steps say more about
//! the initialisation). Seeds are then pooled exactly as for accuracies, by the same
//! [`build_tables`](super::decomposition::build_tables), so the rows, columns and seed
//! counts of both tables agree. The last column is the total weight: 1 for MoCo-MTL's
//! simplex weights, the overall step scale for Aligned-MTL's.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::decomposition::{any_synthetic, RunColumns, Sample};
use crate::error::{Error, Result};
use crate::store::run_dir::RunDir;
use crate::store::task_weights::{read_task_weights, WeightRow};

/// A decomposition run that logged task weights, and its rows.
pub struct WeightRun {
    /// The run's table key, row key, seed and data kind (`task`, `epoch` and `value` unset).
    pub run: Sample,
    pub rows: Vec<WeightRow>,
}

/// Every decomposition run in `metrics` (restricted to `experiment` when given) that logged
/// task weights. Runs of equal weighting log none and give none.
pub fn load_weight_runs(
    results_dir: &Path,
    metrics: LazyFrame,
    experiment: Option<&str>,
) -> Result<Vec<WeightRun>> {
    let mut selected = metrics.filter(col("stage").eq(lit("decompose")));
    if let Some(name) = experiment {
        selected = selected.filter(col("experiment").eq(lit(name)));
    }
    let df = selected
        .group_by(RunColumns::NAMES.map(col))
        .agg([any_synthetic()])
        .collect()?;
    let runs = RunColumns::read(&df)?;

    let mut out = Vec::new();
    for i in 0..df.height() {
        let path = RunDir::new(results_dir, &runs.run_id[i]).task_weights_path();
        if !path.exists() {
            continue;
        }
        let Some(seed) = runs.seed[i] else {
            return Err(Error::input(format!(
                "run {}: its metrics.parquet has a null seed; delete the run folder to re-run it",
                runs.run_id[i]
            )));
        };
        out.push(WeightRun {
            run: runs.sample(i, seed, String::new(), 0, 0.0),
            rows: read_task_weights(&path)?,
        });
    }
    Ok(out)
}

/// One sample per (run, task) of `runs`: the mean weight over the steps of the run's last
/// epoch.
pub fn weight_samples(runs: &[WeightRun]) -> Vec<Sample> {
    let mut samples = Vec::new();
    for WeightRun { run, rows } in runs {
        let Some(last) = rows.iter().map(|r| r.epoch).max() else {
            continue;
        };
        let mut by_task: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.epoch == last) {
            let (sum, n) = by_task.entry(r.task.as_str()).or_default();
            *sum += r.weight;
            *n += 1;
        }
        for (task, (sum, n)) in by_task {
            samples.push(Sample {
                task: task.to_owned(),
                epoch: last,
                value: sum / n as f64,
                ..run.clone()
            });
        }
    }
    samples
}
