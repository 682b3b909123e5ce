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

use super::table::{ColumnHead, Quantity, Row, Summary, Table, TableKey};
use super::ReportOptions;
use crate::error::{Error, Result};

/// Task key of run-level rows; they are not a task column.
const RUN_LEVEL_TASK: &str = "all";

/// The final value of one task in one run: its test accuracy, or (for the task-weights
/// table) the weight its method gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: TableKey,
    pub method: String,
    pub run_id: String,
    pub seed: u64,
    pub task: String,
    /// Epoch of the row kept (the run's last epoch for this task).
    pub epoch: u32,
    /// In the unit shown: accuracy in percent, a task weight as it is.
    pub value: f64,
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
            .or(col("stage").eq(lit("foundation")))
            .and(col("split").eq(lit("test")))
            .and(col("metric").eq(lit("accuracy")))
            .and(col("task").neq(lit(RUN_LEVEL_TASK))),
    );
    if let Some(name) = experiment {
        selected = selected.filter(col("experiment").eq(lit(name)));
    }
    let by_epoch = || SortMultipleOptions::default();
    let mut keys = RunColumns::NAMES.map(col).to_vec();
    keys.push(col("task"));
    let df = selected
        .group_by(keys)
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

    let runs = RunColumns::read(&df)?;
    let task = strings(&df, "task")?;
    let epoch: Vec<Option<u32>> = df.column("epoch")?.u32()?.iter().collect();
    let value: Vec<Option<f64>> = df.column("value")?.f64()?.iter().collect();

    let mut samples = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(seed), Some(epoch), Some(fraction)) = (runs.seed[i], epoch[i], value[i]) else {
            return Err(Error::input(format!(
                "run {}: a decomposition accuracy row for task `{}` has a null seed, epoch or \
                 value; its metrics.parquet is damaged, delete the run folder to re-run it",
                runs.run_id[i], task[i]
            )));
        };
        samples.push(runs.sample(i, seed, task[i].clone(), epoch, 100.0 * fraction));
    }
    Ok(samples)
}

/// The run-describing columns of a grouped metrics frame (`experiment, pretrain, profile,
/// method, stage, foundation, run_id, seed` and the aggregated `synthetic`), row by row.
pub struct RunColumns {
    experiment: Vec<String>,
    pretrain: Vec<String>,
    profile: Vec<String>,
    method: Vec<String>,
    stage: Vec<String>,
    foundation: Vec<String>,
    pub run_id: Vec<String>,
    pub seed: Vec<Option<u64>>,
    synthetic: Vec<Option<bool>>,
}

impl RunColumns {
    /// The columns that describe a run (group by them to get one row per run).
    pub const NAMES: [&'static str; 8] = [
        "experiment",
        "pretrain",
        "profile",
        "method",
        "stage",
        "foundation",
        "run_id",
        "seed",
    ];

    pub fn read(df: &DataFrame) -> Result<Self> {
        Ok(RunColumns {
            experiment: strings(df, "experiment")?,
            pretrain: strings(df, "pretrain")?,
            profile: strings(df, "profile")?,
            method: strings(df, "method")?,
            stage: strings(df, "stage")?,
            foundation: strings(df, "foundation")?,
            run_id: strings(df, "run_id")?,
            seed: df.column("seed")?.u64()?.iter().collect(),
            synthetic: df.column("synthetic")?.bool()?.iter().collect(),
        })
    }

    /// The sample of row `i`'s run for `task`.
    pub fn sample(&self, i: usize, seed: u64, task: String, epoch: u32, value: f64) -> Sample {
        Sample {
            key: TableKey {
                experiment: self.experiment[i].clone(),
                pretrain: self.pretrain[i].clone(),
                profile: self.profile[i].clone(),
            },
            method: row_key(&self.stage[i], &self.method[i], &self.foundation[i]),
            run_id: self.run_id[i].clone(),
            seed,
            task,
            epoch,
            value,
            synthetic: self.synthetic[i].unwrap_or(false),
        }
    }
}

/// The row a run belongs to: its method, the method and its teacher (`stlkd@resnet50`)
/// for distilled runs, and `foundation@NAME` for the teacher itself, so runs distilled
/// from different foundation models are never pooled.
fn row_key(stage: &str, method: &str, foundation: &str) -> String {
    match (stage, foundation) {
        (_, "") => method.to_string(),
        ("foundation", name) => format!("{FOUNDATION_ROW}@{name}"),
        (_, name) => format!("{method}@{name}"),
    }
}

/// Row-key prefix of foundation models.
const FOUNDATION_ROW: &str = "foundation";

