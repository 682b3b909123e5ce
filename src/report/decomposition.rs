//! The decomposition table (paper Tables 3 and 4): test accuracy of every decomposition
//! method on every task of a pre-training set, one table per (experiment, pre-training set,
//! profile).
//!
//! Polars does the scanning, filtering and the "last epoch of every run and task" grouping,
//! lazily over all run folders; the small result is then laid out in Rust. Mean and spread
//! over seeds are computed in Rust by one function ([`Summary::of`]) because the `Avg`
//! column needs per-seed averages first, and the cells and `Avg` must agree on what a seed
//! is: runs that share a seed (e.g. STL trains one run per task) are pooled per seed.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use super::table::{ColumnHead, Row, Summary, Table, TableKey};
use super::ReportOptions;
use crate::error::{Error, Result};

/// Task key of run-level rows; they are not a task column.
const RUN_LEVEL_TASK: &str = "all";

/// The final test accuracy of one task in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: TableKey,
    pub method: String,
    pub run_id: String,
    pub seed: u64,
    pub task: String,
    /// Epoch of the row kept (the run's last epoch for this task).
    pub epoch: u32,
    /// Accuracy as a fraction (0..1).
    pub accuracy: f64,
    pub synthetic: bool,
}

/// Experiments present in the scanned metrics, sorted.
pub fn experiments(metrics: LazyFrame) -> Result<BTreeSet<String>> {
    let df = metrics
        .group_by([col("experiment")])
        .agg([col("run_id").count().alias("rows")])
        .collect()?;
    let names = df.column("experiment")?.str()?;
    Ok(names.iter().flatten().map(str::to_owned).collect())
}

/// Selects decomposition test accuracies and keeps, for each run and task, the row of the
/// last epoch. `experiment` restricts the scan when given.
pub fn load_samples(metrics: LazyFrame, experiment: Option<&str>) -> Result<Vec<Sample>> {
    let mut selected = metrics.filter(
        col("stage")
            .eq(lit("decompose"))
            .and(col("split").eq(lit("test")))
            .and(col("metric").eq(lit("accuracy")))
            .and(col("task").neq(lit(RUN_LEVEL_TASK))),
    );
    if let Some(name) = experiment {
        selected = selected.filter(col("experiment").eq(lit(name)));
    }
    let by_epoch = || SortMultipleOptions::default();
    let df = selected
        .group_by([
            col("experiment"),
            col("pretrain"),
            col("profile"),
            col("method"),
            col("run_id"),
            col("seed"),
            col("task"),
        ])
        .agg([
            col("epoch").max().alias("epoch"),
            col("value")
                .sort_by([col("epoch")], by_epoch())
                .last()
                .alias("value"),
            col("data_kind")
                .eq(lit("synthetic"))
                .any(true)
                .alias("synthetic"),
        ])
        .collect()?;

    let text = |name: &str| -> Result<Vec<String>> {
        Ok(df
            .column(name)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect())
    };
    let experiment = text("experiment")?;
    let pretrain = text("pretrain")?;
    let profile = text("profile")?;
    let method = text("method")?;
    let run_id = text("run_id")?;
    let task = text("task")?;
    let seed: Vec<Option<u64>> = df.column("seed")?.u64()?.iter().collect();
    let epoch: Vec<Option<u32>> = df.column("epoch")?.u32()?.iter().collect();
    let value: Vec<Option<f64>> = df.column("value")?.f64()?.iter().collect();
    let synthetic: Vec<Option<bool>> = df.column("synthetic")?.bool()?.iter().collect();

    let mut samples = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(seed), Some(epoch), Some(accuracy)) = (seed[i], epoch[i], value[i]) else {
            return Err(Error::input(format!(
                "run {}: a decomposition accuracy row for task `{}` has a null seed, epoch or \
                 value; its metrics.parquet is damaged, delete the run folder to re-run it",
                run_id[i], task[i]
            )));
        };
        samples.push(Sample {
            key: TableKey {
                experiment: experiment[i].clone(),
                pretrain: pretrain[i].clone(),
                profile: profile[i].clone(),
            },
            method: method[i].clone(),
            run_id: run_id[i].clone(),
            seed,
            task: task[i].clone(),
            epoch,
            accuracy,
            synthetic: synthetic[i].unwrap_or(false),
        });
    }
    Ok(samples)
}

/// Lays samples out as tables, one per (experiment, pre-training set, profile), in key order.
pub fn build_tables(samples: &[Sample], opts: &ReportOptions) -> Vec<Table> {
    let mut groups: BTreeMap<&TableKey, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups.entry(&s.key).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(key, group)| build_table(key, &group, opts))
        .collect()
}

