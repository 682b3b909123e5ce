//! The decomposition table (paper Tables 3 and 4): test accuracy of every decomposition
//! method on every task of a pre-training set, one table per (experiment, pre-training set,
//! profile).
//!
//! Polars does the scanning, filtering and the "last epoch of every run and task" grouping,
//! lazily over all run folders; the small result is then laid out in Rust. Mean and spread
//! over seeds are computed in Rust by one function ([`Summary::of`]) because the `Avg`
//! column needs per-seed averages first, and the cells and `Avg` must agree on what a seed
//! is: runs that share a seed (e.g. STL trains one run per task) are pooled per seed.
//!
//! The selection ([`load_samples`], by stage) and the pooling of samples into cells
//! ([`pool`], [`cells`]) are shared with the transfer and comparison tables, so that a number
//! means the same thing in every table it appears in.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use super::table::{ColumnHead, Quantity, Row, RowKind, Summary, Table, TableKey};
use super::ReportOptions;
use crate::error::{Error, Result};
use crate::spec::reference::AVG;
use crate::spec::run::{Stage, FOUNDATION_METHOD, SCRATCH_METHOD};

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

/// Selects the test accuracies of runs of `stages` and keeps, for each run and task, the row
/// of the last epoch. `experiment` restricts the scan when given. A transfer row counts only
/// when it names its downstream set: that set is the column its number belongs to.
pub fn load_samples(
    metrics: LazyFrame,
    experiment: Option<&str>,
    stages: &[Stage],
) -> Result<Vec<Sample>> {
    let Some(stage) = stages
        .iter()
        .map(|s| {
            let of_stage = col("stage").eq(lit(s.as_str()));
            match s {
                Stage::Transfer => of_stage.and(col("downstream").is_not_null()),
                Stage::Foundation | Stage::Decompose | Stage::Analysis => of_stage,
            }
        })
        .reduce(|a, b| a.or(b))
    else {
        return Ok(Vec::new());
    };
    let mut selected = metrics.filter(
        stage
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
            any_synthetic(),
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
                "run {}: a test accuracy row for task `{}` has a null seed, epoch or value; its \
                 metrics.parquet is damaged, delete the run folder to re-run it",
                runs.run_id[i], task[i]
            )));
        };
        samples.push(runs.sample(i, seed, task[i].clone(), epoch, 100.0 * fraction));
    }
    Ok(samples)
}

/// The aggregation that tells, per group of metrics rows, whether any came from synthetic
/// data (the `synthetic` column [`RunColumns::read`] reads).
pub fn any_synthetic() -> Expr {
    col("data_kind")
        .eq(lit("synthetic"))
        .any(true)
        .alias("synthetic")
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
/// for distilled runs, and `foundation@NAME` for the teacher itself (and for the transfer
/// runs that fine-tune it), so runs distilled from different foundation models are never
/// pooled.
fn row_key(stage: &str, method: &str, foundation: &str) -> String {
    match (stage, foundation) {
        (_, "") => method.to_string(),
        ("foundation", name) => format!("{FOUNDATION_METHOD}@{name}"),
        (_, name) => format!("{method}@{name}"),
    }
}

/// A row key's method and teacher: `mtlkd@lvmmed` → (`mtlkd`, Some(`lvmmed`)).
pub(super) fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('@') {
        Some((m, t)) => (m, Some(t)),
        None => (key, None),
    }
}

/// Foundation models and the from-scratch baseline are shown for comparison only.
pub(super) fn row_kind(key: &str) -> RowKind {
    match split_key(key).0 {
        FOUNDATION_METHOD | SCRATCH_METHOD => RowKind::Reference,
        _ => RowKind::Measured,
    }
}

/// The method's display name (its key when unlisted).
pub(super) fn display(method: &str, opts: &ReportOptions) -> String {
    opts.method_display
        .get(method)
        .cloned()
        .unwrap_or_else(|| method.to_string())
}

/// The row's display name: `STL-KD ← resnet50` when several foundation models appear in
/// the table, `STL-KD` when there is one; the teacher as `Foundation model (resnet50)`, the
/// student trained on the downstream set alone as `From scratch`.
pub(super) fn row_name(key: &str, opts: &ReportOptions, teachers: usize) -> String {
    match split_key(key) {
        (FOUNDATION_METHOD, Some(name)) => format!("Foundation model ({name})"),
        (SCRATCH_METHOD, None) => "From scratch".to_owned(),
        (m, Some(name)) if teachers > 1 => format!("{} ← {name}", display(m, opts)),
        (m, _) => display(m, opts),
    }
}

/// The key a row shows: with one foundation model a method has one row, keyed by the
/// method alone.
pub(super) fn shown_key(key: &str, teachers: usize) -> String {
    match split_key(key) {
        (m, Some(_)) if teachers <= 1 && m != FOUNDATION_METHOD => m.to_string(),
        _ => key.to_string(),
    }
}

/// Number of distinct teachers among the row keys of `samples`.
pub(super) fn teachers(samples: &[&Sample]) -> usize {
    samples
        .iter()
        .filter_map(|s| split_key(&s.method).1)
        .collect::<BTreeSet<_>>()
        .len()
}

