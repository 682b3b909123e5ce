//! Networks, one per file, built from a candle `VarBuilder` so parameter names are the
//! checkpoint keys. [`init`] provides the seeded variable initialisation that makes CPU
//! runs reproducible bit for bit.

pub mod batch_norm;
pub mod conv;
pub mod conv_cpu;
pub mod depthwise;
pub mod gemm;
pub mod heads;
pub mod init;
pub mod resnet;
mod simd;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::spec::run::ModelConfig;

/// Architectures the harness can build, as named in experiment files.
pub const ARCHS: &[&str] = &["resnet"];

/// A feature extractor: images `B × 3 × H × W` → pooled features `B × feature_dim`.
pub trait Backbone: Send + Sync {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    fn feature_dim(&self) -> usize;
}

/// Build the backbone named by `cfg.arch` (validated beforehand against [`ARCHS`]).
pub fn build_backbone(cfg: &ModelConfig, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
    match cfg.arch.as_str() {
        "resnet" => Ok(Box::new(resnet::ResNet::new(cfg, vb)?)),
        other => candle_core::bail!("unknown architecture `{other}` (known: {ARCHS:?})"),
    }
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

/// Run `f` on the f32 elements of a CPU tensor, copying only if it is not contiguous.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = if t.is_contiguous() {
        t.clone()
    } else {
        t.contiguous()?
    };
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => f(contiguous_f32(s, layout, "tensor")?),
        _ => candle_core::bail!("fused CPU kernel called on a non-CPU tensor"),
    }
}
