//! 2-D convolution (groups = 1) with the PyTorch weight layout `(Cout, Cin, k, k)` under the
//! name `weight`, so checkpoints are interchangeable with `candle_nn::Conv2d`'s. On the CPU
//! it runs the fused kernel of [`crate::kernels::conv`] (candle's own conv backward computes the
//! input gradient with a direct-loop transposed convolution and was about ten times slower
//! than PyTorch, see FACTS.md); on other devices it is candle's `conv2d` (cuDNN on CUDA).

use super::conv_bn::FusableConv;
use crate::kernels::conv::{ConvGeometry, FusedConv};
use crate::kernels::slice_conv::{SliceConv, SliceConvOp};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    cout: usize,
    cin: usize,
    geometry: ConvGeometry,
}

/// A bias-free convolution with PyTorch's default (Kaiming-uniform, a = √5) initialisation.
pub fn conv2d_no_bias(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let geometry = ConvGeometry {
        k,
        stride,
        padding,
        dilation: 1,
    };
    conv2d_with(cin, cout, geometry, vb)
}

/// A convolution kernel `weight` of `shape` with PyTorch's default initialisation:
/// Kaiming-uniform with a = √5 over the fan-in.
pub(crate) fn kaiming_weight(
    shape: (usize, usize, usize, usize),
    vb: &VarBuilder,
) -> Result<Tensor> {
    let init = Init::Kaiming {
        dist: candle_nn::init::NormalOrUniform::Uniform,
        fan: candle_nn::init::FanInOut::FanIn,
        non_linearity: candle_nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
    };
    vb.get_with_hints(shape, "weight", init)
}

/// A bias-free convolution of any geometry (dilation included).
pub fn conv2d_with(
    cin: usize,
    cout: usize,
    geometry: ConvGeometry,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let k = geometry.k;
    let weight = kaiming_weight((cout, cin, k, k), &vb)?;
    Ok(Conv2d {
        weight,
        cout,
        cin,
        geometry,
    })
}

impl Conv2d {
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn geometry(&self) -> ConvGeometry {
        self.geometry
    }
}

impl FusableConv for Conv2d {
    fn cpu_kernel(&self, _x: &Tensor) -> Result<Option<(Box<dyn SliceConv>, Tensor)>> {
        let k = self.geometry.k;
        let wmat = self.weight.reshape((self.cout, self.cin * k * k))?;
        Ok(Some((Box::new(FusedConv(self.geometry)), wmat)))
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_weight(x, &self.weight, self.geometry)
    }
}

/// `x ∗ w` for a weight `(Cout, Cin, k, k)` given as a tensor (a layer's own, or one built
/// per step such as a merged low-rank expert): the fused kernel on the CPU, candle's
/// `conv2d` elsewhere.
pub fn conv2d_weight(x: &Tensor, w: &Tensor, g: ConvGeometry) -> Result<Tensor> {
    let (cout, cin, _, _) = w.dims4()?;
    check_and_record(x, w.dims4()?, g)?;
    if x.device().is_cpu() {
        let wmat = w.reshape((cout, cin * g.k * g.k))?;
        return x
            .contiguous()?
            .apply_op2(&wmat.contiguous()?, SliceConvOp(FusedConv(g)));
    }
    x.conv2d(w, g.padding, g.stride, g.dilation, 1)
}

