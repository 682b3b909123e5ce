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
        },
    ]
}

/// Keys of [`all`].
pub fn keys() -> Vec<&'static str> {
    all().iter().map(|w| w.key).collect()
}
