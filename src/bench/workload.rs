//! The reference workloads of `harness bench train`: one network, image size, batch and
//! class count each, described completely enough that the PyTorch reference script builds
//! the same network from the same description.

use serde::Serialize;

use crate::spec::run::{Arch, ModelConfig, Stem};

/// A training-step workload.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub key: &'static str,
    pub description: &'static str,
    /// Serialised by its experiment-file name (`resnet`), as the reference script reads it.
    pub arch: Arch,
    pub widths: Vec<usize>,
    pub depths: Vec<usize>,
    /// `cifar` (3×3 stride-1 stem, no max-pool) or `imagenet`.
    pub stem: Stem,
    pub image_size: usize,
    pub batch_size: usize,
    pub classes: usize,
    /// A LoRKD student: every groups = 1 convolution carries per-task low-rank experts and
    /// each sample of the batch belongs to a task drawn at random (a mixed batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lorkd: Option<LorkdExperts>,
}

/// The experts of a LoRKD workload.
#[derive(Debug, Clone, Serialize)]
pub struct LorkdExperts {
    pub tasks: usize,
    pub rank: usize,
    pub alpha: f64,
    /// The workload of the same network without experts, which `harness bench train` runs
    /// beside it to print what the experts cost.
    pub plain: &'static str,
}

impl Workload {
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig::conv(self.arch, &self.widths, &self.depths, self.stem)
    }
}

/// Every workload, in the order they are run.
pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            key: "resnet18-narrow",
            description: "ResNet-18 layout, widths 16/32/64/128, 28 px, batch 64",
            arch: Arch::Resnet,
            widths: vec![16, 32, 64, 128],
            depths: vec![2, 2, 2, 2],
            stem: Stem::Cifar,
            image_size: 28,
            batch_size: 64,
            classes: 10,
            lorkd: None,
        },
        Workload {
            key: "resnet18",
            description: "ResNet-18, widths 64/128/256/512, 28 px, batch 64",
            arch: Arch::Resnet,
            widths: vec![64, 128, 256, 512],
            depths: vec![2, 2, 2, 2],
            stem: Stem::Cifar,
            image_size: 28,
            batch_size: 64,
            classes: 10,
            lorkd: None,
        },
        Workload {
            key: "shufflenetv2",
            description: "ShuffleNetV2 1.0× (the LoRKD student), stride-1 stem, 32 px, batch 64",
            arch: Arch::ShuffleNetV2,
            widths: crate::model::nets::shufflenet::REFERENCE_1X.0.to_vec(),
            depths: crate::model::nets::shufflenet::REFERENCE_1X.1.to_vec(),
            stem: Stem::Cifar,
            image_size: 32,
            batch_size: 64,
            classes: 10,
            lorkd: None,
        },
    ]
}

/// Workloads run only on request (`--workload`): the LoRKD student, whose plain
/// counterpart is run with it.
pub fn on_request() -> Vec<Workload> {
    let plain = all()
        .into_iter()
        .find(|w| w.key == "shufflenetv2")
        .expect("the shufflenetv2 workload exists");
    vec![Workload {
        key: "shufflenetv2-lorkd",
        description: "the ShuffleNetV2 1.0× student with LoRKD experts (T = 10, r = 4, α = 16) on a batch of 64 mixing the 10 tasks",
        lorkd: Some(LorkdExperts {
            tasks: 10,
            rank: 4,
            alpha: 16.0,
            plain: plain.key,
        }),
        ..plain
    }]
}

/// Keys of [`all`] and [`on_request`].
pub fn keys() -> Vec<&'static str> {
    all().iter().chain(&on_request()).map(|w| w.key).collect()
}
