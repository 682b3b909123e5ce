//! Run store: one folder per run under `results/<run_id>/` holding `spec.json` (written
//! first), `status.json`, `metrics.parquet`, `checkpoint.safetensors` and `log.txt`, and the
//! experiments' manifests under `results/experiments/`.
//! Every write goes through [`crate::util::fs::write_atomic`] so a killed process never
//! leaves a half-written file behind.

pub mod index;
pub mod manifest;
pub mod metrics;
pub mod run_dir;
pub mod status;
pub mod task_weights;
