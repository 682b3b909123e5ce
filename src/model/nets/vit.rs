//! The ViT image tower of BioMedCLIP (ViT-B/16: patch 16, width 768, 12 blocks of 12 heads,
//! MLP ×4, pre-norm, class token, learned position embeddings, LayerNorm ε = 1e-6) with
//! width, depth, heads and patch size configurable for the scaled-down teachers of the
//! smoke profile. The pooled feature is the final-normed class token.
//!
//! Parameter names follow timm (`patch_embed.proj`, `cls_token`, `pos_embed`,
//! `blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`, `blocks.N.mlp.fc1`, `norm`),
//! which is what open_clip's BioMedCLIP checkpoint uses under `visual.trunk.`.
//!
//! `widths = [embedding width]`, `depths = [blocks]`, plus `patch_size` and `heads`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{layer_norm, linear, Init, LayerNorm, LayerNormConfig, Linear, VarBuilder};

use crate::data::CHANNELS;
use crate::model::cost;
use crate::model::layers::conv::{conv2d_no_bias, Conv2d};
use crate::model::Backbone;
use crate::spec::run::ModelConfig;

/// ViT-B/16 as in BioMedCLIP: (width, blocks, heads, patch).
pub const VIT_B16: (usize, usize, usize, usize) = (768, 12, 12, 16);

const LN_EPS: f64 = 1e-6;

fn norm(dim: usize, vb: VarBuilder) -> Result<LayerNorm> {
    layer_norm(
        dim,
        LayerNormConfig {
            eps: LN_EPS,
            ..Default::default()
        },
        vb,
    )
}

/// `x · Wᵀ + b`, counted for the cost model.
fn apply_linear(l: &Linear, x: &Tensor) -> Result<Tensor> {
    let (out, inp) = l.weight().dims2()?;
    cost::record_macs((x.elem_count() / inp * out * inp) as u64);
    l.forward(x)
}

struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let dh = d / self.heads;
        let qkv = apply_linear(&self.qkv, x)?
            .reshape((b, n, 3, self.heads, dh))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        // Q·Kᵀ and A·V.
        cost::record_macs(2 * (b * self.heads * n * n * dh) as u64);
        let att = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?;
        apply_linear(&self.proj, &y)
    }
}

struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = 4 * dim;
        Ok(Self {
            norm1: norm(dim, vb.pp("norm1"))?,
            attn: Attention {
                qkv: linear(dim, 3 * dim, vb.pp("attn.qkv"))?,
                proj: linear(dim, dim, vb.pp("attn.proj"))?,
                heads,
            },
            norm2: norm(dim, vb.pp("norm2"))?,
            fc1: linear(dim, hidden, vb.pp("mlp.fc1"))?,
            fc2: linear(hidden, dim, vb.pp("mlp.fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?)?)?;
        let h = apply_linear(&self.fc1, &self.norm2.forward(&x)?)?.gelu_erf()?;
        &x + apply_linear(&self.fc2, &h)?
    }
}

/// The ViT backbone.
pub struct VisionTransformer {
    patch: Conv2d,
    patch_bias: Tensor,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    dim: usize,
    image_size: usize,
}

impl VisionTransformer {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (Some(patch_size), Some(heads), Some(image_size)) =
            (cfg.patch_size, cfg.heads, cfg.image_size)
        else {
            candle_core::bail!("vit needs patch_size, heads and the image size");
        };
        let (dim, depth) = match (cfg.widths.as_slice(), cfg.depths.as_slice()) {
            ([w], [d]) => (*w, *d),
            _ => candle_core::bail!(
                "vit needs widths = [embedding width] and depths = [blocks] (ViT-B/16: [768] and [12])"
            ),
        };
        if patch_size == 0 || !image_size.is_multiple_of(patch_size) {
            candle_core::bail!(
                "vit: image size {image_size} is not a multiple of patch_size {patch_size}"
            );
        }
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!("vit: width {dim} is not a multiple of heads {heads}");
        }
        let tokens = (image_size / patch_size).pow(2) + 1;
        let small = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let pe = vb.pp("patch_embed.proj");
        Ok(Self {
            patch: conv2d_no_bias(CHANNELS, dim, patch_size, patch_size, 0, pe.clone())?,
            patch_bias: pe.get_with_hints(dim, "bias", Init::Const(0.0))?,
            cls_token: vb.get_with_hints((1, 1, dim), "cls_token", small)?,
            pos_embed: vb.get_with_hints((1, tokens, dim), "pos_embed", small)?,
            blocks: (0..depth)
                .map(|i| Block::new(dim, heads, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<_>>()?,
            norm: norm(dim, vb.pp("norm"))?,
            dim,
            image_size,
        })
    }
}

impl Backbone for VisionTransformer {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        if h != self.image_size || w != self.image_size {
            candle_core::bail!(
                "this ViT was built for {0}×{0} images (its position embeddings), got {h}×{w}",
                self.image_size
            );
        }
        let p = self
            .patch
            .forward(x)?
            .broadcast_add(&self.patch_bias.reshape((1, self.dim, 1, 1))?)?;
        let tokens = p.flatten_from(2)?.transpose(1, 2)?;
        let cls = self.cls_token.broadcast_as((b, 1, self.dim))?;
        let mut y = Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(&self.pos_embed)?;
        for blk in &self.blocks {
            y = blk.forward(&y)?;
        }
        self.norm.forward(&y.narrow(1, 0, 1)?.squeeze(1)?)
    }

    fn feature_dim(&self) -> usize {
        self.dim
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::spec::run::{Arch, Stem};

    fn config(dim: usize, depth: usize, heads: usize, patch: usize, image: usize) -> ModelConfig {
        let mut cfg = ModelConfig::conv(Arch::Vit, &[dim], &[depth], Stem::Cifar);
        cfg.patch_size = Some(patch);
        cfg.heads = Some(heads);
        cfg.image_size = Some(image);
        cfg
    }

    /// timm's ViT-B/16 without its classifier: 86,567,656 − (768·1000 + 1000).
    #[test]
    fn vit_b16_has_timms_parameter_count() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let (dim, depth, heads, patch) = VIT_B16;
        let net = VisionTransformer::new(&config(dim, depth, heads, patch, 224), vb).unwrap();
        let params: usize = map.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(params, 85_798_656);
        assert_eq!(net.feature_dim(), 768);
    }

    /// Pooled features of a tiny ViT against `tests/reference/vit_forward.py` (PyTorch,
    /// float64), with every weight set by the same formula of its name.
    #[test]
    fn forward_matches_pytorch() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let net = VisionTransformer::new(&config(8, 2, 2, 4, 8), vb).unwrap();
        for (name, var) in map.data().lock().unwrap().iter() {
            let off: usize = name.bytes().map(|b| b as usize).sum();
            let norm_gain = name.contains("norm") && name.ends_with(".weight");
            let v: Vec<f32> = (0..var.elem_count())
                .map(|i| {
                    let x = 0.05 * (((i * 7 + off) % 17) as f64 - 8.0);
                    (if norm_gain { x + 1.0 } else { x }) as f32
                })
                .collect();
            var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                .unwrap();
        }
        let x: Vec<f32> = (0..2 * 3 * 8 * 8)
            .map(|i| (0.1 * i as f64).sin() as f32)
            .collect();
        let x = Tensor::from_vec(x, (2, 3, 8, 8), &dev).unwrap();
        let got = net
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want = [
            -1.3387192863,
            0.3234608099,
            0.7128538858,
            1.2400202571,
            -1.3093824644,
            -0.7360811845,
            0.0438202834,
            0.6967417498,
            -1.2106557317,
            0.3334687497,
            0.5892916095,
            1.2282481840,
            -1.3236220905,
            -0.7968022995,
            0.0961624327,
            0.7890443389,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-4, "{got:?}");
        }
        assert!(net
            .forward_t(
                &Tensor::zeros((1, 3, 12, 12), DType::F32, &dev).unwrap(),
                false
            )
            .unwrap_err()
            .to_string()
            .contains("8×8"));
    }
}
