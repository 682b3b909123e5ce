//! Depthwise convolution (groups = channels, one `k×k` filter per channel), the spatial
//! convolution of ShuffleNetV2/MobileNet-style students: on the CPU its own kernel
//! ([`crate::kernels::depthwise`]), since candle's grouped convolution is one convolution per
//! group; other devices use candle's grouped `conv2d`.
//!
//! The weight has PyTorch's layout `(C, 1, k, k)` under the name `weight`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::kaiming_weight;
use super::conv_bn::FusableConv;
use crate::kernels::conv::ConvGeometry;
use crate::kernels::depthwise::DepthwiseOp;
use crate::kernels::slice_conv::{SliceConv, SliceConvOp};

#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    weight: Tensor,
    channels: usize,
    geometry: ConvGeometry,
}

/// A bias-free depthwise convolution with PyTorch's default initialisation (Kaiming-uniform
/// with a = √5 over the fan-in `k·k`).
pub fn depthwise_conv2d(
    channels: usize,
    geometry: ConvGeometry,
    vb: VarBuilder,
) -> Result<DepthwiseConv2d> {
    let k = geometry.k;
    let weight = kaiming_weight((channels, 1, k, k), &vb)?;
    Ok(DepthwiseConv2d {
        weight,
        channels,
        geometry,
    })
}

