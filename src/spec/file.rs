//! The experiment-file schema exactly as written by users. Every table denies unknown keys;
//! closed sets of names (stages, data sources, architectures, optimisers, ...) are enums
//! that serde parses, so an unknown one is reported at its line and column with the list of
//! valid ones; names that must be checked against a registry, and values with ranges, are
//! kept as [`Spanned`] so validation can point at them too. `[method.NAME]` tables are kept
//! raw ([`RawTable`]): each method reads its own settings.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::run::{
    Arch, CkaEstimator, CkaProtocol, OptimizerKind, Schedule, Stage, Stem, TransferMode,
};
use super::settings::RawTable;
use crate::data::settings::Normalize;
use crate::data::DataKind;

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
    pub stages: Vec<Spanned<Stage>>,
    /// Profile used when `--profile` is not given.
    #[serde(default)]
    pub default_profile: Option<Spanned<String>>,
    pub grid: GridFile,
    /// Named scales of the same experiment (`paper`, `smoke`, ...).
    pub profile: BTreeMap<String, Spanned<ProfileFile>>,
    /// Per-method hyperparameters, keyed by method name.
    #[serde(default)]
    pub method: BTreeMap<String, Spanned<RawTable>>,
    /// Options of the transfer stage that do not depend on the profile.
    #[serde(default)]
    pub transfer: Option<Spanned<TransferFile>>,
    /// Per pre-training set, overrides of the registry's expert ↔ downstream correspondence
    /// (supplement Table 1): downstream task key → pre-training task id, task key, or
    /// `"none"` (no matching expert, †).
    #[serde(default)]
    pub expert_for: BTreeMap<String, Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    /// The paper's numbers for this experiment's table, printed beside ours.
    #[serde(default)]
    pub reference: Option<Spanned<ReferenceFile>>,
    /// Options of the analysis stage that do not depend on the profile.
    #[serde(default)]
    pub analysis: Option<Spanned<AnalysisFile>>,
}

/// `[analysis]`: what the analysis stage computes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFile {
    /// How CKA pairs two tasks' samples: `cross-task` (default) and/or `same-probe`.
    #[serde(default)]
    pub protocols: Vec<Spanned<CkaProtocol>>,
}

/// `[profile.P.analysis]`: how big the analysis is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileAnalysisFile {
    /// Test images per task (default 500; the least test split of the tasks caps it).
    #[serde(default)]
    pub samples: Option<Spanned<usize>>,
    /// `linear` (default) or `minibatch`.
    #[serde(default)]
    pub estimator: Option<Spanned<CkaEstimator>>,
    /// Rows per minibatch of the minibatch estimator (default 256).
    #[serde(default)]
    pub batch: Option<Spanned<usize>>,
}

/// `[transfer]`: the baselines of the transfer tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferFile {
    /// Also train the student from scratch on every downstream set (the direct-training
    /// baseline).
    #[serde(default)]
    pub scratch: bool,
}

/// `[profile.P.transfer]`: how transfer runs train.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTransferFile {
    /// Default: the profile's epochs.
    #[serde(default)]
    pub epochs: Option<Spanned<u32>>,
    /// `finetune` (default) or `linear_probe`.
    #[serde(default)]
    pub mode: Option<Spanned<TransferMode>>,
    /// `sgd` or `adamw`; default: the profile's optimiser.
    #[serde(default)]
    pub optimizer: Option<Spanned<OptimizerKind>>,
    /// Default: a fifth of the profile's learning rate (fine-tuning from trained weights).
    #[serde(default)]
    pub lr: Option<Spanned<f64>>,
    /// Default: the profile's.
    #[serde(default)]
    pub weight_decay: Option<Spanned<f64>>,
}

/// `[reference]`: the paper's values of the experiment's table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    /// Where the numbers are printed (paper, table).
    pub source: Spanned<String>,
    /// `decompose` (accuracy on the pre-training tasks, supplement Table 3) or `transfer`
    /// (accuracy on the downstream sets, Table 4).
    pub stage: Spanned<Stage>,
    #[serde(default)]
    pub row: Vec<Spanned<ReferenceRowFile>>,
}

/// One row of the paper's table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRowFile {
    /// The foundation model (a name of `grid.foundation`).
    pub foundation: Spanned<String>,
    /// A method key, or `best` for the paper's "best baseline".
    pub method: Spanned<String>,
    /// Accuracy in percent per task (or downstream set) key, and `avg`.
    pub values: BTreeMap<String, Spanned<f64>>,
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
    pub data: Spanned<DataKind>,
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
    pub normalize: Option<Spanned<Normalize>>,
    pub model: Spanned<ModelFile>,
    pub optim: Spanned<OptimFile>,
    /// Foundation models (teachers) of this profile, by the names `grid.foundation` uses.
    #[serde(default)]
    pub foundation: BTreeMap<String, Spanned<FoundationFile>>,
    /// Per-method settings of this profile only, over the top-level `[method.NAME]`.
    #[serde(default)]
    pub method: BTreeMap<String, Spanned<RawTable>>,
    /// How this profile's transfer runs train.
    #[serde(default)]
    pub transfer: Option<Spanned<ProfileTransferFile>>,
    /// How big this profile's analysis runs are.
    #[serde(default)]
    pub analysis: Option<Spanned<ProfileAnalysisFile>>,
}

/// A foundation model: trained by the `foundation` stage on the union of the pre-training
/// set's tasks (one head per task), or loaded from `weights`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoundationFile {
    pub model: Spanned<ModelFile>,
    /// Training epochs (default: the profile's); with `weights`, the epochs of the linear
    /// probes that give the frozen tower its task heads.
    #[serde(default)]
    pub epochs: Option<Spanned<u32>>,
    #[serde(default)]
    pub lr: Option<Spanned<f64>>,
    /// `sgd` or `adamw` (default: the profile's optimiser; a ViT trains better with AdamW).
    #[serde(default)]
    pub optimizer: Option<Spanned<OptimizerKind>>,
    /// Default: the profile's.
    #[serde(default)]
    pub weight_decay: Option<Spanned<f64>>,
    /// A safetensors file or a PyTorch `.pth`/`.pt` state dict of the backbone.
    #[serde(default)]
    pub weights: Option<Spanned<String>>,
    /// Prefix renames from the file's keys to the model's, applied in order.
    #[serde(default)]
    pub rename: Vec<RenameFile>,
    /// Key prefixes (after renaming) of file tensors to leave unused, e.g. `["fc."]`.
    #[serde(default)]
    pub ignore: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameFile {
    pub from: String,
    pub to: String,
}

/// Student network.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub arch: Spanned<Arch>,
    pub widths: Spanned<Vec<usize>>,
    pub depths: Spanned<Vec<usize>>,
    /// `cifar` (3×3 stride-1 stem, no max-pool; small images) or `imagenet` (7×7/2 + max-pool).
    #[serde(default)]
    pub stem: Option<Spanned<Stem>>,
    /// ViT only: patch side (16 for ViT-B/16) and attention heads (12).
    #[serde(default)]
    pub patch_size: Option<Spanned<usize>>,
    #[serde(default)]
    pub heads: Option<Spanned<usize>>,
}

/// Optimiser and learning-rate schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimFile {
    pub name: Spanned<OptimizerKind>,
    pub lr: Spanned<f64>,
    #[serde(default)]
    pub momentum: Option<Spanned<f64>>,
    #[serde(default)]
    pub weight_decay: Option<Spanned<f64>>,
    #[serde(default)]
    pub schedule: Option<Spanned<Schedule>>,
    #[serde(default)]
    pub warmup_epochs: Option<Spanned<u32>>,
}
