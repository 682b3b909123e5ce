//! The run specification: everything that determines a run's numbers, and nothing else.
//! Its canonical JSON (struct fields in declaration order, maps sorted) is hashed into the
//! run id, so two runs share a folder in `results/` exactly when they would compute the
//! same thing.

use serde::{Deserialize, Serialize};

use crate::data::DataKind;
use crate::util::hash::sha256_hex;

/// Stages of the plan DAG. Only `decompose` exists so far; `foundation`, `transfer` and
/// `analysis` join as their issues land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Decompose,
}

impl Stage {
    pub const ALL: [Stage; 1] = [Stage::Decompose];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decompose => "decompose",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Student network configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: String,
    pub widths: Vec<usize>,
    pub depths: Vec<usize>,
    pub stem: Stem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// 3×3 stride-1 conv, no max-pool (CIFAR style, for 28–32 px images).
    Cifar,
    /// 7×7 stride-2 conv + 3×3/2 max-pool (ImageNet style, for 224 px images).
    Imagenet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adamw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Cosine,
}

/// Optimiser settings after method overrides have been applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub name: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub warmup_epochs: u32,
}

/// Training-loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub optim: OptimConfig,
}

/// Per-task caps on split sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCaps {
    pub train: Option<usize>,
    pub val: Option<usize>,
    pub test: Option<usize>,
}

/// How pixels become network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// `(p/255 − 0.5) / 0.25` for every image: keeps absolute intensity and colour.
    Fixed,
    /// Each channel of each image to zero mean and unit variance. Used for the synthetic
    /// stand-ins, whose modalities differ so much in brightness (colour palettes around 210,
    /// grey modalities around 75) that a shared network trained on the mixture learned only
    /// which modality it was looking at.
    PerImage,
}

impl Normalize {
    pub fn parse(s: &str) -> Option<Normalize> {
        match s {
            "fixed" => Some(Normalize::Fixed),
            "per_image" => Some(Normalize::PerImage),
            _ => None,
        }
    }

    /// Default per data source: synthetic stand-ins per image, real data fixed.
    pub fn default_for(kind: DataKind) -> Normalize {
        match kind {
            DataKind::Synthetic => Normalize::PerImage,
            DataKind::Real => Normalize::Fixed,
        }
    }
}

/// Which data a run sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub kind: DataKind,
    pub dataset: String,
    pub image_size: usize,
    pub caps: SplitCaps,
    /// Synthetic data only.
    pub difficulty: Option<f64>,
    pub normalize: Normalize,
    /// Content fingerprint of the data (file hashes, or generator version + options).
    pub fingerprint: String,
}

/// One run: a node of the plan DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub experiment: String,
    pub profile: String,
    pub stage: Stage,
    pub method: String,
    pub pretrain: String,
    pub downstream: Option<String>,
    pub foundation: Option<String>,
    /// Task keys this run trains, in registry order (STL: one task; MTL: all).
    pub tasks: Vec<String>,
    pub seed: u64,
    pub data: DataSpec,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub code_version: String,
}

impl RunSpec {
    /// Canonical JSON used for hashing (compact, fields in declaration order).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("RunSpec serialises")
    }

    /// Content-addressed id: the first 16 hex digits of sha256(canonical JSON).
    pub fn run_id(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())[..16].to_string()
    }

    /// Short human label, e.g. `stl medmnist[colon] seed 0`.
    pub fn label(&self) -> String {
        let tasks = if self.tasks.len() == 1 {
            format!("[{}]", self.tasks[0])
        } else {
            format!("[{} tasks]", self.tasks.len())
        };
        format!(
            "{} {} {}{} seed {}",
            self.stage.as_str(),
            self.method,
            self.pretrain,
            tasks,
            self.seed
        )
    }
}
