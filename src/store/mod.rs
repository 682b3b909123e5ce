//! Run store: one folder per run under `results/<run_id>/` holding `spec.json` (written
//! first), `status.json`, `metrics.parquet`, `checkpoint.safetensors`, `log.txt` (and `task_weights.parquet`, `cka.parquet` where the run
//! has them), and the
//! experiments' manifests under `results/experiments/`, and the baselines of regression
//! checks under `results/baselines/`.
//! Every write goes through [`crate::util::fs::write_atomic`] so a killed process never
//! leaves a half-written file behind.

pub mod artefacts;
pub mod baseline;
pub mod cka;
pub mod claim;
pub mod index;
pub mod manifest;
pub mod metrics;
pub mod parquet;
pub mod run_dir;
pub mod status;
pub mod task_weights;
