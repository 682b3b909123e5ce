//! Pooling shared by the networks' stems.

use candle_core::{Result, Tensor};

/// The ImageNet stems' 3×3 stride-2 max-pool with padding 1 (edge values repeated, which
/// gives the same maxima as PyTorch's −∞ padding).
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    x.pad_with_same(2, 1, 1)?
        .pad_with_same(3, 1, 1)?
        .max_pool2d_with_stride(3, 2)
}
