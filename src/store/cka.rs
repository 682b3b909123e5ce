//! `cka.parquet`: the task-similarity matrices of an analysis run, one row per cell
//! (task_i, task_j) of a protocol × layer, long format like the metrics, with what a
//! reader needs to interpret the number: the protocol, the layer, the sample count n, the
//! estimator and the data kind (synthetic numbers stay labelled as such).

use std::path::Path;

use polars::prelude::*;

use super::parquet::{not_ours, read_frame, write_frame};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct CkaRow {
    pub experiment: String,
    pub run_id: String,
    pub method: String,
    /// The teacher of a distilling method.
    pub foundation: Option<String>,
    pub pretrain: String,
    pub seed: u64,
    pub task_i: String,
    pub task_j: String,
    pub value: f64,
    pub protocol: String,
    /// `stage1` … `stageK`, or `final` (the penultimate features the heads read).
    pub layer: String,
    pub n: u64,
    pub estimator: String,
    pub data_kind: String,
    pub profile: String,
    pub code_version: String,
}

pub fn write_cka(path: &Path, rows: &[CkaRow]) -> Result<()> {
    let strs = |f: fn(&CkaRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let columns = vec![
        Column::new("experiment".into(), strs(|r| &r.experiment)),
        Column::new("run_id".into(), strs(|r| &r.run_id)),
        Column::new("method".into(), strs(|r| &r.method)),
        Column::new(
            "foundation".into(),
            rows.iter()
                .map(|r| r.foundation.as_deref())
                .collect::<Vec<Option<&str>>>(),
        ),
        Column::new("pretrain".into(), strs(|r| &r.pretrain)),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
        ),
        Column::new("task_i".into(), strs(|r| &r.task_i)),
        Column::new("task_j".into(), strs(|r| &r.task_j)),
        Column::new(
            "value".into(),
            rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
        ),
        Column::new("protocol".into(), strs(|r| &r.protocol)),
        Column::new("layer".into(), strs(|r| &r.layer)),
        Column::new("n".into(), rows.iter().map(|r| r.n).collect::<Vec<u64>>()),
        Column::new("estimator".into(), strs(|r| &r.estimator)),
        Column::new("data_kind".into(), strs(|r| &r.data_kind)),
        Column::new("profile".into(), strs(|r| &r.profile)),
        Column::new("code_version".into(), strs(|r| &r.code_version)),
    ];
    write_frame(path, DataFrame::new(rows.len(), columns)?)
}

pub fn read_cka(path: &Path) -> Result<Vec<CkaRow>> {
    let bad = |e: &dyn std::fmt::Display| not_ours(path, "CKA", e);
    let df = read_frame(path, "CKA")?;
    let text = |name: &str| {
        df.column(name)
            .and_then(|c| c.str().cloned())
            .map_err(|e| bad(&e))
    };
    let number = |name: &str| {
        df.column(name)
            .and_then(|c| c.u64().cloned())
            .map_err(|e| bad(&e))
    };
    let (experiment, run_id, method, foundation, pretrain) = (
        text("experiment")?,
        text("run_id")?,
        text("method")?,
        text("foundation")?,
        text("pretrain")?,
    );
    let (task_i, task_j, protocol, layer) = (
        text("task_i")?,
        text("task_j")?,
        text("protocol")?,
        text("layer")?,
    );
    let (estimator, data_kind, profile, code_version) = (
        text("estimator")?,
        text("data_kind")?,
        text("profile")?,
        text("code_version")?,
    );
    let (seed, n) = (number("seed")?, number("n")?);
    let value = df
        .column("value")
        .and_then(|c| c.f64().cloned())
        .map_err(|e| bad(&e))?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let need = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| bad(&format!("row {i} has a null value")))
        };
        out.push(CkaRow {
            experiment: need(experiment.get(i))?,
            run_id: need(run_id.get(i))?,
            method: need(method.get(i))?,
            foundation: foundation.get(i).map(str::to_string),
            pretrain: need(pretrain.get(i))?,
            seed: seed
                .get(i)
                .ok_or_else(|| bad(&format!("row {i}: no seed")))?,
            task_i: need(task_i.get(i))?,
            task_j: need(task_j.get(i))?,
            value: value
                .get(i)
                .ok_or_else(|| bad(&format!("row {i}: no value")))?,
            protocol: need(protocol.get(i))?,
            layer: need(layer.get(i))?,
            n: n.get(i).ok_or_else(|| bad(&format!("row {i}: no n")))?,
            estimator: need(estimator.get(i))?,
            data_kind: need(data_kind.get(i))?,
            profile: need(profile.get(i))?,
            code_version: need(code_version.get(i))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cka.parquet");
        let row = |j: &str, v: f64, f: Option<&str>| CkaRow {
            experiment: "cka".into(),
            run_id: "r".into(),
            method: "lorkd".into(),
            foundation: f.map(str::to_string),
            pretrain: "radimagenet".into(),
            seed: 0,
            task_i: "lung_ct".into(),
            task_j: j.into(),
            value: v,
            protocol: "cross-task".into(),
            layer: "final".into(),
            n: 200,
            estimator: "linear".into(),
            data_kind: "synthetic".into(),
            profile: "smoke".into(),
            code_version: "0+train.3".into(),
        };
        let rows = vec![
            row("lung_ct", 1.0, Some("resnet50")),
            row("brain_mr", 0.25, None),
        ];
        write_cka(&p, &rows).unwrap();
        assert_eq!(read_cka(&p).unwrap(), rows);
    }
}
