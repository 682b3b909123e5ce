//! The run specification: everything that determines a run's numbers, and nothing else.
//! Its canonical JSON (struct fields in declaration order, maps sorted) is hashed into the
//! run id, so two runs share a folder in `results/` exactly when they would compute the
//! same thing. The experiment that asks for a run is not part of it: experiment files that
//! plan the same run (a decomposition that Table 3 reports and Table 4 fine-tunes) share
//! it, and each experiment's manifest lists the runs it uses.

use serde::{Deserialize, Serialize};

use crate::data::settings::DataSpec;
use crate::spec::options::MethodOptions;
use crate::util::hash::sha256_hex;

/// The method name of foundation runs in run specs and metrics, and of the transfer runs
/// that fine-tune a foundation model.
pub const FOUNDATION_METHOD: &str = "foundation";

/// The method name of transfer runs that train the student from scratch.
pub const SCRATCH_METHOD: &str = "scratch";

/// Stages of the plan DAG, in dependency order. `analysis` joins as its issue lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Train (or load) the teacher of the distilling methods.
    Foundation,
    Decompose,
    /// Fine-tune an expert (or a shared backbone, or the foundation model) on a downstream
    /// set.
    Transfer,
    /// Compare the experts of a finished decomposition with each other (CKA); trains
    /// nothing.
    Analysis,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::Foundation,
        Stage::Decompose,
        Stage::Transfer,
        Stage::Analysis,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Foundation => "foundation",
            Stage::Decompose => "decompose",
            Stage::Transfer => "transfer",
            Stage::Analysis => "analysis",
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

/// How a transfer run trains what it starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// Every parameter is trained, the new head and the network it sits on.
    Finetune,
    /// Only the new head is trained, on the frozen network's features (evaluation mode).
    LinearProbe,
}

/// What a transfer run fine-tunes (supplement section C and Table 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRef {
    /// The finished run whose network starts the fine-tuning: a decomposition run, or a
    /// foundation run (the pre-training baseline). `None`: the student from random
    /// initialisation (the direct-training baseline).
    pub source: Option<String>,
    /// The pre-training task whose expert is fine-tuned. `None`: the shared network (the
    /// encoder of an MTL-style method, a foundation model's backbone, and LoRKD's `W0` or
    /// KF's CKN where no expert matches, the paper's †).
    pub expert: Option<String>,
    pub mode: TransferMode,
}

/// How CKA pairs the samples of two tasks (the paper does not say; `../METHODS.md`, CKA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CkaProtocol {
    /// Cell (i, j): n test images of task i through expert i against n test images of task
    /// j through expert j, rows paired by a fixed seeded order.
    CrossTask,
    /// Cell (i, j): the same n test images of task i through expert i and through expert j.
    SameProbe,
}

impl CkaProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            CkaProtocol::CrossTask => "cross-task",
            CkaProtocol::SameProbe => "same-probe",
        }
    }
}

/// Which CKA estimator an analysis run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CkaEstimator {
    /// Linear CKA of all n rows at once (Kornblith et al., 2019).
    Linear,
    /// Unbiased HSIC summed over minibatches (Nguyen et al., 2021), for large n.
    Minibatch,
}

/// What an analysis run compares (supplement Figure 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRef {
    /// Per task of the run's `tasks`, in order: the finished decomposition run holding its
    /// expert (the same run for every task but for STL and STL-KD, one run per task).
    pub sources: Vec<String>,
    pub protocols: Vec<CkaProtocol>,
    /// Test images per task (fewer where a task's test split is smaller: the least over
    /// the tasks is used for all, so every matrix has one n).
    pub samples: usize,
    pub estimator: CkaEstimator,
    /// Rows per minibatch of the minibatch estimator.
    pub batch: usize,
}

/// One run: a node of the plan DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
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
    /// Transfer runs: what they fine-tune and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferRef>,
    /// Analysis runs: which experts they compare and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRef>,
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
        if let (Stage::Transfer, Some(t)) = (self.stage, &self.transfer) {
            let model = match &self.foundation {
                Some(f) if self.method != FOUNDATION_METHOD => format!("{} ← {f}", self.method),
                Some(f) => f.clone(),
                None => self.method.clone(),
            };
            let from = match (&t.source, &t.expert) {
                (None, _) => "scratch".to_string(),
                (Some(_), Some(e)) => format!("{}[{e}]", self.pretrain),
                (Some(_), None) => format!("{}[shared]", self.pretrain),
            };
            let to = self.downstream.as_deref().unwrap_or("?");
            return format!("transfer {model} {from} → {to} seed {}", self.seed);
        }
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
