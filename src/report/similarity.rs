//! The CKA matrices of the experiments, for the figures: every analysis run of an
//! experiment's manifests, its `cka.parquet` read and averaged over seeds per (pre-training
//! set, method, foundation model, protocol, layer), tasks in registry order.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;
use crate::store::cka::{read_cka, CkaRow};
use crate::store::manifest::Manifest;
use crate::store::run_dir::RunDir;

/// One T×T task-similarity matrix (mean over seeds).
#[derive(Debug, Clone)]
pub struct CkaMatrix {
    pub experiment: String,
    pub profile: String,
    pub pretrain: String,
    pub method: String,
    pub foundation: Option<String>,
    pub protocol: String,
    pub layer: String,
    /// Task keys, rows and columns in this order.
    pub tasks: Vec<String>,
    /// `values[i][j]`: cell (task_i, task_j), mean over `seeds`.
    pub values: Vec<Vec<f64>>,
    pub n: u64,
    pub estimator: String,
    pub seeds: Vec<u64>,
    pub run_ids: Vec<String>,
    pub synthetic: bool,
}

impl CkaMatrix {
    /// Mean over the cells off the diagonal.
    pub fn mean_off_diagonal(&self) -> f64 {
        let t = self.tasks.len();
        let sum: f64 = (0..t)
            .flat_map(|i| (0..t).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| self.values[i][j])
            .sum();
        sum / (t * (t - 1)).max(1) as f64
    }
}

type MatrixKey = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
);

/// The matrices of every manifest (of `experiment` only, when given). `task_order` gives
/// each pre-training set's task keys in registry order; tasks it lacks go last.
pub fn load_matrices(
    results_dir: &Path,
    manifests: &[Manifest],
    experiment: Option<&str>,
    task_order: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<Vec<CkaMatrix>> {
    // key → (rows, run ids)
    let mut groups: BTreeMap<MatrixKey, (Vec<CkaRow>, Vec<String>)> = BTreeMap::new();
    for m in manifests
        .iter()
        .filter(|m| experiment.is_none_or(|e| e == m.experiment))
    {
        for run_id in &m.runs {
            let path = RunDir::new(results_dir, run_id).cka_path();
            if !path.is_file() {
                continue;
            }
            for r in read_cka(&path)? {
                let key = (
                    m.experiment.clone(),
                    m.profile.clone(),
                    r.pretrain.clone(),
                    r.method.clone(),
                    r.foundation.clone(),
                    r.protocol.clone(),
                    r.layer.clone(),
                );
                let entry = groups.entry(key).or_default();
                if !entry.1.contains(run_id) {
                    entry.1.push(run_id.clone());
                }
                entry.0.push(r);
            }
        }
    }
    let mut out = Vec::new();
    for ((experiment, profile, pretrain, method, foundation, protocol, layer), (rows, run_ids)) in
        groups
    {
        let registry_order: Vec<&str> = task_order
            .get(&pretrain)
            .map(|ts| ts.iter().map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        let mut tasks: Vec<String> = Vec::new();
        for r in &rows {
            if !tasks.contains(&r.task_i) {
                tasks.push(r.task_i.clone());
            }
        }
        tasks.sort_by_key(|t| {
            (
                registry_order
                    .iter()
                    .position(|k| k == t)
                    .unwrap_or(usize::MAX),
                t.clone(),
            )
        });
        let index = |k: &str| tasks.iter().position(|t| t == k);
        let t = tasks.len();
        let mut sums = vec![vec![0.0; t]; t];
        let mut counts = vec![vec![0usize; t]; t];
        let mut seeds: Vec<u64> = Vec::new();
        for r in &rows {
            if let (Some(i), Some(j)) = (index(&r.task_i), index(&r.task_j)) {
                sums[i][j] += r.value;
                counts[i][j] += 1;
            }
            if !seeds.contains(&r.seed) {
                seeds.push(r.seed);
            }
        }
        seeds.sort_unstable();
        let values = sums
            .iter()
            .zip(&counts)
            .map(|(s, c)| {
                s.iter()
                    .zip(c)
                    .map(|(v, &n)| if n > 0 { v / n as f64 } else { f64::NAN })
                    .collect()
            })
            .collect();
        out.push(CkaMatrix {
            experiment,
            profile,
            pretrain,
            method,
            foundation,
            protocol,
            layer,
            tasks,
            values,
            n: rows.iter().map(|r| r.n).min().unwrap_or(0),
            estimator: rows
                .first()
                .map(|r| r.estimator.clone())
                .unwrap_or_default(),
            seeds,
            run_ids,
            synthetic: rows.iter().any(|r| r.data_kind == "synthetic"),
        });
    }
    Ok(out)
}

/// Axis labels of `tasks`: the registry's display names, with the key's last part added
/// where a name repeats within the set (RadImageNet has three "Abdomen"s: CT, US, MR).
pub fn task_labels(tasks: &[String], names: &[(String, String)]) -> Vec<String> {
    let name = |k: &str| {
        names
            .iter()
            .find(|(key, _)| key == k)
            .map_or(k.to_string(), |(_, n)| n.clone())
    };
    let plain: Vec<String> = tasks.iter().map(|k| name(k)).collect();
    tasks
        .iter()
        .zip(&plain)
        .map(|(k, n)| {
            if plain.iter().filter(|m| *m == n).count() < 2 {
                return n.clone();
            }
            let suffix = k.rsplit('_').next().unwrap_or(k);
            let suffix = if suffix.len() <= 3 {
                suffix.to_uppercase()
            } else {
                suffix.to_string()
            };
            format!("{n} {suffix}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_get_their_key_suffix() {
        let names: Vec<(String, String)> = [
            ("lung_ct", "Lung"),
            ("abdomen_ct", "Abdomen"),
            ("abdomen_us", "Abdomen"),
            ("lung_shenzhen", "Lung2"),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
        let tasks: Vec<String> = names.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            task_labels(&tasks, &names),
            ["Lung", "Abdomen CT", "Abdomen US", "Lung2"]
        );
    }
}