/// Checks that `x` fits a weight of dims `(cout, cin, kh, kw)` and records the
/// convolution's shape and multiply-adds for the cost model (`model::cost`).
pub(crate) fn check_and_record(
    x: &Tensor,
    (cout, cin, kh, kw): (usize, usize, usize, usize),
    g: ConvGeometry,
) -> Result<()> {
    let (b, c, h, wd) = x.dims4()?;
    if c != cin || kh != g.k || kw != g.k {
        candle_core::bail!(
            "conv expects {cin} input channels and a {}×{} kernel, got {c} channels and a {kh}×{kw} weight",
            g.k,
            g.k
        );
    }
    let (ho, wo) = (g.out_len(h).unwrap_or(0), g.out_len(wd).unwrap_or(0));
    crate::model::cost::record_macs((b * cout * ho * wo * cin * g.k * g.k) as u64);
    crate::model::cost::record_conv(crate::model::cost::ConvShape {
        d_in: cin * g.k * g.k,
        d_out: cout,
        positions: ho * wo,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::{
        as64, assert_matches, check_finite_differences, direct_conv, probe_loss, vec,
    };
    use candle_core::{Device, Var};

    /// Shapes: (batch, cin, cout, h, w, k, stride, padding, dilation).
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
    );

    fn geometry(case: Case) -> ConvGeometry {
        ConvGeometry {
            k: case.5,
            stride: case.6,
            padding: case.7,
            dilation: case.8,
        }
    }

    /// The direct-loop reference for `case`.
    fn naive(case: Case, x: &[f32], w: &[f32], probe: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (b, cin, cout, h, wd, ..) = case;
        direct_conv(x, (b, cin, h, wd), w, cout, 1, geometry(case), probe)
    }

    fn randn(shape: &[usize]) -> Tensor {
        Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
    }

    /// Output and both gradients of `f` for the loss `Σ f(x, w)·probe`.
    fn fused_run(case: Case, x: &Var, w: &Var, probe: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (_, cin, cout, ..) = case;
        let conv = Conv2d {
            weight: w.as_tensor().clone(),
            cout,
            cin,
            geometry: geometry(case),
        };
        let y = conv.forward(x.as_tensor()).unwrap();
        let g = (&y * probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap().clone();
        let gw = g.get(w.as_tensor()).unwrap().clone();
        (y, gx, gw)
    }

    const CASES: &[Case] = &[
        // (batch, cin, cout, h, w, k, stride, padding, dilation)
        (2, 3, 4, 9, 9, 3, 1, 1, 1),
        (3, 4, 5, 8, 8, 3, 2, 1, 1),
        (1, 2, 3, 7, 7, 1, 1, 0, 1),
        (2, 4, 6, 8, 8, 1, 2, 0, 1),
        (2, 3, 8, 16, 16, 7, 2, 3, 1),
        (2, 2, 2, 5, 5, 5, 1, 0, 1),
        (1, 3, 4, 9, 7, 5, 1, 2, 1),
        (9, 3, 4, 6, 6, 3, 1, 1, 1),
        (2, 3, 5, 11, 11, 7, 1, 3, 1),
        (2, 3, 4, 10, 10, 3, 1, 2, 2),
        (1, 2, 3, 9, 8, 3, 2, 2, 2),
        (2, 4, 3, 6, 6, 1, 1, 1, 1),
        // odd sizes with stride 2 (candle's own backward mis-sizes these)
        (3, 2, 4, 7, 7, 3, 2, 1, 1),
        (3, 2, 4, 7, 5, 1, 2, 0, 1),
        (3, 2, 4, 9, 6, 3, 2, 1, 1),
        (3, 2, 4, 11, 11, 7, 2, 3, 1),
        // many channels: several row blocks and strip widths of the GEMMs
        (2, 17, 19, 5, 5, 3, 1, 1, 1),
        (10, 9, 20, 4, 4, 3, 1, 1, 1),
        (12, 5, 6, 12, 12, 3, 1, 1, 1),
        (1, 3, 4, 13, 11, 5, 1, 2, 1),
        (10, 6, 5, 7, 7, 1, 1, 0, 1),
    ];

    /// Forward and both gradients against direct f64 loops, for kernel sizes 1/3/5/7,
    /// strides 1/2, paddings, dilation 2, odd and non-square shapes, batch 1.
    #[test]
    fn fused_conv_matches_direct_loops() {
        for &case in CASES {
            let (b, cin, cout, h, wd, k, _, _, _) = case;
            let x = Var::from_tensor(&randn(&[b, cin, h, wd])).unwrap();
            let w = Var::from_tensor(&randn(&[cout, cin, k, k])).unwrap();
            let geo = geometry(case);
            let (ho, wo) = (geo.out_len(h).unwrap(), geo.out_len(wd).unwrap());
            let probe = randn(&[b, cout, ho, wo]);
            let (y, gx, gw) = fused_run(case, &x, &w, &probe);
            let (ry, rgx, rgw) =
                naive(case, &vec(x.as_tensor()), &vec(w.as_tensor()), &vec(&probe));
            assert_matches(&format!("{case:?}"), [&y, &gx, &gw], [&ry, &rgx, &rgw]);
        }
    }

    /// Against candle's native conv2d (and its autograd) where candle is correct: every
    /// stride-1 case and stride 2 on sizes the stride divides.
    #[test]
    fn fused_conv_matches_candle_conv() {
        for &case in CASES {
            let (b, cin, cout, h, wd, k, s, p, d) = case;
            if s == 2 && (h % 2 == 1 || wd % 2 == 1) {
                continue;
            }
            let x = Var::from_tensor(&randn(&[b, cin, h, wd])).unwrap();
            let w = Var::from_tensor(&randn(&[cout, cin, k, k])).unwrap();
            let yc = x.as_tensor().conv2d(w.as_tensor(), p, s, d, 1).unwrap();
            let probe = randn(yc.dims());
            let g = (&yc * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (y, gx, gw) = fused_run(case, &x, &w, &probe);
            let want = [
                as64(&yc),
                as64(g.get(x.as_tensor()).unwrap()),
                as64(g.get(w.as_tensor()).unwrap()),
            ];
            assert_matches(
                &format!("{case:?}"),
                [&y, &gx, &gw],
                [&want[0], &want[1], &want[2]],
            );
        }
    }

    /// Central finite differences of the loss `Σ y·probe` for a few input and weight
    /// entries, in f32 with a step large enough to dominate rounding.
    #[test]
    fn fused_conv_gradients_match_finite_differences() {
        let case: Case = (2, 3, 4, 7, 6, 3, 2, 1, 1);
        let case1: Case = (2, 3, 4, 7, 6, 3, 1, 2, 2);
        for case in [case, case1] {
            let (b, cin, cout, h, wd, k, _, _, _) = case;
            let x = Var::from_tensor(&randn(&[b, cin, h, wd])).unwrap();
            let w = Var::from_tensor(&randn(&[cout, cin, k, k])).unwrap();
            let geo = geometry(case);
            let probe = randn(&[b, cout, geo.out_len(h).unwrap(), geo.out_len(wd).unwrap()]);
            let (_, gx, gw) = fused_run(case, &x, &w, &probe);
            let loss = |xv: &[f32], wv: &[f32]| {
                let xt = Var::from_tensor(&Tensor::from_slice(xv, x.dims(), &Device::Cpu).unwrap())
                    .unwrap();
                let wt = Var::from_tensor(&Tensor::from_slice(wv, w.dims(), &Device::Cpu).unwrap())
                    .unwrap();
                let (y, _, _) = fused_run(case, &xt, &wt, &probe);
                probe_loss(&y, &probe)
            };
            let (xv, wv) = (vec(x.as_tensor()), vec(w.as_tensor()));
            let what = format!("{case:?} dx");
            let dx_loss = |v: &[f32]| loss(v, &wv);
            check_finite_differences(dx_loss, &xv, &vec(&gx), &[0, 17, xv.len() - 1], &what);
            let what = format!("{case:?} dw");
            let dw_loss = |v: &[f32]| loss(&xv, v);
            check_finite_differences(dw_loss, &wv, &vec(&gw), &[0, 5, wv.len() - 1], &what);
        }
    }

    /// The first layer sees images, which need no gradient: the kernel must not compute one.
    #[test]
    fn input_gradient_is_skipped_for_plain_tensors() {
        let x = randn(&[2, 3, 6, 6]);
        let w = Var::from_tensor(&randn(&[4, 3, 3, 3])).unwrap();
        let conv = Conv2d {
            weight: w.as_tensor().clone(),
            cout: 4,
            cin: 3,
            geometry: ConvGeometry {
                k: 3,
                stride: 1,
                padding: 1,
                dilation: 1,
            },
        };
        let g = conv
            .forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&x).is_none());
        assert!(g.get(w.as_tensor()).is_some());
    }
}
