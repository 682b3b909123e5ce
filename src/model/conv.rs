//! Convolution written as im2col + matrix multiplication out of candle tensor ops.
//!
//! Why not `candle_nn::Conv2d`: on the CPU its backward computes the input gradient with a
//! direct-loop `conv_transpose2d`, which made small-image training about ten times slower
//! than PyTorch (see FACTS.md). Expressed as shifted views + one batched GEMM, every
//! backward step is either a GEMM or a copy, which candle does fast. The weight keeps the
//! PyTorch layout `(Cout, Cin, k, k)` under the name `weight`, so checkpoints are
//! interchangeable with `candle_nn::Conv2d`'s. Groups are not supported (none of the ResNet
//! convolutions need them).

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    cout: usize,
    cin: usize,
    k: usize,
    stride: usize,
    padding: usize,
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
    let init = Init::Kaiming {
        dist: candle_nn::init::NormalOrUniform::Uniform,
        fan: candle_nn::init::FanInOut::FanIn,
        non_linearity: candle_nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
    };
    let weight = vb.get_with_hints((cout, cin, k, k), "weight", init)?;
    Ok(Conv2d {
        weight,
        cout,
        cin,
        k,
        stride,
        padding,
    })
}

impl Conv2d {
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Output side length for an input side length.
    fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.k) / self.stride + 1
    }

    /// Every `stride`-th element along `dim`, starting at `start`, `count` of them.
    fn strided(
        x: &Tensor,
        dim: usize,
        start: usize,
        count: usize,
        stride: usize,
    ) -> Result<Tensor> {
        if stride == 1 {
            return x.narrow(dim, start, count);
        }
        let x = x.narrow(dim, start, count * stride)?;
        let mut shape = x.dims().to_vec();
        shape[dim] = count;
        shape.insert(dim + 1, stride);
        x.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.cin {
            candle_core::bail!("conv expects {} input channels, got {c}", self.cin);
        }
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let (p, s, k) = (self.padding, self.stride, self.k);
        let cols = if k == 1 && s == 1 && p == 0 {
            x.reshape((b, c, h * w))?
        } else if x.device().is_cpu() {
            x.contiguous()?.apply_op1(Im2Col {
                k,
                stride: s,
                padding: p,
            })?
        } else {
            self.im2col_by_views(x, ho, wo)?
        };
        let wmat = self.weight.reshape((self.cout, self.cin * k * k))?;
        wmat.broadcast_left(b)?
            .matmul(&cols)?
            .reshape((b, self.cout, ho, wo))
    }
}

impl Conv2d {
    /// im2col out of shifted views; used where the CPU kernel is not available.
    fn im2col_by_views(&self, x: &Tensor, ho: usize, wo: usize) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (p, s, k) = (self.padding, self.stride, self.k);
        // Pad so that every strided window slice of length s·ho fits.
        let need_h = (k - 1 + s * ho).max(h + 2 * p);
        let need_w = (k - 1 + s * wo).max(w + 2 * p);
        let x = x
            .pad_with_zeros(2, p, need_h - h - p)?
            .pad_with_zeros(3, p, need_w - w - p)?;
        let mut patches = Vec::with_capacity(k * k);
        for ki in 0..k {
            let rows = Self::strided(&x, 2, ki, ho, s)?;
            for kj in 0..k {
                patches.push(Self::strided(&rows, 3, kj, wo, s)?);
            }
        }
        // (b, c, k·k, ho, wo) → (b, c·k·k, ho·wo): matches the (Cout, Cin, k, k) weight.
        Tensor::stack(&patches, 2)?.reshape((b, c * k * k, ho * wo))
    }
}

/// Unfold `(B, C, H, W)` into `(B, C·k·k, Ho·Wo)` columns (CPU). The backward is the
/// matching fold (col2im), accumulating each column entry back into its input pixel.
struct Im2Col {
    k: usize,
    stride: usize,
    padding: usize,
}

