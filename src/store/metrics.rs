//! The long-format metrics log: one Parquet file per run, `results/<run_id>/metrics.parquet`,
//! with one row per (run, epoch, split, task, metric).
//!
//! Why long format: every run, whatever its method or stage, writes the same columns, so the
//! report can scan all runs lazily with one schema and pivot in whatever shape a paper table
//! needs. The run's identity (experiment, method, seed, profile, code version, data kind …) is
//! repeated on every row; Parquet's dictionary encoding makes that nearly free, and it means a
//! single row is self-describing (a report never needs `spec.json` to label a number).
//!
//! Column types on disk (the column names are the [`MetricRow`] field names):
//!
//! | column | polars / Parquet type |
//! |---|---|
//! | `experiment`, `run_id`, `stage`, `method`, `pretrain`, `task`, `split`, `metric`, `profile`, `code_version`, `data_kind`, `device` | `String` (not null) |
//! | `downstream`, `foundation` | `String` (nullable) |
//! | `seed` | `UInt64` |
//! | `epoch`, `threads` | `UInt32` |
//! | `value`, `wall_time_s` | `Float64` |
//! | `git_commit`, `git_state`, `candle`, `polars`, `features`, `host`, `cpu_model`, `instruction_set` | `String` (not null; [`Provenance`]) |
//!
//! The provenance columns came later: files written before them read as `"unrecorded"`
//! there (and scans get nulls), so old results folders stay readable.
//!
//! Unsigned types are kept as they are in Rust so that a round trip is exact and a seed of
//! `u64::MAX` survives.
//!
//! Writes are atomic ([`write_atomic`]: temporary file beside the target, fsync, rename), so a killed run never leaves a truncated
//! Parquet file behind for the report or a resume to trip over.

use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::parquet::{not_ours, read_frame, write_frame};
use crate::error::{Error, Result};
use crate::util::provenance::{Provenance, UNRECORDED};

/// File name of the metrics log inside a run folder.
pub const METRICS_FILE: &str = "metrics.parquet";

/// One row per (run, epoch, split, task, metric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub experiment: String,
    pub run_id: String,
    pub stage: String,
    pub method: String,
    pub pretrain: String,
    pub downstream: Option<String>,
    pub foundation: Option<String>,
    /// Task key, e.g. `"colon"`; `"all"` for run-level rows.
    pub task: String,
    pub seed: u64,
    pub epoch: u32,
    /// `"train"`, `"val"` or `"test"`.
    pub split: String,
    /// `"accuracy"` (a fraction in 0..1), `"loss"`, `"samples_per_s"`, …
    pub metric: String,
    pub value: f64,
    pub profile: String,
    pub code_version: String,
    /// `"real"` or `"synthetic"`.
    pub data_kind: String,
    pub device: String,
    pub threads: u32,
    /// Wall time in seconds since the run started, when the row was produced.
    pub wall_time_s: f64,
    /// The build and the machine that produced the row (one column per field).
    pub provenance: Provenance,
}

/// Writes `rows` to `path` as Parquet, atomically: the file is encoded in memory, written to
/// a temporary file beside `path`, synced and renamed over `path`. Missing parent folders are
/// created.
pub fn write_metrics(path: &Path, rows: &[MetricRow]) -> Result<()> {
    write_frame(path, to_frame(rows)?)
}

/// Reads a metrics file written by [`write_metrics`]. A file that is not valid Parquet or
/// lacks a column is bad input and the error names the file.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>> {
    let df = read_frame(path, "metrics")?;
    from_frame(&df).map_err(|e| not_ours(path, "metrics", &e))
}

