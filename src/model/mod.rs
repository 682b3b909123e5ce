//! Networks, one per file, built from a candle `VarBuilder` so parameter names are the
//! checkpoint keys. [`init`] provides the seeded variable initialisation that makes CPU
//! runs reproducible bit for bit.

pub mod batch_norm;
pub mod channel_ops;
pub mod conv;
pub mod conv_bn;
pub mod conv_cpu;
pub mod conv_layer;
pub mod depthwise;
pub mod gemm;
pub mod heads;
pub mod init;
mod lane_sums;
mod layout;
pub mod lowrank;
pub mod resnet;
pub mod shufflenet;
mod simd;
pub mod slice_conv;
pub mod stages;
#[cfg(test)]
mod test_support;
pub mod vit;
pub mod weights;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

pub use slice_conv::SliceConv;

use crate::spec::run::ModelConfig;
use conv_layer::ConvKind;

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
    use resnet::{Block, ResNet};
    match (cfg.arch.as_str(), kind) {
        ("resnet", _) => Ok(Box::new(ResNet::new(cfg, Block::Basic, kind, vb)?)),
        ("resnet_bottleneck", _) => Ok(Box::new(ResNet::new(cfg, Block::Bottleneck, kind, vb)?)),
        ("shufflenetv2", _) => Ok(Box::new(shufflenet::ShuffleNetV2::new(cfg, kind, vb)?)),
        ("vit", ConvKind::Plain) => Ok(Box::new(vit::VisionTransformer::new(cfg, vb)?)),
        ("vit", _) => candle_core::bail!(
            "low-rank experts apply to convolutional students ({CONV_ARCHS:?}), not to vit"
        ),
        (other, _) => candle_core::bail!("unknown architecture `{other}` (known: {ARCHS:?})"),
    }
}

/// The ImageNet stems' 3×3 stride-2 max-pool with padding 1 (edge values repeated, which
/// gives the same maxima as PyTorch's −∞ padding).
pub(crate) fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    x.pad_with_same(2, 1, 1)?
        .pad_with_same(3, 1, 1)?
        .max_pool2d_with_stride(3, 2)
}

/// The f32 elements of a contiguous CPU tensor (for the fused CPU kernels).
pub(crate) fn contiguous_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(d), Some((a, b))) => Ok(&d[a..b]),
        _ => candle_core::bail!("fused CPU kernel needs a contiguous f32 {what}"),
    }
}

/// Run `f` on the f32 elements of CPU tensors (as the backward passes of the fused kernels
/// need them), copying only those that are not contiguous.
pub(crate) fn with_f32<const N: usize, R>(
    tensors: [&Tensor; N],
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let owned = tensors
        .iter()
        .map(|t| {
            if t.is_contiguous() {
                Ok((*t).clone())
            } else {
                t.contiguous()
            }
        })
        .collect::<Result<Vec<Tensor>>>()?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(N);
    for (storage, layout) in &guards {
        match &**storage {
            candle_core::Storage::Cpu(s) => slices.push(contiguous_f32(s, layout, "tensor")?),
            _ => candle_core::bail!("fused CPU kernel called on a non-CPU tensor"),
        }
    }
    let slices: [&[f32]; N] = slices.try_into().expect("one slice per tensor");
    f(slices)
}

/// A vector of `len` floats for a kernel to overwrite completely, without first filling it
/// with zeros (which cost about 5% of a training step, as candle's own CPU backend found).
///
/// # Safety
/// The caller writes every element before reading any, and before the vector leaves the
/// kernel.
// The lint guards against reading such a vector; the contract above forbids exactly that.
#[allow(clippy::uninit_vec)]
pub(crate) unsafe fn output_f32(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: the capacity is `len`; f32 has no invalid bit patterns and, by the caller's
    // contract, no element is read before it is written.
    unsafe { v.set_len(len) };
    v
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::spec::run::Stem;

    /// Every convolutional network gives one pooled feature per stage, of the widths it
    /// reports; the last is `forward_t`'s output to the bit, in training and evaluation.
    #[test]
    fn stage_features_end_with_the_output() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 3, 16, 16), &dev).unwrap();
        for (cfg, dims) in [
            (
                ModelConfig::conv("resnet", &[4, 8, 12], &[1, 2, 1], Stem::Cifar),
                vec![4, 8, 12],
            ),
            (
                ModelConfig::conv("resnet_bottleneck", &[4, 8], &[2, 1], Stem::Imagenet),
                vec![16, 32],
            ),
            (
                ModelConfig::conv("shufflenetv2", &[8, 8, 16, 24, 32], &[1, 2, 1], Stem::Cifar),
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
