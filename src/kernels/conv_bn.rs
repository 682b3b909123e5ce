//! A convolution kernel and the batch norm after it (and its ReLU) as one CPU custom op.
//!
//! candle's backward pass accumulates every gradient into a zero-filled tensor with an
//! addition, and keeps it until the pass ends. Run as two ops, each convolution's output
//! was such a node: a full-size zero fill, an addition and an extra live gradient per
//! layer. Fused, the convolution's output gradient goes straight from the batch norm's
//! backward into the convolution's, inside the op. The kernels are the same ones the
//! separate ops run ([`SliceConv`], [`FusedBatchNorm`]), so the numbers are identical.
//! Which layers use it, and when, is the layers' decision.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::batch_norm::FusedBatchNorm;
use super::buffers::{contiguous_f32, with_f32};
use super::slice_conv::SliceConv;

/// Operands: the input, the weight as the kernel reads it, and `[γ; β]`.
pub struct ConvBn {
    kernel: Box<dyn SliceConv>,
    bn: FusedBatchNorm,
    /// The convolution's output, which the batch norm's backward needs. Kept (not taken)
    /// so a graph can be differentiated more than once.
    conv_out: Mutex<Option<Vec<f32>>>,
}

impl ConvBn {
    /// The op running `kernel` and then `bn` (whose statistics the caller reads after the
    /// forward).
    pub fn new(kernel: Box<dyn SliceConv>, bn: FusedBatchNorm) -> Self {
        ConvBn {
            kernel,
            bn,
            conv_out: Mutex::new(None),
        }
    }
}

impl CustomOp3 for ConvBn {
    fn name(&self) -> &'static str {
        "conv-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "weight")?;
        let gb = contiguous_f32(s3, l3, "batch-norm weight and bias")?;
        let shape = self.kernel.out_shape(l1, l2)?;
        let (b, c, h, wd) = shape.dims4()?;
        if gb.len() != 2 * c {
            candle_core::bail!(
                "conv_bn: {} batch-norm parameters for {c} channels",
                gb.len()
            );
        }
        let y = self.kernel.forward_slices(x, l1, w, l2)?;
        let out = self.bn.forward(&y, gb, None, (b, c, h * wd));
        *self.conv_out.lock().expect("conv output") = Some(y);
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, wd) = out.dims4()?;
        let saved = self.conv_out.lock().expect("conv output");
        let Some(y) = saved.as_ref() else {
            candle_core::bail!("conv_bn: backward before forward");
        };
        let (dx, dw, dgb) = with_f32([x, w, gb, out, grad], |[xv, wv, gbv, ov, gv]| {
            let (dy, dgb, _) = self.bn.backward(y, gbv, ov, gv, (b, c, h * wd));
            let (dx, dw) = self.kernel.backward_slices(
                (xv, x.layout()),
                (wv, w.layout()),
                &dy,
                x.track_op(),
                true,
            )?;
            let Some(dw) = dw else {
                candle_core::bail!("conv_bn: the kernel returned no weight gradient");
            };
            Ok((dx, dw, dgb))
        })?;
        let dev = x.device();
        Ok((
            dx.map(|v| Tensor::from_vec(v, x.dims(), dev)).transpose()?,
            Some(Tensor::from_vec(dw, w.dims(), dev)?),
            Some(Tensor::from_vec(dgb, gb.dims(), dev)?),
        ))
    }
}