/// How a row's last column totals its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Per seed, the mean over every column, for seeds that have them all (`Avg` of the
    /// decomposition table: a method missing a task has no average).
    Mean,
    /// Per seed, the sum over every column, for seeds that have them all (`Sum` of weights).
    Sum,
    /// Per seed, the mean over the columns the row has in any seed, for seeds that have all
    /// of those (`Avg` of the transfer table, where STL-style rows have "–" by design).
    MeanOfPresent,
}

/// Per seed, per column, the values of the runs with that seed.
pub(super) type PerSeed<'a> = BTreeMap<u64, BTreeMap<&'a str, Vec<f64>>>;

/// Samples pooled per row key (runs that share a seed, such as STL's per-task runs, are
/// pooled per seed).
pub(super) fn pool<'a>(samples: &[&'a Sample]) -> BTreeMap<&'a str, PerSeed<'a>> {
    let mut values: BTreeMap<&str, PerSeed> = BTreeMap::new();
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
    values
}

/// A row's cells over `columns` (mean ± std over seeds of each seed's mean), then its
/// total, and the number of columns the total covers.
pub(super) fn cells(
    per_seed: &PerSeed,
    columns: &[(String, String)],
    total: Total,
) -> (Vec<Option<Summary>>, usize) {
    let mut cells: Vec<Option<Summary>> = columns
        .iter()
        .map(|(column, _)| {
            let seed_means: Vec<f64> = per_seed
                .values()
                .filter_map(|by_column| by_column.get(column.as_str()))
                .map(|runs| mean(runs))
                .collect();
            Summary::of(&seed_means)
        })
        .collect();
    let covered: Vec<&str> = match total {
        Total::Mean | Total::Sum => columns.iter().map(|(c, _)| c.as_str()).collect(),
        Total::MeanOfPresent => columns
            .iter()
            .zip(&cells)
            .filter(|(_, cell)| cell.is_some())
            .map(|((c, _), _)| c.as_str())
            .collect(),
    };
    let seed_totals: Vec<f64> = per_seed
        .values()
        .filter(|by_column| {
            !covered.is_empty() && covered.iter().all(|c| by_column.contains_key(c))
        })
        .map(|by_column| {
            let column_means: Vec<f64> = covered.iter().map(|c| mean(&by_column[c])).collect();
            match total {
                Total::Sum => column_means.iter().sum(),
                Total::Mean | Total::MeanOfPresent => mean(&column_means),
            }
        })
        .collect();
    cells.push(Summary::of(&seed_totals));
    (cells, covered.len())
}

/// The heading of a table's last column.
pub(super) fn total_head(total: Total) -> ColumnHead {
    match total {
        Total::Sum => ColumnHead {
            key: "sum".into(),
            name: "Sum".into(),
        },
        Total::Mean | Total::MeanOfPresent => ColumnHead {
            key: AVG.into(),
            name: "Avg".into(),
        },
    }
}

/// An empty table of `quantity` with the seeds, runs, epochs and data kind of `samples`.
pub(super) fn table_of(key: &TableKey, quantity: Quantity, samples: &[&Sample]) -> Table {
    let mut table = Table::new(key.clone(), quantity);
    table.synthetic = samples.iter().any(|s| s.synthetic);
    table.seeds = samples.iter().map(|s| s.seed).collect();
    table.runs = samples
        .iter()
        .map(|s| s.run_id.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    table.epochs = samples.iter().map(|s| s.epoch).collect();
    table
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
    let teachers = teachers(samples);
    let methods = order_methods(
        samples.iter().map(|s| s.method.as_str()),
        &opts.method_order,
    );
    let total = match quantity {
        Quantity::TaskWeight => Total::Sum,
        _ => Total::Mean,
    };
    let values = pool(samples);
    let mut table = table_of(key, quantity, samples);
    table.rows = methods
        .iter()
        .map(|method| {
            let (cells, _) = cells(&values[method.as_str()], &tasks, total);
            Row::new(
                shown_key(method, teachers),
                row_name(method, opts, teachers),
                cells,
                row_kind(method),
            )
        })
        .collect();
    table.columns = tasks
        .into_iter()
        .map(|(key, name)| ColumnHead { key, name })
        .collect();
    table.columns.push(total_head(total));
    table
}

/// Tasks present, as (key, display name): registry order first, unlisted tasks after it in
/// alphabetical order under their key.
pub(super) fn order_tasks<'a>(
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
/// unknown methods after them alphabetically, then foundation models, then the
/// from-scratch baseline.
pub(super) fn order_methods<'a>(
    present: impl Iterator<Item = &'a str>,
    order: &[String],
) -> Vec<String> {
    let present: BTreeSet<&str> = present.collect();
    let rank = |k: &str| {
        let m = split_key(k).0;
        match order.iter().position(|o| *o == m) {
            Some(i) => (0, i, String::new()),
            None if m == FOUNDATION_METHOD => (2, 0, String::new()),
            None if m == SCRATCH_METHOD => (3, 0, String::new()),
            None => (1, 0, m.to_string()),
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

pub(super) fn mean(values: &[f64]) -> f64 {
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
                "scratch",
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
                "foundation@r50",
                "scratch"
            ]
        );
    }
}
