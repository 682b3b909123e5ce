//! ResNets with configurable widths and depths: BasicBlocks (ResNet-18/34 layout, arch
//! `resnet`) and Bottlenecks (ResNet-50/101 layout, arch `resnet_bottleneck`, the paper's
//! foundation model). The same code builds the paper-scale networks (ResNet-18: widths
//! 64/128/256/512, depths 2/2/2/2; ResNet-50: the same widths, depths 3/4/6/3, ImageNet
//! stem) and the tiny width-scaled networks of the smoke profile (CIFAR stem for 28–32 px).
//! Parameter names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, ...`downsample.0`)
//! so PyTorch checkpoints (e.g. RadImageNet's ResNet-50) map onto them directly.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::data::CHANNELS;
use crate::model::layers::batch_norm::{batch_norm2d, BatchNorm2d as BatchNorm};
use crate::model::layers::conv_layer::{ConvKind, ConvLayer};
use crate::model::layers::pool::max_pool_3x3_s2;
use crate::model::layers::stages::Stages;
use crate::model::Backbone;
use crate::spec::run::{ModelConfig, Stem};

fn bn(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm2d(channels, vb)
}

/// Which residual block the stages are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convolutions (ResNet-18/34).
    Basic,
    /// 1×1 reduce, 3×3, 1×1 expand ×4 (ResNet-50/101); stride on the 3×3 as torchvision.
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// A layer's convolutions, all made by one [`ConvKind`].
struct Convs<'a>(&'a ConvKind);

impl Convs<'_> {
    fn conv(
        &self,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<ConvLayer> {
        self.0.conv(cin, cout, k, stride, k / 2, vb)
    }
}

/// A residual block: its convolutions with their batch norms (ReLU after all but the last,
/// whose output is added to the identity or 1×1-projection shortcut before the ReLU).
struct ResidualBlock {
    layers: Vec<(ConvLayer, BatchNorm)>,
    downsample: Option<(ConvLayer, BatchNorm)>,
}

impl ResidualBlock {
    /// `width` is the block's inner width; it outputs `width · expansion` channels.
    fn new(
        block: Block,
        cin: usize,
        width: usize,
        stride: usize,
        convs: &Convs,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cout = width * block.expansion();
        let downsample = if stride != 1 || cin != cout {
            Some((
                convs.conv(cin, cout, 1, stride, vb.pp("downsample.0"))?,
                bn(cout, vb.pp("downsample.1"))?,
            ))
        } else {
            None
        };
        // (cin, cout, kernel, stride) of conv1, conv2, ...
        let shapes = match block {
            Block::Basic => vec![(cin, cout, 3, stride), (cout, cout, 3, 1)],
            Block::Bottleneck => vec![
                (cin, width, 1, 1),
                (width, width, 3, stride),
                (width, cout, 1, 1),
            ],
        };
        let layers = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (a, b, k, s))| {
                Ok((
                    convs.conv(a, b, k, s, vb.pp(format!("conv{}", i + 1)))?,
                    bn(b, vb.pp(format!("bn{}", i + 1)))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, downsample })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (last, inner) = self.layers.split_last().expect("a block has convolutions");
        let mut y = x.clone();
        for (c, b) in inner {
            y = b.after_conv_relu(c.as_ref(), &y, train)?;
        }
        let shortcut = match &self.downsample {
            Some((c, b)) => b.after_conv(c.as_ref(), x, train)?,
            None => x.clone(),
        };
        last.1
            .after_conv_add_relu(last.0.as_ref(), &y, &shortcut, train)
    }
}

/// The ResNet backbone: stem, stages of residual blocks, global average pool.
pub struct ResNet {
    conv1: ConvLayer,
    bn1: BatchNorm,
    max_pool: bool,
    blocks: Vec<ResidualBlock>,
    feature_dim: usize,
    stages: Stages,
}

impl ResNet {
    pub fn new(cfg: &ModelConfig, block: Block, kind: &ConvKind, vb: VarBuilder) -> Result<Self> {
        let convs = Convs(kind);
        if cfg.widths.is_empty() || cfg.widths.len() != cfg.depths.len() {
            candle_core::bail!(
                "resnet needs as many widths as depths (got {:?} and {:?})",
                cfg.widths,
                cfg.depths
            );
        }
        let w0 = cfg.widths[0];
        let (conv1, max_pool) = match cfg.stem {
            Stem::Cifar => (convs.conv(CHANNELS, w0, 3, 1, vb.pp("conv1"))?, false),
            Stem::Imagenet => (convs.conv(CHANNELS, w0, 7, 2, vb.pp("conv1"))?, true),
        };
        let bn1 = bn(w0, vb.pp("bn1"))?;
        let mut blocks = Vec::new();
        let mut cin = w0;
        for (stage, (&width, &depth)) in cfg.widths.iter().zip(&cfg.depths).enumerate() {
            for i in 0..depth {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let vb_block = vb.pp(format!("layer{}.{i}", stage + 1));
                blocks.push(ResidualBlock::new(
                    block, cin, width, stride, &convs, vb_block,
                )?);
                cin = width * block.expansion();
            }
        }
        Ok(Self {
            conv1,
            bn1,
            max_pool,
            blocks,
            feature_dim: cin,
            stages: Stages::new(
                &cfg.depths,
                cfg.widths.iter().map(|w| w * block.expansion()).collect(),
            ),
        })
    }

    /// The pooled output, and the pooled output of every stage when `stages` is given.
    fn run(&self, x: &Tensor, train: bool, mut stages: Option<&mut Vec<Tensor>>) -> Result<Tensor> {
        let mut y = self.bn1.after_conv_relu(self.conv1.as_ref(), x, train)?;
        if self.max_pool {
            y = max_pool_3x3_s2(&y)?;
        }
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.forward_t(&y, train)?;
            self.stages.tap(i, self.blocks.len(), &y, &mut stages)?;
        }
        y.mean((2, 3))
    }
}

impl Backbone for ResNet {
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

    fn params(cfg: &ModelConfig, block: Block) -> (usize, usize) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = ResNet::new(cfg, block, &ConvKind::Plain, vb).unwrap();
        let n = map
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(_, v)| v.elem_count())
            .sum();
        (n, net.feature_dim())
    }

    /// torchvision's ResNet-50 and ResNet-18 without their classifiers:
    /// 25,557,032 − 2,049,000 and 11,689,512 − 513,000.
    #[test]
    fn paper_layouts_have_torchvisions_parameter_counts() {
        let w = [64, 128, 256, 512];
        let r50 = ModelConfig::conv(Arch::ResnetBottleneck, &w, &[3, 4, 6, 3], Stem::Imagenet);
        assert_eq!(params(&r50, Block::Bottleneck), (23_508_032, 2048));
        let r18 = ModelConfig::conv(Arch::Resnet, &w, &[2, 2, 2, 2], Stem::Imagenet);
        assert_eq!(params(&r18, Block::Basic), (11_176_512, 512));
    }
}