impl Im2Col {
    fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.k) / self.stride + 1
    }

    /// Calls `f(col_index, input_index)` for every in-bounds (column entry, pixel) pair of
    /// one sample; both indices are relative to that sample.
    fn for_each_pair(&self, c: usize, h: usize, w: usize, mut f: impl FnMut(usize, usize)) {
        let (k, s, p) = (self.k, self.stride, self.padding);
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        for ch in 0..c {
            for ki in 0..k {
                for kj in 0..k {
                    let row = (ch * k + ki) * k + kj;
                    for oy in 0..ho {
                        let iy = (oy * s + ki) as isize - p as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let col_base = (row * ho + oy) * wo;
                        let in_base = (ch * h + iy as usize) * w;
                        for ox in 0..wo {
                            let ix = (ox * s + kj) as isize - p as isize;
                            if ix >= 0 && ix < w as isize {
                                f(col_base + ox, in_base + ix as usize);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(d), Some((a, e))) => &d[a..e],
            _ => candle_core::bail!("im2col needs a contiguous f32 input"),
        };
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let per_in = c * h * w;
        let per_out = c * self.k * self.k * ho * wo;
        let mut cols = vec![0f32; b * per_out];
        cols.par_chunks_mut(per_out)
            .enumerate()
            .for_each(|(bi, out)| {
                let xin = &x[bi * per_in..(bi + 1) * per_in];
                self.for_each_pair(c, h, w, |o, i| out[o] = xin[i]);
            });
        Ok((
            CpuStorage::F32(cols),
            Shape::from((b, c * self.k * self.k, ho * wo)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let per_in = c * h * w;
        let per_out = g.len() / b.max(1);
        let mut dx = vec![0f32; b * per_in];
        dx.par_chunks_mut(per_in).enumerate().for_each(|(bi, out)| {
            let gin = &g[bi * per_out..(bi + 1) * per_out];
            self.for_each_pair(c, h, w, |o, i| out[i] += gin[o]);
        });
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Compare with candle's native conv2d (forward and both gradients).
    fn check(b: usize, cin: usize, cout: usize, h: usize, k: usize, stride: usize, padding: usize) {
        let dev = Device::Cpu;
        // candle's own conv backward mis-sizes the input gradient for stride 2 and odd sizes,
        // so the reference comparison uses square inputs that the stride divides.
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, cin, h, h), &dev).unwrap()).unwrap();
        let w =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (cout, cin, k, k), &dev).unwrap()).unwrap();
        let conv = Conv2d {
            weight: w.as_tensor().clone(),
            cout,
            cin,
            k,
            stride,
            padding,
        };
        let ours = conv.forward(x.as_tensor()).unwrap();
        let (ho, wo) = (ours.dim(2).unwrap(), ours.dim(3).unwrap());
        let views = conv.im2col_by_views(x.as_tensor(), ho, wo).unwrap();
        let fused = x
            .as_tensor()
            .apply_op1(Im2Col { k, stride, padding })
            .unwrap();
        let d = (&views - &fused)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "im2col kernels disagree");
        let theirs = x
            .as_tensor()
            .conv2d(w.as_tensor(), padding, stride, 1, 1)
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let diff = (&ours - &theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-3, "forward differs by {diff}");
        let probe = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
        let g1 = (&ours * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (&theirs * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w] {
            let a = g1.get(v.as_tensor()).unwrap();
            let e = g2.get(v.as_tensor()).unwrap();
            let d = (a - e)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-3, "gradient differs by {d}");
        }
    }

    /// The fused im2col kernel and the view-based one agree in value and input gradient,
    /// also for odd sizes with stride 2 (where candle's native conv cannot serve as reference).
    #[test]
    fn fused_im2col_matches_view_im2col_including_odd_strided_shapes() {
        let dev = Device::Cpu;
        for (h, w, k, stride, padding) in [
            (7, 7, 3, 2, 1),
            (7, 5, 1, 2, 0),
            (9, 6, 3, 2, 1),
            (5, 5, 3, 1, 1),
            (11, 11, 7, 2, 3),
        ] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, h, w), &dev).unwrap()).unwrap();
            let conv = Conv2d {
                weight: Tensor::zeros((1, 3, k, k), candle_core::DType::F32, &dev).unwrap(),
                cout: 1,
                cin: 3,
                k,
                stride,
                padding,
            };
            let (ho, wo) = (conv.out_len(h), conv.out_len(w));
            let views = conv.im2col_by_views(x.as_tensor(), ho, wo).unwrap();
            let fused = x
                .as_tensor()
                .apply_op1(Im2Col { k, stride, padding })
                .unwrap();
            assert_eq!(views.dims(), fused.dims());
            let probe = Tensor::randn(0f32, 1.0, views.dims(), &dev).unwrap();
            let gv = (&views * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gf = (&fused * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let a = gv.get(x.as_tensor()).unwrap();
            let e = gf.get(x.as_tensor()).unwrap();
            let d = (a - e)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "{h}x{w} k{k} s{stride}: gradient differs by {d}");
        }
    }

    #[test]
    fn matches_candle_conv_forward_and_gradients() {
        check(2, 3, 4, 9, 3, 1, 1);
        check(3, 4, 5, 8, 3, 2, 1);
        check(1, 2, 3, 7, 1, 1, 0);
        check(2, 4, 6, 8, 1, 2, 0);
        check(2, 3, 8, 16, 7, 2, 3);
        check(2, 2, 2, 5, 5, 1, 0);
    }
}
