//! ResNet with BasicBlocks (ResNet-18/34 layout) and configurable widths and depths, so the
//! same code builds the paper-scale ResNet-18 (64/128/256/512, depths 2/2/2/2, ImageNet stem)
//! and the tiny width-scaled networks of the smoke profile (CIFAR stem for 28–32 px).
//! Parameter names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, ...`downsample.0`)
//! so PyTorch checkpoints map onto them directly.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::batch_norm::{batch_norm2d, BatchNorm2d as BatchNorm};
use super::conv::{conv2d_no_bias, Conv2d};
use super::{max_pool_3x3_s2, Backbone};
use crate::data::CHANNELS;
use crate::spec::run::{ModelConfig, Stem};

fn bn(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm2d(channels, vb)
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d_no_bias(cin, cout, k, stride, k / 2, vb)
}

/// Two 3×3 convolutions with an identity (or 1×1 projection) shortcut.
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let downsample = if stride != 1 || cin != cout {
            Some((
                conv(cin, cout, 1, stride, vb.pp("downsample.0"))?,
                bn(cout, vb.pp("downsample.1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: conv(cin, cout, 3, stride, vb.pp("conv1"))?,
            bn1: bn(cout, vb.pp("bn1"))?,
            conv2: conv(cout, cout, 3, 1, vb.pp("conv2"))?,
            bn2: bn(cout, vb.pp("bn2"))?,
            downsample,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.after_conv_relu(&self.conv1, x, train)?;
        let shortcut = match &self.downsample {
            Some((c, b)) => b.after_conv(c, x, train)?,
            None => x.clone(),
        };
        self.bn2
            .after_conv_add_relu(&self.conv2, &y, &shortcut, train)
    }
}

/// The ResNet backbone: stem, stages of BasicBlocks, global average pool.
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    max_pool: bool,
    blocks: Vec<BasicBlock>,
    feature_dim: usize,
}

impl ResNet {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.widths.is_empty() || cfg.widths.len() != cfg.depths.len() {
            candle_core::bail!(
                "resnet needs as many widths as depths (got {:?} and {:?})",
                cfg.widths,
                cfg.depths
            );
        }
        let w0 = cfg.widths[0];
        let (conv1, max_pool) = match cfg.stem {
            Stem::Cifar => (conv(CHANNELS, w0, 3, 1, vb.pp("conv1"))?, false),
            Stem::Imagenet => (conv(CHANNELS, w0, 7, 2, vb.pp("conv1"))?, true),
        };
        let bn1 = bn(w0, vb.pp("bn1"))?;
        let mut blocks = Vec::new();
        let mut cin = w0;
        for (stage, (&width, &depth)) in cfg.widths.iter().zip(&cfg.depths).enumerate() {
            for i in 0..depth {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let vb_block = vb.pp(format!("layer{}.{i}", stage + 1));
                blocks.push(BasicBlock::new(cin, width, stride, vb_block)?);
                cin = width;
            }
        }
        Ok(Self {
            conv1,
            bn1,
            max_pool,
            blocks,
            feature_dim: cin,
        })
    }
}

impl Backbone for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = self.bn1.after_conv_relu(&self.conv1, x, train)?;
        if self.max_pool {
            y = max_pool_3x3_s2(&y)?;
        }
        for b in &self.blocks {
            y = b.forward_t(&y, train)?;
        }
        y.mean((2, 3))
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }
}
