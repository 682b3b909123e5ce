//! Decomposition methods. As in LibMTL, a method is two separable choices: an architecture
//! ([`TaskModel`]: what the network is and which loss terms each task contributes) and a
//! gradient [`weighting::Weighting`] (how per-task losses become one update). Methods are
//! looked up by name in an explicit registry ([`lookup`], and [`CATALOG`] for the experiment
//! layer); nothing outside this module asks "which method is this?". Each method reads its
//! own `[method.NAME]` settings ([`MethodSettings::setting_groups`]) next to its code.

pub mod aligned;
pub mod aligned_mtl;
pub mod expert;
pub mod expert_source;
pub mod feature_cache;
pub mod hard_sharing;
pub mod kd_loss;
pub mod kd_settings;
pub mod kf;
pub mod kf_loss;
pub mod lorkd;
pub mod moco;
pub mod moco_mtl;
pub mod mtl;
pub mod mtl_kd;
pub mod stl;
pub mod stl_kd;
pub mod task_gradients;
pub mod teacher;
pub mod transfer;
pub mod weighting;

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::Tensor;
use candle_nn::{VarBuilder, VarMap};

use crate::data::batch::Batch;
use crate::error::Result;
use crate::spec::catalog::{not_implemented, MethodCatalog, MethodSettings};
use crate::spec::options::{KdConfig, MethodOptions};
use crate::spec::run::ModelConfig;
use teacher::Teacher;

/// Every method of the paper, in the paper's table order: (registry key, display name).
pub const PAPER_METHODS: [(&str, &str); 8] = [
    ("stl", "STL"),
    ("mtl", "MTL"),
    ("mocomtl", "MoCo-MTL"),
    ("alignedmtl", "Aligned-MTL"),
    ("stlkd", "STL-KD"),
    ("mtlkd", "MTL-KD"),
    ("kf", "KF"),
    ("lorkd", "LoRKD"),
];

/// Display name of a method key (the key itself when unknown).
pub fn display_name(key: &str) -> String {
    PAPER_METHODS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| key.to_string())
}

/// What a method needs to build its network for one run.
pub struct BuildContext<'a> {
    pub model: &'a ModelConfig,
    /// (task key, number of classes) in run order.
    pub tasks: &'a [(String, usize)],
    pub options: &'a MethodOptions,
    /// The frozen foundation model of distilling runs. `None` when the network is only
    /// evaluated or exported, which needs no teacher.
    pub teacher: Option<Arc<Teacher>>,
    /// Seeds what is random but not a variable (the KD projection).
    pub seed: u64,
    /// Train only the heads, on the cached features of a frozen backbone (foundation
    /// towers loaded from weights).
    pub frozen_backbone: bool,
}

/// Per-task loss terms of one mixed batch. `losses[i]` belongs to local task
/// `tasks[i]` and is already divided by the full batch size, so their sum is the paper's
/// task loss (1/B) Σ_t Σ_{i∈t} CE.
pub struct TaskLosses {
    pub tasks: Vec<usize>,
    pub losses: Vec<Tensor>,
    /// Correct top-1 predictions and sample counts per entry, for training accuracy.
    pub correct: Vec<(usize, usize)>,
}

impl TaskLosses {
    /// Each term's share of a batch of `size` samples.
    pub fn shares(&self, size: usize) -> Vec<f64> {
        self.correct
            .iter()
            .map(|(_, n)| *n as f64 / size as f64)
            .collect()
    }

    pub fn new() -> Self {
        TaskLosses {
            tasks: Vec::new(),
            losses: Vec::new(),
            correct: Vec::new(),
        }
    }

