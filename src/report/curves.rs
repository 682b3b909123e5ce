//! Training curves of the decomposition (and foundation) runs: per run and epoch, the
//! training loss (each method's own objective) and the validation accuracy, each the mean
//! over the run's tasks; STL-style
//! methods' per-task runs of one seed are averaged the same way. The figure
//! ([`super::figure::curves`]) then shows mean ± std over seeds per method.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::decomposition::{any_synthetic, RunColumns, Sample};
use super::table::TableKey;
use crate::error::{Error, Result};

/// What a curve shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CurveQuantity {
    /// The training loss per task as the method optimises it (with its distillation and
    /// auxiliary terms).
    TrainLoss,
    /// Validation top-1 accuracy, percent.
    ValAccuracy,
}

impl CurveQuantity {
    pub const ALL: [CurveQuantity; 2] = [CurveQuantity::TrainLoss, CurveQuantity::ValAccuracy];

    fn split_metric(self) -> (&'static str, &'static str) {
        match self {
            CurveQuantity::TrainLoss => ("train", "loss"),
            CurveQuantity::ValAccuracy => ("val", "accuracy"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CurveQuantity::TrainLoss => "training loss (mean over tasks)",
            CurveQuantity::ValAccuracy => "validation accuracy % (mean over tasks)",
        }
    }
}

/// One method's curve of one quantity: per epoch, the per-seed values.
#[derive(Debug, Clone, Default)]
pub struct Curve {
    /// epoch → seed → value.
    pub by_epoch: BTreeMap<u32, BTreeMap<u64, f64>>,
}

impl Curve {
    /// Per epoch: (epoch, mean, std over seeds, number of seeds).
    pub fn summary(&self) -> Vec<(u32, f64, f64, usize)> {
        self.by_epoch
            .iter()
            .map(|(&e, seeds)| {
                let v: Vec<f64> = seeds.values().copied().collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let var = if v.len() > 1 {
                    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64
                } else {
                    0.0
                };
                (e, mean, var.sqrt(), v.len())
            })
            .collect()
    }
}

/// The curves of one table key: row key (method, `@teacher`) → quantity → curve.
pub type Curves = BTreeMap<String, BTreeMap<CurveQuantity, Curve>>;

/// The curves of every experiment (or of `experiment`), with whether any run behind them
/// used synthetic data.
pub fn load_curves(
    metrics: LazyFrame,
    experiment: Option<&str>,
) -> Result<BTreeMap<TableKey, (Curves, bool)>> {
    let wanted = CurveQuantity::ALL
        .iter()
        .map(|q| {
            let (split, metric) = q.split_metric();
            col("split")
                .eq(lit(split))
                .and(col("metric").eq(lit(metric)))
        })
        .reduce(|a, b| a.or(b))
        .expect("two quantities");
    let mut selected = metrics.filter(
        col("stage")
            .eq(lit("decompose"))
            .or(col("stage").eq(lit("foundation")))
            .and(col("task").neq(lit("all")))
            .and(wanted),
    );
    if let Some(name) = experiment {
        selected = selected.filter(col("experiment").eq(lit(name)));
    }
    let mut keys = RunColumns::NAMES.map(col).to_vec();
    keys.extend([col("epoch"), col("split")]);
    let df = selected
        .group_by(keys)
        .agg([col("value").mean().alias("value"), any_synthetic()])
        .collect()?;
    let runs = RunColumns::read(&df)?;
    let epoch: Vec<Option<u32>> = df.column("epoch")?.u32()?.iter().collect();
    let value: Vec<Option<f64>> = df.column("value")?.f64()?.iter().collect();
    let split: Vec<Option<&str>> = df.column("split")?.str()?.iter().collect();
    let synthetic: Vec<Option<bool>> = df.column("synthetic")?.bool()?.iter().collect();

    // (key, row, quantity, epoch, seed) → per-run values (STL: one per task's run).
    let mut pooled: BTreeMap<(TableKey, String, CurveQuantity, u32, u64), Vec<f64>> =
        BTreeMap::new();
    let mut any_synthetic: BTreeMap<TableKey, bool> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(seed), Some(e), Some(v), Some(s)) = (runs.seed[i], epoch[i], value[i], split[i])
        else {
            return Err(Error::input(format!(
                "run {}: a metrics row has a null seed, epoch, split or value; its metrics.parquet is damaged, delete the run folder to re-run it",
                runs.run_id[i]
            )));
        };
        let quantity = if s == "train" {
            CurveQuantity::TrainLoss
        } else {
            CurveQuantity::ValAccuracy
        };
        let scale = if quantity == CurveQuantity::ValAccuracy {
            100.0
        } else {
            1.0
        };
        let Sample { key, method, .. } = runs.sample(i, seed, String::new(), e, v);
        *any_synthetic.entry(key.clone()).or_default() |= synthetic[i].unwrap_or(false);
        pooled
            .entry((key, method, quantity, e, seed))
            .or_default()
            .push(v * scale);
    }
    let mut out: BTreeMap<TableKey, (Curves, bool)> = BTreeMap::new();
    for ((key, method, quantity, e, seed), values) in pooled {
        let synthetic = any_synthetic.get(&key).copied().unwrap_or(false);
        let entry = out.entry(key).or_insert_with(|| (Curves::new(), synthetic));
        entry
            .0
            .entry(method)
            .or_default()
            .entry(quantity)
            .or_default()
            .by_epoch
            .entry(e)
            .or_default()
            .insert(seed, values.iter().sum::<f64>() / values.len() as f64);
    }
    Ok(out)
}
