//! The backbones, one per file: ResNets (basic and bottleneck blocks), ShuffleNetV2 and the
//! ViT image tower, all configurable in width and depth.

pub mod resnet;
pub mod shufflenet;
pub mod vit;
