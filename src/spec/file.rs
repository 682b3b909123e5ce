//! The experiment-file schema exactly as written by users. Every table denies unknown keys,
//! and names that must be checked against a registry are kept as [`Spanned`] so validation
//! can report the line and column of a bad value.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Top level of an experiment TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Experiment name; also the folder under `reports/`.
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Seeds; every run is repeated once per seed (reports show mean ± std over them).
    pub seeds: Spanned<Vec<u64>>,
    /// Stages to run, in any order; the planner orders them by dependency.
    pub stages: Vec<Spanned<String>>,
    /// Profile used when `--profile` is not given.
    #[serde(default)]
    pub default_profile: Option<Spanned<String>>,
    pub grid: GridFile,
    /// Named scales of the same experiment (`paper`, `smoke`, ...).
    pub profile: BTreeMap<String, Spanned<ProfileFile>>,
    /// Per-method hyperparameters, keyed by method name.
    #[serde(default)]
    pub method: BTreeMap<String, Spanned<MethodFile>>,
}

/// The grid: every combination is a run (per seed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    pub method: Vec<Spanned<String>>,
    pub pretrain: Vec<Spanned<String>>,
    #[serde(default)]
    pub downstream: Vec<Spanned<String>>,
    #[serde(default)]
    pub foundation: Vec<Spanned<String>>,
}

/// One profile: how big everything is and where data come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// `real` (files under the data root) or `synthetic` (generated stand-ins).
    pub data: Spanned<String>,
    pub image_size: Spanned<usize>,
    pub epochs: Spanned<u32>,
    pub batch_size: Spanned<usize>,
    #[serde(default)]
    pub eval_batch_size: Option<Spanned<usize>>,
    #[serde(default)]
    pub max_train_per_task: Option<Spanned<usize>>,
    #[serde(default)]
    pub max_val_per_task: Option<Spanned<usize>>,
    #[serde(default)]
    pub max_test_per_task: Option<Spanned<usize>>,
    /// Synthetic data only: 0 = easy, 1 = hard.
    #[serde(default)]
    pub difficulty: Option<Spanned<f64>>,
    /// Input normalisation: `fixed` or `per_image` (default: per_image for synthetic data,
    /// fixed for real data).
    #[serde(default)]
    pub normalize: Option<Spanned<String>>,
    pub model: Spanned<ModelFile>,
    pub optim: Spanned<OptimFile>,
}

/// Student network.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub arch: Spanned<String>,
    pub widths: Spanned<Vec<usize>>,
    pub depths: Spanned<Vec<usize>>,
    /// `cifar` (3×3 stride-1 stem, no max-pool; small images) or `imagenet` (7×7/2 + max-pool).
    #[serde(default)]
    pub stem: Option<Spanned<String>>,
}

/// Optimiser and learning-rate schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimFile {
    pub name: Spanned<String>,
    pub lr: Spanned<f64>,
    #[serde(default)]
    pub momentum: Option<Spanned<f64>>,
    #[serde(default)]
    pub weight_decay: Option<Spanned<f64>>,
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    #[serde(default)]
    pub warmup_epochs: Option<Spanned<u32>>,
}

/// Per-method overrides. Generic keys apply to every method; method-specific keys are
/// accepted by the schema but checked by the method itself during validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodFile {
    #[serde(default)]
    pub lr: Option<Spanned<f64>>,
    #[serde(default)]
    pub weight_decay: Option<Spanned<f64>>,
    #[serde(default)]
    pub epochs: Option<Spanned<u32>>,
}