fn build_table(key: &TableKey, samples: &[&Sample], opts: &ReportOptions) -> Table {
    let registry: &[(String, String)] = opts
        .task_order
        .get(&key.pretrain)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let tasks = order_tasks(samples.iter().map(|s| s.task.as_str()), registry);
    let methods = order_methods(
        samples.iter().map(|s| s.method.as_str()),
        &opts.method_order,
    );

    // method -> seed -> task -> accuracies (percent) of the runs with that seed.
    let mut values: BTreeMap<&str, BTreeMap<u64, BTreeMap<&str, Vec<f64>>>> = BTreeMap::new();
    for s in samples {
        values
            .entry(s.method.as_str())
            .or_default()
            .entry(s.seed)
            .or_default()
            .entry(s.task.as_str())
            .or_default()
            .push(100.0 * s.accuracy);
    }

    let rows = methods
        .iter()
        .map(|method| {
            let per_seed = &values[method.as_str()];
            let mut cells: Vec<Option<Summary>> = tasks
                .iter()
                .map(|(task, _)| {
                    let seed_means: Vec<f64> = per_seed
                        .values()
                        .filter_map(|by_task| by_task.get(task.as_str()))
                        .map(|runs| mean(runs))
                        .collect();
                    Summary::of(&seed_means)
                })
                .collect();
            // Avg: per seed, the mean over the table's tasks, only for seeds that have them all.
            let seed_avgs: Vec<f64> = per_seed
                .values()
                .filter(|by_task| tasks.iter().all(|(t, _)| by_task.contains_key(t.as_str())))
                .map(|by_task| {
                    let task_means: Vec<f64> = tasks
                        .iter()
                        .map(|(t, _)| mean(&by_task[t.as_str()]))
                        .collect();
                    mean(&task_means)
                })
                .collect();
            cells.push(Summary::of(&seed_avgs));
            Row {
                key: method.clone(),
                name: opts
                    .method_display
                    .get(method)
                    .cloned()
                    .unwrap_or_else(|| method.clone()),
                cells,
            }
        })
        .collect();

    let mut columns: Vec<ColumnHead> = tasks
        .into_iter()
        .map(|(key, name)| ColumnHead { key, name })
        .collect();
    columns.push(ColumnHead {
        key: "avg".into(),
        name: "Avg".into(),
    });

    Table {
        key: key.clone(),
        columns,
        rows,
        synthetic: samples.iter().any(|s| s.synthetic),
        seeds: samples.iter().map(|s| s.seed).collect(),
        runs: samples
            .iter()
            .map(|s| s.run_id.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        epochs: samples.iter().map(|s| s.epoch).collect(),
    }
}

/// Tasks present, as (key, display name): registry order first, unlisted tasks after it in
/// alphabetical order under their key.
fn order_tasks<'a>(
    present: impl Iterator<Item = &'a str>,
    registry: &[(String, String)],
) -> Vec<(String, String)> {
    let present: BTreeSet<&str> = present.collect();
    let mut ordered: Vec<(String, String)> = registry
        .iter()
        .filter(|(key, _)| present.contains(key.as_str()))
        .cloned()
        .collect();
    for task in present {
        if !registry.iter().any(|(key, _)| key == task) {
            ordered.push((task.to_owned(), task.to_owned()));
        }
    }
    ordered
}

/// Methods present: in the given order first, unknown methods after it alphabetically.
fn order_methods<'a>(present: impl Iterator<Item = &'a str>, order: &[String]) -> Vec<String> {
    let present: BTreeSet<&str> = present.collect();
    let mut ordered: Vec<String> = order
        .iter()
        .filter(|m| present.contains(m.as_str()))
        .cloned()
        .collect();
    for method in present {
        if !order.iter().any(|m| m == method) {
            ordered.push(method.to_owned());
        }
    }
    ordered
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_order_then_unknown_tasks() {
        let registry = vec![
            ("b".to_string(), "Bee".to_string()),
            ("a".to_string(), "Ay".to_string()),
            ("unused".to_string(), "Unused".to_string()),
        ];
        let got = order_tasks(["z", "a", "b", "c"].into_iter(), &registry);
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c", "z"]);
        assert_eq!(got[0].1, "Bee");
    }

    #[test]
    fn method_order_then_unknown_methods() {
        let order = vec!["stl".to_string(), "mtl".to_string(), "lorkd".to_string()];
        let got = order_methods(["zeta", "lorkd", "stl", "alpha"].into_iter(), &order);
        assert_eq!(got, ["stl", "lorkd", "alpha", "zeta"]);
    }
}