impl DepthwiseConv2d {
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl FusableConv for DepthwiseConv2d {
    fn cpu_kernel(&self, _x: &Tensor) -> Result<Option<(Box<dyn SliceConv>, Tensor)>> {
        let k = self.geometry.k;
        let w = self.weight.reshape((self.channels, k * k))?;
        Ok(Some((Box::new(DepthwiseOp(self.geometry)), w)))
    }

    fn dense(&self) -> bool {
        false
    }
}

impl Module for DepthwiseConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, _, _) = x.dims4()?;
        if c != self.channels {
            candle_core::bail!("depthwise conv expects {} channels, got {c}", self.channels);
        }
        let g = self.geometry;
        let (b, _, h, w) = x.dims4()?;
        crate::model::cost::record_macs(
            (b * c * g.out_len(h).unwrap_or(0) * g.out_len(w).unwrap_or(0) * g.k * g.k) as u64,
        );
        if x.device().is_cpu() {
            let w = self.weight.reshape((c, g.k * g.k))?.contiguous()?;
            return x.contiguous()?.apply_op2(&w, SliceConvOp(DepthwiseOp(g)));
        }
        x.conv2d(&self.weight, g.padding, g.stride, g.dilation, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::{
        as64, assert_matches, check_finite_differences, direct_conv, probe_loss, vec,
    };
    use candle_core::{Device, Var};

    /// (batch, channels, h, w, k, stride, padding, dilation)
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

    fn geometry(case: Case) -> ConvGeometry {
        ConvGeometry {
            k: case.4,
            stride: case.5,
            padding: case.6,
            dilation: case.7,
        }
    }

    /// The direct-loop reference for `case`: a grouped convolution with one group per channel.
    fn naive(case: Case, x: &[f32], w: &[f32], probe: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (b, c, h, wd, ..) = case;
        direct_conv(x, (b, c, h, wd), w, c, c, geometry(case), probe)
    }

    fn run(case: Case, x: &Var, w: &Var, probe: &Tensor) -> (Tensor, Tensor, Tensor) {
        let conv = DepthwiseConv2d {
            weight: w.as_tensor().clone(),
            channels: case.1,
            geometry: geometry(case),
        };
        let y = conv.forward(x.as_tensor()).unwrap();
        let grads = (&y * probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap().clone();
        let gw = grads.get(w.as_tensor()).unwrap().clone();
        (y, gx, gw)
    }

    const CASES: &[Case] = &[
        (2, 3, 8, 8, 3, 1, 1, 1),
        (1, 4, 7, 7, 3, 2, 1, 1),
        (3, 2, 9, 6, 5, 1, 2, 1),
        (2, 5, 11, 11, 7, 2, 3, 1),
        (2, 3, 10, 10, 3, 1, 2, 2),
        (1, 6, 5, 5, 1, 1, 0, 1),
        (4, 8, 6, 6, 3, 1, 1, 1),
        (2, 3, 9, 10, 3, 2, 0, 2),
        (1, 2, 10, 9, 3, 3, 1, 1),
        (2, 2, 8, 8, 5, 2, 2, 1),
    ];

    /// Forward and both gradients against direct loops, for kernel sizes 1/3/5/7, strides
    /// 1/2/3, dilation 2 (also strided), odd and non-square shapes, batch 1.
    #[test]
    fn depthwise_matches_direct_loops() {
        let dev = Device::Cpu;
        for &case in CASES {
            let (b, c, h, wd, k, ..) = case;
            let g = geometry(case);
            let x = Var::randn(0f32, 1.0, (b, c, h, wd), &dev).unwrap();
            let w = Var::randn(0f32, 1.0, (c, 1, k, k), &dev).unwrap();
            let probe = Tensor::randn(
                0f32,
                1.0,
                (b, c, g.out_len(h).unwrap(), g.out_len(wd).unwrap()),
                &dev,
            )
            .unwrap();
            let (y, gx, gw) = run(case, &x, &w, &probe);
            let (ry, rgx, rgw) =
                naive(case, &vec(x.as_tensor()), &vec(w.as_tensor()), &vec(&probe));
            assert_matches(&format!("{case:?}"), [&y, &gx, &gw], [&ry, &rgx, &rgw]);
        }
    }

    /// Against candle's own grouped conv2d and its autograd (stride 1, where candle's
    /// backward sizes are right).
    #[test]
    fn depthwise_matches_candle_grouped_conv() {
        let dev = Device::Cpu;
        for &case in CASES.iter().filter(|c| c.5 == 1) {
            let (b, c, h, wd, k, _, p, dl) = case;
            let x = Var::randn(0f32, 1.0, (b, c, h, wd), &dev).unwrap();
            let w = Var::randn(0f32, 1.0, (c, 1, k, k), &dev).unwrap();
            let yc = x.as_tensor().conv2d(w.as_tensor(), p, 1, dl, c).unwrap();
            let probe = Tensor::randn(0f32, 1.0, yc.dims(), &dev).unwrap();
            let gc = (&yc * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (y, gx, gw) = run(case, &x, &w, &probe);
            let want = [
                as64(&yc),
                as64(gc.get(x.as_tensor()).unwrap()),
                as64(gc.get(w.as_tensor()).unwrap()),
            ];
            assert_matches(
                &format!("{case:?}"),
                [&y, &gx, &gw],
                [&want[0], &want[1], &want[2]],
            );
        }
    }

    /// Central finite differences of `Σ y·probe` for a few input and weight entries.
    #[test]
    fn depthwise_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let case: Case = (2, 3, 7, 6, 3, 2, 1, 1);
        let g = geometry(case);
        let x = Var::randn(0f32, 1.0, (2, 3, 7, 6), &dev).unwrap();
        let w = Var::randn(0f32, 1.0, (3, 1, 3, 3), &dev).unwrap();
        let probe = Tensor::randn(
            0f32,
            1.0,
            (2, 3, g.out_len(7).unwrap(), g.out_len(6).unwrap()),
            &dev,
        )
        .unwrap();
        let (_, gx, gw) = run(case, &x, &w, &probe);
        let loss = |xv: &[f32], wv: &[f32]| {
            let xt = Var::from_tensor(&Tensor::from_slice(xv, x.dims(), &dev).unwrap()).unwrap();
            let wt = Var::from_tensor(&Tensor::from_slice(wv, w.dims(), &dev).unwrap()).unwrap();
            let (y, _, _) = run(case, &xt, &wt, &probe);
            probe_loss(&y, &probe)
        };
        let (xv, wv) = (vec(x.as_tensor()), vec(w.as_tensor()));
        let dx_loss = |v: &[f32]| loss(v, &wv);
        check_finite_differences(dx_loss, &xv, &vec(&gx), &[0, 20, xv.len() - 1], "dx");
        let dw_loss = |v: &[f32]| loss(&xv, v);
        check_finite_differences(dw_loss, &wv, &vec(&gw), &[0, 13, wv.len() - 1], "dw");
    }
}
