//! Which experiments a stored run belongs to, for reports. Run ids do not depend on the
//! experiment, so one run can serve several experiments (a decomposition that Table 3 reports
//! and Table 4 fine-tunes), while a metrics row's `experiment` column only names the
//! experiment that happened to train it. The manifests are what say which runs an experiment
//! uses, so every table is built from rows relabelled by them: a run listed by manifests
//! appears once per listing experiment, under that experiment's name; a run no manifest
//! lists (a store from before manifests) keeps its own `experiment` column.

use std::collections::BTreeSet;

use polars::prelude::*;

use crate::error::Result;
use crate::store::manifest::{membership, Manifest};

/// Column of the joined membership frame; dropped again before anyone sees it.
const MEMBER: &str = "__member_experiment";

/// `metrics` with its `experiment` column replaced by the manifests' experiments: rows of
/// a run listed by k experiments come out k times, one per experiment.
pub fn relabel(metrics: LazyFrame, manifests: &[Manifest]) -> Result<LazyFrame> {
    // A run listed under two profiles of one experiment (not possible today: the profile is
    // part of the run id) must still come out once for that experiment.
    let pairs: BTreeSet<(String, String)> = membership(manifests).into_iter().collect();
    if pairs.is_empty() {
        return Ok(metrics);
    }
    let (experiments, runs): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
    let members = DataFrame::new(
        runs.len(),
        vec![
            Column::new("run_id".into(), runs),
            Column::new(MEMBER.into(), experiments),
        ],
    )?
    .lazy();
    Ok(metrics
        .left_join(members, col("run_id"), col("run_id"))
        .with_column(
            when(col(MEMBER).is_not_null())
                .then(col(MEMBER))
                .otherwise(col("experiment"))
                .alias("experiment"),
        )
        .drop(cols([MEMBER])))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::report::{render_reports, Format, ReportOptions};
    use crate::store::manifest::write_manifest;
    use crate::store::metrics::{write_metrics, MetricRow};

    fn accuracy(experiment: &str, run_id: &str, method: &str, task: &str, v: f64) -> MetricRow {
        MetricRow {
            experiment: experiment.into(),
            run_id: run_id.into(),
            stage: "decompose".into(),
            method: method.into(),
            pretrain: "medmnist".into(),
            downstream: None,
            foundation: None,
            task: task.into(),
            seed: 0,
            epoch: 3,
            split: "test".into(),
            metric: "accuracy".into(),
            value: v,
            profile: "smoke".into(),
            code_version: "0.1.0+train.1".into(),
            data_kind: "real".into(),
            device: "cpu".into(),
            threads: 2,
            wall_time_s: 1.0,
            provenance: Default::default(),
        }
    }

    fn manifest(experiment: &str, runs: &[&str]) -> Manifest {
        Manifest {
            experiment: experiment.into(),
            profile: "smoke".into(),
            file: format!("experiments/{experiment}.toml"),
            description: String::new(),
            runs: runs.iter().map(|r| r.to_string()).collect(),
            downstream: Vec::new(),
            expert_for: BTreeMap::new(),
            reference: None,
        }
    }

    fn options(root: &Path, experiment: Option<&str>) -> ReportOptions {
        ReportOptions {
            results_dir: root.join("results"),
            reports_dir: root.join("reports"),
            experiment: experiment.map(str::to_owned),
            format: Format::Markdown,
            task_order: BTreeMap::new(),
            method_order: vec!["stl".into(), "mtl".into()],
            method_display: BTreeMap::from([
                ("stl".into(), "STL".into()),
                ("mtl".into(), "MTL".into()),
            ]),
        }
    }

    /// The MTL run `shared` was trained by table3 (its rows say so) and is listed by the
    /// manifests of both table3 and table4; the STL run `own` only by table3; the run
    /// `legacy` by no manifest, so it stays in the experiment its rows name (`old`).
    #[test]
    fn a_shared_run_shows_in_every_experiment_that_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        let write = |id: &str, rows: Vec<MetricRow>| {
            write_metrics(&results.join(id).join("metrics.parquet"), &rows).unwrap()
        };
        write(
            "shared",
            vec![accuracy("table3", "shared", "mtl", "colon", 0.61)],
        );
        write("own", vec![accuracy("table3", "own", "stl", "colon", 0.70)]);
        write(
            "legacy",
            vec![accuracy("old", "legacy", "stl", "colon", 0.50)],
        );
        write_manifest(&results, &manifest("table3", &["shared", "own"])).unwrap();
        write_manifest(&results, &manifest("table4", &["shared"])).unwrap();

        let md = render_reports(&options(dir.path(), None), None)
            .unwrap()
            .stdout;
        let section = |name: &str| {
            let at = md
                .find(&format!("## {name} ·"))
                .unwrap_or_else(|| panic!("no {name} table:\n{md}"));
            let rest = &md[at + 3..];
            rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
        };
        let (t3, t4, old) = (section("table3"), section("table4"), section("old"));
        assert!(
            t3.contains("| MTL | 61.00 |") && t3.contains("| STL | **70.00** |"),
            "{t3}"
        );
        assert!(t3.contains("· 2 runs ·"), "{t3}");
        assert!(
            t4.contains("| MTL | 61.00 |") && !t4.contains("STL"),
            "{t4}"
        );
        assert!(old.contains("| STL | 50.00 |"), "{old}");
        for e in ["table3", "table4", "old"] {
            assert!(dir
                .path()
                .join(format!("reports/{e}/decomposition.md"))
                .is_file());
        }

        // The experiment filter sees the manifests' names too.
        let only = render_reports(&options(dir.path(), Some("table4")), None)
            .unwrap()
            .stdout;
        assert!(
            only.contains("## table4 ·") && !only.contains("## table3 ·"),
            "{only}"
        );
    }
}