    /// Add one task group's mean loss, weighted by its share of the batch (so the sum over
    /// groups is the batch mean of the paper's loss), and its training accuracy.
    pub fn push_group(
        &mut self,
        g: &crate::data::batch::TaskGroup,
        batch_size: usize,
        loss: Tensor,
        logits: &Tensor,
    ) -> candle_core::Result<()> {
        self.losses
            .push((loss * (g.count as f64 / batch_size as f64))?);
        self.tasks.push(g.task);
        self.correct
            .push((hard_sharing::count_correct(logits, &g.labels)?, g.count));
        Ok(())
    }
}

impl Default for TaskLosses {
    fn default() -> Self {
        Self::new()
    }
}

/// A method's network for one run.
pub trait TaskModel {
    /// Loss terms of a mixed batch; `train` selects batch-norm mode.
    fn task_losses(&self, batch: &Batch, train: bool) -> candle_core::Result<TaskLosses>;
    /// Logits of the expert for local task `task` (evaluation mode).
    fn expert_logits(&self, x: &Tensor, task: usize) -> candle_core::Result<Tensor>;
    /// Whether the variable `name` is trained (frozen parts are left to their values).
    fn trainable(&self, _name: &str) -> bool {
        true
    }
    /// Networks with low-rank experts: apply them in `form` from now on (the forms are
    /// equivalent; checks use the unmerged ones). Others ignore it.
    fn set_eks_form(&self, _form: crate::model::layers::lowrank::EksForm) {}
}

/// A decomposition method: what the experiment layer knows of it ([`MethodSettings`]: key,
/// granularity, settings) and what training needs.
pub trait Method: MethodSettings {
    fn build(&self, ctx: &BuildContext, vb: VarBuilder) -> candle_core::Result<Box<dyn TaskModel>>;
    /// The weighting of a run with `tasks` tasks.
    fn weighting(&self, options: &MethodOptions, tasks: usize) -> Box<dyn weighting::Weighting>;
    /// The task-specific network an expert carries besides the student (KF's TSN).
    fn expert_tsn(&self, _student: &ModelConfig) -> Option<ModelConfig> {
        None
    }
    /// The standalone expert of local task `task` from a trained run's variables: a plain
    /// student (`backbone.*`) and its head (`head.*`).
    fn export_expert(
        &self,
        map: &VarMap,
        tasks: &[String],
        task: usize,
        options: &MethodOptions,
    ) -> Result<BTreeMap<String, Tensor>> {
        expert::backbone_and_head(map, tasks, task, options.low_rank)
    }
}

/// LoRKD's feature KD with its defaults (β = 1, T = 10); also STL-KD's and MTL-KD's.
pub const FEATURE_KD: KdConfig = KdConfig::Feature {
    weight: 1.0,
    temperature: 10.0,
};

/// Methods implemented in this build, by key.
pub fn lookup(key: &str) -> Option<&'static dyn Method> {
    match key {
        "stl" => Some(&stl::STL),
        "mtl" => Some(&mtl::MTL),
        "mocomtl" => Some(&moco_mtl::MOCO_MTL),
        "alignedmtl" => Some(&aligned_mtl::ALIGNED_MTL),
        "stlkd" => Some(&stl_kd::STL_KD),
        "mtlkd" => Some(&mtl_kd::MTL_KD),
        "lorkd" => Some(&lorkd::LORKD),
        "kf" => Some(&kf::KF),
        _ => None,
    }
}

/// The implemented method `key`, or the one error for a method this build lacks.
pub fn require(key: &str) -> Result<&'static dyn Method> {
    lookup(key).ok_or_else(|| not_implemented(key, &CATALOG.implemented()))
}

/// The methods of this build, as the experiment layer (validation, expansion) asks for them.
pub struct Registry;

/// The catalogue to hand to `spec::validate` and `spec::expand`.
pub const CATALOG: Registry = Registry;

impl MethodCatalog for Registry {
    fn known(&self) -> &[(&'static str, &'static str)] {
        &PAPER_METHODS
    }

    fn lookup(&self, key: &str) -> Option<&dyn MethodSettings> {
        lookup(key).map(|m| m as &dyn MethodSettings)
    }
}
