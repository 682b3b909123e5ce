//! The CPU convolution kernels (groups = 1 and depthwise) behind one interface on raw
//! slices, and the one candle custom op that runs any of them. [`super::conv_bn`] runs the
//! same kernels inside its fused op, so a kernel is written once and wrapped twice.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::buffers::{contiguous_f32, with_f32};

/// Input gradient and weight gradient of a kernel's backward pass, where computed.
pub type ConvGrads = (Option<Vec<f32>>, Option<Vec<f32>>);

/// A CPU convolution kernel that runs on contiguous f32 slices.
pub trait SliceConv: Send + Sync {
    /// Name of the custom op that runs it on its own.
    fn name(&self) -> &'static str;
    /// Output shape for the input and weight layouts (checking they fit).
    fn out_shape(&self, x: &Layout, w: &Layout) -> Result<Shape>;
    fn forward_slices(&self, x: &[f32], xl: &Layout, w: &[f32], wl: &Layout) -> Result<Vec<f32>>;
    /// Input gradient (if `want_dx`) and weight gradient (always when `want_dw`; a kernel
    /// may compute it regardless).
    fn backward_slices(
        &self,
        x: (&[f32], &Layout),
        w: (&[f32], &Layout),
        dy: &[f32],
        want_dx: bool,
        want_dw: bool,
    ) -> Result<ConvGrads>;
}

/// A [`SliceConv`] as a candle custom op: operands `(input, weight)`.
pub(crate) struct SliceConvOp<K>(pub K);

impl<K: SliceConv> CustomOp2 for SliceConvOp<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = self.0.out_shape(l1, l2)?;
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "weight")?;
        let y = self.0.forward_slices(x, l1, w, l2)?;
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (want_dx, want_dw) = (x.track_op(), w.track_op());
        let (dx, dw) = with_f32([x, w, grad], |[xv, wv, gv]| {
            self.0
                .backward_slices((xv, x.layout()), (wv, w.layout()), gv, want_dx, want_dw)
        })?;
        let dev = x.device();
        Ok((
            dx.map(|v| Tensor::from_vec(v, x.dims(), dev)).transpose()?,
            dw.map(|v| Tensor::from_vec(v, w.dims(), dev)).transpose()?,
        ))
    }
}
