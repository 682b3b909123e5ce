//! Layers ([`layers`]) and networks ([`nets`]) built from a candle `VarBuilder`, so
//! parameter names are the checkpoint keys; the factory that builds a configured backbone;
//! the seeded variable initialisation ([`init`]) that makes CPU runs reproducible bit for
//! bit; pre-trained weight loading ([`weights`]) and the MAC counter ([`cost`]). On the CPU
//! the layers run the kernels of [`crate::kernels`]; elsewhere candle's own ops.

pub mod cost;
pub mod init;
pub mod layers;
pub mod nets;
pub mod weights;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::spec::run::ModelConfig;
use layers::conv_layer::ConvKind;

/// Architectures the harness can build, as named in experiment files.
pub const ARCHS: &[&str] = &["resnet", "resnet_bottleneck", "shufflenetv2", "vit"];

/// Architectures whose groups = 1 convolutions can carry LoRKD's low-rank experts.
pub const CONV_ARCHS: &[&str] = &["resnet", "resnet_bottleneck", "shufflenetv2"];

/// A feature extractor: images `B × 3 × H × W` → pooled features `B × feature_dim`.
pub trait Backbone: Send + Sync {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    fn feature_dim(&self) -> usize;
    /// Globally pooled features at the end of every stage, `B × stage_dims()[s]` each; the
    /// last is [`Backbone::forward_t`]'s output, computed the same way (KF matches a
    /// teacher's stages to its student's). A network without stages gives that one.
    fn stage_features_t(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        Ok(vec![self.forward_t(x, train)?])
    }
    /// Widths of [`Backbone::stage_features_t`]'s features, first stage first.
    fn stage_dims(&self) -> Vec<usize> {
        vec![self.feature_dim()]
    }
}

/// Parameters among the variables of `map` (batch-norm running statistics are buffers, not
/// parameters).
pub fn parameter_count(map: &candle_nn::VarMap) -> u64 {
    map.data()
        .lock()
        .expect("var map")
        .iter()
        .filter(|(n, _)| !layers::batch_norm::is_buffer(n))
        .map(|(_, v)| v.elem_count() as u64)
        .sum()
}

/// Build the backbone named by `cfg.arch` (validated beforehand against [`ARCHS`]).
pub fn build_backbone(cfg: &ModelConfig, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
    build_backbone_with(cfg, &ConvKind::Plain, vb)
}

/// Build the backbone with its groups = 1 convolutions of the given kind.
pub fn build_backbone_with(
    cfg: &ModelConfig,
    kind: &ConvKind,
    vb: VarBuilder,
) -> Result<Box<dyn Backbone>> {
    use nets::resnet::{Block, ResNet};
    match (cfg.arch.as_str(), kind) {
        ("resnet", _) => Ok(Box::new(ResNet::new(cfg, Block::Basic, kind, vb)?)),
        ("resnet_bottleneck", _) => Ok(Box::new(ResNet::new(cfg, Block::Bottleneck, kind, vb)?)),
        ("shufflenetv2", _) => Ok(Box::new(nets::shufflenet::ShuffleNetV2::new(
            cfg, kind, vb,
        )?)),
        ("vit", ConvKind::Plain) => Ok(Box::new(nets::vit::VisionTransformer::new(cfg, vb)?)),
        ("vit", _) => candle_core::bail!(
            "low-rank experts apply to convolutional students ({CONV_ARCHS:?}), not to vit"
        ),
        (other, _) => candle_core::bail!("unknown architecture `{other}` (known: {ARCHS:?})"),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::spec::run::{Arch, Stem};

    /// Every convolutional network gives one pooled feature per stage, of the widths it
    /// reports; the last is `forward_t`'s output to the bit, in training and evaluation.
    #[test]
    fn stage_features_end_with_the_output() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 3, 16, 16), &dev).unwrap();
        for (cfg, dims) in [
            (
                ModelConfig::conv(Arch::Resnet, &[4, 8, 12], &[1, 2, 1], Stem::Cifar),
                vec![4, 8, 12],
            ),
            (
                ModelConfig::conv(Arch::ResnetBottleneck, &[4, 8], &[2, 1], Stem::Imagenet),
                vec![16, 32],
            ),
            (
                ModelConfig::conv(
                    Arch::ShuffleNetV2,
                    &[8, 8, 16, 24, 32],
                    &[1, 2, 1],
                    Stem::Cifar,
                ),
                vec![8, 16, 32],
            ),
        ] {
            let map = VarMap::new();
            let net =
                build_backbone(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
            assert_eq!(net.stage_dims(), dims, "{}", cfg.arch);
            for train in [false, true] {
                let stages = net.stage_features_t(&x, train).unwrap();
                let shapes: Vec<(usize, usize)> =
                    stages.iter().map(|s| s.dims2().unwrap()).collect();
                let want: Vec<(usize, usize)> = dims.iter().map(|&d| (3, d)).collect();
                assert_eq!(shapes, want, "{}", cfg.arch);
                let out = net.forward_t(&x, train).unwrap();
                assert_eq!(
                    stages.last().unwrap().to_vec2::<f32>().unwrap(),
                    out.to_vec2::<f32>().unwrap(),
                    "{}",
                    cfg.arch
                );
            }
        }
    }
}