/// The row's display name: `STL-KD ← resnet50` when several foundation models appear in
/// the table, `STL-KD` when there is one; the teacher as `Foundation model (resnet50)`.
fn row_name(key: &str, opts: &ReportOptions, teachers: usize) -> String {
    let display = |m: &str| {
        opts.method_display
            .get(m)
            .cloned()
            .unwrap_or_else(|| m.to_string())
    };
    match key.split_once('@') {
        Some((FOUNDATION_ROW, name)) => format!("Foundation model ({name})"),
        Some((m, name)) if teachers > 1 => format!("{} ← {name}", display(m)),
        Some((m, _)) => display(m),
        None => display(key),
    }
}

/// Lays samples out as tables, one per (experiment, pre-training set, profile), in key order.
/// The last column is `Avg` (per seed, the mean over the tasks) for accuracies and `Sum` (per
/// seed, the total weight) for task weights.
pub fn build_tables(samples: &[Sample], opts: &ReportOptions, quantity: Quantity) -> Vec<Table> {
    let mut groups: BTreeMap<&TableKey, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups.entry(&s.key).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(key, group)| build_table(key, &group, opts, quantity))
        .collect()
}

fn build_table(
    key: &TableKey,
    samples: &[&Sample],
    opts: &ReportOptions,
    quantity: Quantity,
) -> Table {
    let registry: &[(String, String)] = opts
        .task_order
        .get(&key.pretrain)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let tasks = order_tasks(samples.iter().map(|s| s.task.as_str()), registry);
    let teachers = samples
        .iter()
        .filter_map(|s| s.method.split_once('@').map(|(_, t)| t))
        .collect::<BTreeSet<_>>()
        .len();
    let methods = order_methods(
        samples.iter().map(|s| s.method.as_str()),
        &opts.method_order,
    );

    // method -> seed -> task -> values of the runs with that seed.
    let mut values: BTreeMap<&str, BTreeMap<u64, BTreeMap<&str, Vec<f64>>>> = BTreeMap::new();
    for s in samples {
        values
            .entry(s.method.as_str())
            .or_default()
            .entry(s.seed)
            .or_default()
            .entry(s.task.as_str())
            .or_default()
            .push(s.value);
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
            // Avg (Sum): per seed, the mean (sum) over the table's tasks, only for seeds that
            // have them all.
            let seed_totals: Vec<f64> = per_seed
                .values()
                .filter(|by_task| tasks.iter().all(|(t, _)| by_task.contains_key(t.as_str())))
                .map(|by_task| {
                    let task_means: Vec<f64> = tasks
                        .iter()
                        .map(|(t, _)| mean(&by_task[t.as_str()]))
                        .collect();
                    match quantity {
                        Quantity::Accuracy => mean(&task_means),
                        Quantity::TaskWeight => task_means.iter().sum(),
                    }
                })
                .collect();
            cells.push(Summary::of(&seed_totals));
            // With one foundation model a method has one row: its key is the method's.
            let key = match method.split_once('@') {
                Some((m, _)) if teachers <= 1 && m != FOUNDATION_ROW => m.to_string(),
                _ => method.clone(),
            };
            Row {
                key,
                name: row_name(method, opts, teachers),
                cells,
                reference: method.starts_with(&format!("{FOUNDATION_ROW}@")),
            }
        })
        .collect();

    let mut columns: Vec<ColumnHead> = tasks
        .into_iter()
        .map(|(key, name)| ColumnHead { key, name })
        .collect();
    columns.push(match quantity {
        Quantity::Accuracy => ColumnHead {
            key: "avg".into(),
            name: "Avg".into(),
        },
        Quantity::TaskWeight => ColumnHead {
            key: "sum".into(),
            name: "Sum".into(),
        },
    });

    Table {
        key: key.clone(),
        quantity,
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

/// Rows present: methods in the given order first (each with its teachers in name order),
/// unknown methods after them alphabetically, foundation models last.
fn order_methods<'a>(present: impl Iterator<Item = &'a str>, order: &[String]) -> Vec<String> {
    let present: BTreeSet<&str> = present.collect();
    let method_of = |k: &str| k.split_once('@').map_or(k, |(m, _)| m).to_string();
    let rank = |k: &str| {
        let m = method_of(k);
        match order.iter().position(|o| *o == m) {
            Some(i) => (0, i, String::new()),
            None if m == FOUNDATION_ROW => (2, 0, String::new()),
            None => (1, 0, m),
        }
    };
    let mut ordered: Vec<String> = present.iter().map(|s| s.to_string()).collect();
    ordered.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    ordered
}

/// A string column as owned values (null as empty).
fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_owned())
        .collect())
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
        let got = order_methods(
            [
                "foundation@r50",
                "zeta",
                "lorkd@vit",
                "lorkd@r50",
                "stl",
                "alpha",
            ]
            .into_iter(),
            &order,
        );
        assert_eq!(
            got,
            [
                "stl",
                "lorkd@r50",
                "lorkd@vit",
                "alpha",
                "zeta",
                "foundation@r50"
            ]
        );
    }
}
