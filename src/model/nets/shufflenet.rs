//! ShuffleNetV2, the student of the LoRKD reference code (1.0×: stem 24, stages of 4/8/4
//! blocks with 116/232/464 channels, 1×1 conv to 1024, global average pool), with every
//! width and depth configurable for the width-scaled students of the smoke profile.
//!
//! `widths = [stem, stage 2, stage 3, stage 4, final]` and `depths = [stage 2, stage 3,
//! stage 4]` (as many stages as depths). The ImageNet stem is a 3×3 stride-2 conv and a 3×3
//! stride-2 max-pool, as in the paper; the CIFAR stem is a 3×3 stride-1 conv without
//! pooling, for 28–32 px images. Parameter names follow torchvision (`conv1.0`,
//! `stage2.0.branch2.3`, `conv5.1`, ...) so its checkpoints map onto them directly.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::data::CHANNELS;
use crate::kernels::channel_ops::{interleave, second_half};
use crate::kernels::conv::ConvGeometry;
use crate::model::layers::batch_norm::{batch_norm2d, BatchNorm2d};
use crate::model::layers::conv_layer::{ConvKind, ConvLayer};
use crate::model::layers::depthwise::{depthwise_conv2d, DepthwiseConv2d};
use crate::model::layers::pool::max_pool_3x3_s2;
use crate::model::layers::stages::Stages;
use crate::model::Backbone;
use crate::spec::run::{ModelConfig, Stem};

/// ShuffleNetV2 1.0× as in the reference code: `(widths, depths)`.
pub const REFERENCE_1X: ([usize; 5], [usize; 3]) = ([24, 116, 232, 464, 1024], [4, 8, 4]);

fn depthwise3x3(channels: usize, stride: usize, vb: VarBuilder) -> Result<DepthwiseConv2d> {
    let geometry = ConvGeometry {
        k: 3,
        stride,
        padding: 1,
        dilation: 1,
    };
    depthwise_conv2d(channels, geometry, vb)
}

/// 1×1 conv + BN + ReLU.
struct PointwiseRelu {
    conv: ConvLayer,
    bn: BatchNorm2d,
}

