//! The run specification: everything that determines a run's numbers, and nothing else.
//! Its canonical JSON (struct fields in declaration order, maps sorted) is hashed into the
//! run id, so two runs share a folder in `results/` exactly when they would compute the
//! same thing.

use serde::{Deserialize, Serialize};

use crate::data::settings::DataSpec;
use crate::spec::options::MethodOptions;
use crate::util::hash::sha256_hex;

/// Stages of the plan DAG, in dependency order. `transfer` and `analysis` join as their
/// issues land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Train (or load) the teacher of the distilling methods.
    Foundation,
    Decompose,
}

impl Stage {
    pub const ALL: [Stage; 2] = [Stage::Foundation, Stage::Decompose];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Foundation => "foundation",
            Stage::Decompose => "decompose",
        }
    }
}

/// Network architectures, as named in experiment files (and in run specs, so the names
/// are part of run ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// BasicBlocks (ResNet-18/34 layout).
    #[serde(rename = "resnet")]
    Resnet,
    /// Bottlenecks (ResNet-50/101 layout, the paper's foundation model).
    #[serde(rename = "resnet_bottleneck")]
    ResnetBottleneck,
    /// ShuffleNetV2, the LoRKD reference code's student.
    #[serde(rename = "shufflenetv2")]
    ShuffleNetV2,
    /// The ViT image tower (BioMedCLIP).
    #[serde(rename = "vit")]
    Vit,
}

impl Arch {
    pub const ALL: [Arch; 4] = [
        Arch::Resnet,
        Arch::ResnetBottleneck,
        Arch::ShuffleNetV2,
        Arch::Vit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Resnet => "resnet",
            Arch::ResnetBottleneck => "resnet_bottleneck",
            Arch::ShuffleNetV2 => "shufflenetv2",
            Arch::Vit => "vit",
        }
    }

    /// Whether the network has groups = 1 convolutions, which can carry LoRKD's low-rank
    /// experts.
    pub fn is_convolutional(self) -> bool {
        self != Arch::Vit
    }

    /// The convolutional architectures, for messages.
    pub fn convolutional() -> Vec<&'static str> {
        Arch::ALL
            .into_iter()
            .filter(|a| a.is_convolutional())
            .map(Arch::as_str)
            .collect()
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Student network configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub widths: Vec<usize>,
    pub depths: Vec<usize>,
    pub stem: Stem,
    /// ViT only: patch side, attention heads and the image side its position embeddings
    /// are made for. Absent for convolutional networks, so their run ids are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
}

impl ModelConfig {
    /// A convolutional network's configuration (no ViT fields).
    pub fn conv(arch: Arch, widths: &[usize], depths: &[usize], stem: Stem) -> ModelConfig {
        ModelConfig {
            arch,
            widths: widths.to_vec(),
            depths: depths.to_vec(),
            stem,
            patch_size: None,
            heads: None,
            image_size: None,
        }
    }
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

/// The foundation run a distilling run learns from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherRef {
    pub name: String,
    pub run_id: String,
}

/// Pre-trained weights a foundation run loads instead of training its backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsRef {
    /// As written in the experiment file, resolved against the working directory.
    pub path: String,
    /// sha256 of the file: the run id follows the content, not the name.
    pub sha256: String,
    /// (from, to) prefix renames, file keys → model keys.
    pub rename: Vec<(String, String)>,
    /// Key prefixes of file tensors to leave unused.
    pub ignore: Vec<String>,
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
    /// Method settings (KD, low-rank experts); omitted when the method has none, so the
    /// run ids of STL and MTL did not change when they were introduced.
    #[serde(default, skip_serializing_if = "MethodOptions::is_empty")]
    pub options: MethodOptions,
    /// Distilling runs: the foundation run whose frozen model is the teacher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherRef>,
    /// Foundation runs that load their backbone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsRef>,
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
        let model = match (&self.teacher, self.stage) {
            (_, Stage::Foundation) => self.foundation.clone().unwrap_or_default(),
            (Some(t), _) => format!("{} ← {}", self.method, t.name),
            (None, _) => self.method.clone(),
        };
        format!(
            "{} {model} {}{} seed {}",
            self.stage.as_str(),
            self.pretrain,
            tasks,
            self.seed
        )
    }
}