/// Lazily concatenates `results/<run_id>/metrics.parquet` of every run folder (or only of the
/// given run ids, where `Some`). Run ids without a metrics file are skipped (they may not have
/// finished an epoch yet); no file at all is bad input.
pub fn scan_all(results_dir: &Path, run_ids: Option<&[String]>) -> Result<LazyFrame> {
    let paths = metrics_files(results_dir, run_ids)?;
    if paths.is_empty() {
        return Err(Error::input(format!(
            "no results in {}: no run folder has a {METRICS_FILE}; run `harness run FILE` first",
            results_dir.display()
        )));
    }
    let frames = paths
        .iter()
        .map(|p| {
            let pl_path = PlRefPath::try_from_path(p)?;
            LazyFrame::scan_parquet(pl_path, ScanArgsParquet::default())
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    // Diagonal union: a file written by an older code version that lacks a newer column gets
    // nulls there instead of failing the whole report.
    let args = UnionArgs {
        diagonal: true,
        to_supertypes: true,
        ..UnionArgs::default()
    };
    Ok(concat(frames, args)?)
}

/// The metrics files to scan, sorted so that scans are deterministic.
fn metrics_files(results_dir: &Path, run_ids: Option<&[String]>) -> Result<Vec<PathBuf>> {
    let mut paths = match run_ids {
        Some(ids) => ids
            .iter()
            .map(|id| results_dir.join(id).join(METRICS_FILE))
            .filter(|p| p.is_file())
            .collect::<Vec<_>>(),
        None => {
            if !results_dir.is_dir() {
                return Ok(Vec::new());
            }
            let entries = fs::read_dir(results_dir).map_err(|e| Error::io(results_dir, e))?;
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(results_dir, e))?;
                let candidate = entry.path().join(METRICS_FILE);
                if candidate.is_file() {
                    found.push(candidate);
                }
            }
            found
        }
    };
    paths.sort();
    paths.dedup();
    Ok(paths)
}

fn to_frame(rows: &[MetricRow]) -> Result<DataFrame> {
    fn text(name: &str, rows: &[MetricRow], get: impl Fn(&MetricRow) -> &str) -> Column {
        Column::new(name.into(), rows.iter().map(get).collect::<Vec<&str>>())
    }
    fn opt_text(
        name: &str,
        rows: &[MetricRow],
        get: impl Fn(&MetricRow) -> Option<&str>,
    ) -> Column {
        Column::new(
            name.into(),
            rows.iter().map(get).collect::<Vec<Option<&str>>>(),
        )
    }
    let mut columns = vec![
        text("experiment", rows, |r| &r.experiment),
        text("run_id", rows, |r| &r.run_id),
        text("stage", rows, |r| &r.stage),
        text("method", rows, |r| &r.method),
        text("pretrain", rows, |r| &r.pretrain),
        opt_text("downstream", rows, |r| r.downstream.as_deref()),
        opt_text("foundation", rows, |r| r.foundation.as_deref()),
        text("task", rows, |r| &r.task),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
        ),
        Column::new(
            "epoch".into(),
            rows.iter().map(|r| r.epoch).collect::<Vec<u32>>(),
        ),
        text("split", rows, |r| &r.split),
        text("metric", rows, |r| &r.metric),
        Column::new(
            "value".into(),
            rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
        ),
        text("profile", rows, |r| &r.profile),
        text("code_version", rows, |r| &r.code_version),
        text("data_kind", rows, |r| &r.data_kind),
        text("device", rows, |r| &r.device),
        Column::new(
            "threads".into(),
            rows.iter().map(|r| r.threads).collect::<Vec<u32>>(),
        ),
        Column::new(
            "wall_time_s".into(),
            rows.iter().map(|r| r.wall_time_s).collect::<Vec<f64>>(),
        ),
    ];
    for (i, name) in Provenance::COLUMNS.iter().enumerate() {
        columns.push(text(name, rows, |r| r.provenance.fields()[i]));
    }
    Ok(DataFrame::new(rows.len(), columns)?)
}