impl PointwiseRelu {
    /// `vb` is the branch; the conv and BN sit at `conv_at` and `conv_at + 1`.
    fn new(
        cin: usize,
        cout: usize,
        kind: &ConvKind,
        vb: &VarBuilder,
        conv_at: usize,
    ) -> Result<Self> {
        Ok(Self {
            conv: kind.conv(cin, cout, 1, 1, 0, vb.pp(conv_at.to_string()))?,
            bn: batch_norm2d(cout, vb.pp((conv_at + 1).to_string()))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.after_conv_relu(self.conv.as_ref(), x, train)
    }
}

/// Depthwise 3×3 conv + BN (no ReLU, as in the paper).
struct DepthwiseBn {
    conv: DepthwiseConv2d,
    bn: BatchNorm2d,
}

impl DepthwiseBn {
    fn new(channels: usize, stride: usize, vb: &VarBuilder, conv_at: usize) -> Result<Self> {
        Ok(Self {
            conv: depthwise3x3(channels, stride, vb.pp(conv_at.to_string()))?,
            bn: batch_norm2d(channels, vb.pp((conv_at + 1).to_string()))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.after_conv(&self.conv, x, train)
    }
}

/// One ShuffleNetV2 unit. Stride 1: the input's second half goes through `branch2` and the
/// first half passes unchanged. Stride 2: both branches see the whole input. The halves
/// are then interleaved (concatenation + channel shuffle with 2 groups).
struct InvertedResidual {
    /// Stride 2 only: depthwise 3×3/2 + BN, then 1×1 + BN + ReLU.
    branch1: Option<(DepthwiseBn, PointwiseRelu)>,
    /// 1×1 + BN + ReLU, depthwise 3×3 + BN, 1×1 + BN + ReLU.
    branch2: (PointwiseRelu, DepthwiseBn, PointwiseRelu),
}

impl InvertedResidual {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        kind: &ConvKind,
        vb: VarBuilder,
    ) -> Result<Self> {
        if !cout.is_multiple_of(2) {
            candle_core::bail!(
                "shufflenetv2: stage width {cout} must be even (it is split in two halves)"
            );
        }
        let half = cout / 2;
        if stride == 1 && cin != cout {
            candle_core::bail!("shufflenetv2: a stride-1 unit needs equal input and output widths ({cin} vs {cout})");
        }
        let branch1 = if stride > 1 {
            let b1 = vb.pp("branch1");
            Some((
                DepthwiseBn::new(cin, stride, &b1, 0)?,
                PointwiseRelu::new(cin, half, kind, &b1, 2)?,
            ))
        } else {
            None
        };
        let b2 = vb.pp("branch2");
        let b2_in = if stride > 1 { cin } else { half };
        let branch2 = (
            PointwiseRelu::new(b2_in, half, kind, &b2, 0)?,
            DepthwiseBn::new(half, stride, &b2, 3)?,
            PointwiseRelu::new(half, half, kind, &b2, 5)?,
        );
        Ok(Self { branch1, branch2 })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // Stride 1: the whole input goes to `interleave`, which keeps its first half.
        let (kept, into_branch2) = match &self.branch1 {
            Some((dw, pw)) => (pw.forward_t(&dw.forward_t(x, train)?, train)?, x.clone()),
            None => (x.clone(), second_half(x)?),
        };
        let (a, dw, b) = &self.branch2;
        let y = a.forward_t(&into_branch2, train)?;
        let y = b.forward_t(&dw.forward_t(&y, train)?, train)?;
        interleave(&kept, &y)
    }
}

/// The ShuffleNetV2 backbone.
pub struct ShuffleNetV2 {
    stem: (ConvLayer, BatchNorm2d),
    max_pool: bool,
    units: Vec<InvertedResidual>,
    last: (ConvLayer, BatchNorm2d),
    feature_dim: usize,
    /// The last stage's output is taken after `conv5`, so its width is the final one.
    stages: Stages,
}

impl ShuffleNetV2 {
    pub fn new(cfg: &ModelConfig, kind: &ConvKind, vb: VarBuilder) -> Result<Self> {
        let stages = cfg.depths.len();
        if stages == 0 || cfg.widths.len() != stages + 2 {
            candle_core::bail!(
                "shufflenetv2 needs widths = [stem, one per stage…, final] (stages + 2 values) and one depth per stage; got widths {:?} and depths {:?} (1.0×: widths {:?}, depths {:?})",
                cfg.widths,
                cfg.depths,
                REFERENCE_1X.0,
                REFERENCE_1X.1
            );
        }
        let stem_width = cfg.widths[0];
        let stride = match cfg.stem {
            Stem::Cifar => 1,
            Stem::Imagenet => 2,
        };
        let stem = (
            kind.conv(CHANNELS, stem_width, 3, stride, 1, vb.pp("conv1.0"))?,
            batch_norm2d(stem_width, vb.pp("conv1.1"))?,
        );
        let mut units = Vec::new();
        let mut cin = stem_width;
        for (s, (&width, &depth)) in cfg.widths[1..=stages].iter().zip(&cfg.depths).enumerate() {
            for i in 0..depth {
                let vb_unit = vb.pp(format!("stage{}.{i}", s + 2));
                units.push(InvertedResidual::new(
                    cin,
                    width,
                    if i == 0 { 2 } else { 1 },
                    kind,
                    vb_unit,
                )?);
                cin = width;
            }
        }
        let feature_dim = cfg.widths[stages + 1];
        let last = (
            kind.conv(cin, feature_dim, 1, 1, 0, vb.pp("conv5.0"))?,
            batch_norm2d(feature_dim, vb.pp("conv5.1"))?,
        );
        Ok(Self {
            stem,
            max_pool: cfg.stem == Stem::Imagenet,
            units,
            last,
            feature_dim,
            stages: Stages::new(
                &cfg.depths,
                cfg.widths[1..stages]
                    .iter()
                    .copied()
                    .chain([feature_dim])
                    .collect(),
            ),
        })
    }
}

impl ShuffleNetV2 {
    /// The pooled output, and the pooled output of every stage when `stages` is given (the
    /// last stage's taken after `conv5`, so it is the output).
    fn run(&self, x: &Tensor, train: bool, mut stages: Option<&mut Vec<Tensor>>) -> Result<Tensor> {
        let mut y = self
            .stem
            .1
            .after_conv_relu(self.stem.0.as_ref(), x, train)?;
        if self.max_pool {
            y = max_pool_3x3_s2(&y)?;
        }
        for (i, u) in self.units.iter().enumerate() {
            y = u.forward_t(&y, train)?;
            self.stages.tap(i, self.units.len(), &y, &mut stages)?;
        }
        let y = self
            .last
            .1
            .after_conv_relu(self.last.0.as_ref(), &y, train)?;
        y.mean((2, 3))
    }
}

impl Backbone for ShuffleNetV2 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.run(x, train, None)
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn stage_features_t(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        self.stages.collect(|out| self.run(x, train, out))
    }

    fn stage_dims(&self) -> Vec<usize> {
        self.stages.dims()
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::run::Arch;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::model::layers::conv_layer::ConvKind;

    fn config(widths: &[usize], depths: &[usize], stem: Stem) -> ModelConfig {
        ModelConfig::conv(Arch::ShuffleNetV2, widths, depths, stem)
    }

    /// The 1.0× network has torchvision's parameter count without its classifier
    /// (2,278,604 − 1024·1000 − 1000 = 1,253,604), and gives one feature row per image.
    #[test]
    fn reference_width_matches_torchvision_parameter_count() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let (w, d) = REFERENCE_1X;
        let net = ShuffleNetV2::new(&config(&w, &d, Stem::Imagenet), &ConvKind::Plain, vb).unwrap();
        let trainable: usize = map
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, v)| v.elem_count())
            .sum();
        assert_eq!(trainable, 1_253_604);
        let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, 1024]);
    }

    #[test]
    fn bad_layouts_are_refused_with_the_expected_shape() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let err = ShuffleNetV2::new(
            &config(&[24, 116], &[4, 8, 4], Stem::Cifar),
            &ConvKind::Plain,
            vb,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("stages + 2"), "{err}");
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let err = ShuffleNetV2::new(
            &config(&[8, 15, 32], &[1], Stem::Cifar),
            &ConvKind::Plain,
            vb,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("even"), "{err}");
    }
}