/// Rebuilds rows from a frame with the columns [`to_frame`] writes. Errors are returned as
/// text so the caller can name the file.
fn from_frame(df: &DataFrame) -> std::result::Result<Vec<MetricRow>, String> {
    let text = |name: &str| -> std::result::Result<Vec<Option<String>>, String> {
        let col = df
            .column(name)
            .map_err(|_| format!("missing column `{name}`"))?;
        let ca = col
            .str()
            .map_err(|_| format!("column `{name}` is {} instead of String", col.dtype()))?;
        Ok(ca.iter().map(|v| v.map(str::to_owned)).collect())
    };
    let required = |name: &str| -> std::result::Result<Vec<String>, String> {
        text(name)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| format!("column `{name}` is null in row {i}")))
            .collect()
    };
    fn numbers<T: Copy>(name: &str, values: Vec<Option<T>>) -> std::result::Result<Vec<T>, String> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| format!("column `{name}` is null in row {i}")))
            .collect()
    }
    let column = |name: &str| {
        df.column(name)
            .map_err(|_| format!("missing column `{name}`"))
    };
    let wrong = |name: &str, col: &Column, want: &str| {
        format!("column `{name}` is {} instead of {want}", col.dtype())
    };
    let u64s = |name: &str| -> std::result::Result<Vec<u64>, String> {
        let col = column(name)?;
        let ca = col.u64().map_err(|_| wrong(name, col, "UInt64"))?;
        numbers(name, ca.iter().collect())
    };
    let u32s = |name: &str| -> std::result::Result<Vec<u32>, String> {
        let col = column(name)?;
        let ca = col.u32().map_err(|_| wrong(name, col, "UInt32"))?;
        numbers(name, ca.iter().collect())
    };
    let f64s = |name: &str| -> std::result::Result<Vec<f64>, String> {
        let col = column(name)?;
        let ca = col.f64().map_err(|_| wrong(name, col, "Float64"))?;
        numbers(name, ca.iter().collect())
    };

    let mut experiment = required("experiment")?;
    let mut run_id = required("run_id")?;
    let mut stage = required("stage")?;
    let mut method = required("method")?;
    let mut pretrain = required("pretrain")?;
    let mut downstream = text("downstream")?;
    let mut foundation = text("foundation")?;
    let mut task = required("task")?;
    let seed = u64s("seed")?;
    let epoch = u32s("epoch")?;
    let mut split = required("split")?;
    let mut metric = required("metric")?;
    let value = f64s("value")?;
    let mut profile = required("profile")?;
    let mut code_version = required("code_version")?;
    let mut data_kind = required("data_kind")?;
    let mut device = required("device")?;
    let threads = u32s("threads")?;
    let wall_time_s = f64s("wall_time_s")?;
    // Absent in files written before provenance was recorded.
    let mut provenance: Vec<Vec<String>> = Provenance::COLUMNS
        .iter()
        .map(|name| match df.column(name) {
            Err(_) => Ok(vec![UNRECORDED.to_string(); df.height()]),
            Ok(_) => Ok(text(name)?
                .into_iter()
                .map(|v| v.unwrap_or_else(|| UNRECORDED.to_string()))
                .collect()),
        })
        .collect::<std::result::Result<_, String>>()?;

    let take = std::mem::take::<String>;
    let rows = (0..df.height())
        .map(|i| MetricRow {
            experiment: take(&mut experiment[i]),
            run_id: take(&mut run_id[i]),
            stage: take(&mut stage[i]),
            method: take(&mut method[i]),
            pretrain: take(&mut pretrain[i]),
            downstream: downstream[i].take(),
            foundation: foundation[i].take(),
            task: take(&mut task[i]),
            seed: seed[i],
            epoch: epoch[i],
            split: take(&mut split[i]),
            metric: take(&mut metric[i]),
            value: value[i],
            profile: take(&mut profile[i]),
            code_version: take(&mut code_version[i]),
            data_kind: take(&mut data_kind[i]),
            device: take(&mut device[i]),
            threads: threads[i],
            wall_time_s: wall_time_s[i],
            provenance: Provenance::from_fields(std::array::from_fn(|c| {
                take(&mut provenance[c][i])
            })),
        })
        .collect();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_rows() -> Vec<MetricRow> {
        let mut rows = Vec::new();
        for (seed, method) in [(0u64, "stl"), (u64::MAX, "lorkd")] {
            for epoch in 1..=2u32 {
                for task in ["colon", "all"] {
                    rows.push(MetricRow {
                        experiment: "table3".into(),
                        run_id: format!("run-{method}"),
                        stage: "decompose".into(),
                        method: method.into(),
                        pretrain: "medmnist".into(),
                        downstream: (method == "lorkd").then(|| "covid".to_string()),
                        foundation: None,
                        task: task.into(),
                        seed,
                        epoch,
                        split: "test".into(),
                        metric: "accuracy".into(),
                        value: 0.1 * f64::from(epoch) + 1e-17,
                        profile: "smoke".into(),
                        code_version: "0.1.0+train.1".into(),
                        data_kind: "synthetic".into(),
                        device: "cpu".into(),
                        threads: 2,
                        wall_time_s: 12.25 * f64::from(epoch),
                        provenance: crate::util::provenance::current(),
                    });
                }
            }
        }
        rows
    }

    #[test]
    fn round_trip_is_exact_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results/run-a").join(METRICS_FILE);
        let rows = sample_rows();
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);

        // Overwriting replaces the file and leaves only it in the run folder.
        write_metrics(&path, &rows[..3]).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows[..3].to_vec());
        let names: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [METRICS_FILE]);
    }

    #[test]
    fn empty_log_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        write_metrics(&path, &[]).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), Vec::<MetricRow>::new());
    }

    #[test]
    fn column_types_are_documented_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        write_metrics(&path, &sample_rows()).unwrap();
        let df = ParquetReader::new(fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        let dtype = |name: &str| df.column(name).unwrap().dtype().clone();
        assert_eq!(dtype("seed"), DataType::UInt64);
        assert_eq!(dtype("epoch"), DataType::UInt32);
        assert_eq!(dtype("threads"), DataType::UInt32);
        assert_eq!(dtype("value"), DataType::Float64);
        assert_eq!(dtype("wall_time_s"), DataType::Float64);
        assert_eq!(dtype("downstream"), DataType::String);
        assert_eq!(dtype("instruction_set"), DataType::String);
        assert_eq!(df.width(), 27);
    }

    #[test]
    fn files_from_before_provenance_read_as_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old").join(METRICS_FILE);
        let new = dir.path().join("new").join(METRICS_FILE);
        let rows = sample_rows();
        let frame = to_frame(&rows).unwrap().drop_many(Provenance::COLUMNS);
        write_frame(&old, frame).unwrap();
        write_metrics(&new, &rows).unwrap();
        let read = read_metrics(&old).unwrap();
        assert_eq!(read.len(), rows.len());
        assert!(read.iter().all(|r| r.provenance == Provenance::default()));
        // A scan over old and new files together keeps every row.
        let all = scan_all(dir.path(), None).unwrap().collect().unwrap();
        assert_eq!(all.height(), 2 * rows.len());
        assert_eq!(all.column("git_commit").unwrap().null_count(), rows.len());
    }

    #[test]
    fn corrupt_file_is_bad_input_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        fs::write(&path, b"PAR1 this is not parquet").unwrap();
        let err = read_metrics(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn scan_all_concatenates_selected_runs() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        let rows = sample_rows();
        write_metrics(&results.join("a").join(METRICS_FILE), &rows[..4]).unwrap();
        write_metrics(&results.join("b").join(METRICS_FILE), &rows[4..]).unwrap();
        // A folder without metrics (a run that has not finished an epoch) is skipped.
        fs::create_dir_all(results.join("c")).unwrap();

        let height = |lf: LazyFrame| lf.collect().unwrap().height();
        assert_eq!(height(scan_all(&results, None).unwrap()), rows.len());
        let only_b = ["b".to_string(), "c".to_string()];
        assert_eq!(
            height(scan_all(&results, Some(&only_b)).unwrap()),
            rows.len() - 4
        );
    }

    #[test]
    fn scan_all_without_files_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        for results in [dir.path().to_path_buf(), dir.path().join("missing")] {
            let Err(err) = scan_all(&results, None) else {
                panic!("scan of {} should fail", results.display());
            };
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string().contains("run `harness run FILE` first"),
                "{err}"
            );
        }
        let Err(err) = scan_all(dir.path(), Some(&["nope".to_string()])) else {
            panic!("a run id without metrics should fail");
        };
        assert_eq!(err.exit_code(), 2);
    }
}
