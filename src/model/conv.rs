//! Convolution written as im2col + matrix multiplication out of candle tensor ops.
//!
//! Why not `candle_nn::Conv2d`: on the CPU its backward computes the input gradient with a
//! direct-loop `conv_transpose2d`, which made small-image training about ten times slower
//! than PyTorch (see FACTS.md). Expressed as shifted views + one batched GEMM, every
//! backward step is either a GEMM or a copy, which candle does fast. The weight keeps the
//! PyTorch layout `(Cout, Cin, k, k)` under the name `weight`, so checkpoints are
//! interchangeable with `candle_nn::Conv2d`'s. Groups are not supported (none of the ResNet
//! convolutions need them).

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
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

    /// The unfold geometry of this convolution.
    fn geometry(&self) -> Im2Col {
        Im2Col {
            k: self.k,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// Output side length for an input side length.
    fn out_len(&self, n: usize) -> usize {
        self.geometry().out_len(n)
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
        let wmat = self.weight.reshape((self.cout, self.cin * k * k))?;
        if x.device().is_cpu() {
            let op = FusedConv(self.geometry());
            return x.contiguous()?.apply_op2(&wmat.contiguous()?, op);
        }
        let cols = if k == 1 && s == 1 && p == 0 {
            x.reshape((b, c, h * w))?
        } else {
            self.im2col_by_views(x, ho, wo)?
        };
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

/// Geometry of an unfold (im2col): one sample `(C, H, W)` ↔ columns `(C·k·k, Ho·Wo)`.
struct Im2Col {
    k: usize,
    stride: usize,
    padding: usize,
}

impl Im2Col {
    /// Output side length for an input side length.
    fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.k) / self.stride + 1
    }

    /// Calls `f(col_start, in_start, len)` for every run of one sample's columns: column
    /// entries `col_start + t` come from input pixels `in_start + t·stride`, `t < len`
    /// (indices relative to the sample). Out-of-image positions (padding) are skipped and
    /// stay zero. Runs make the inner loops plain (strided) copies.
    fn for_each_run(&self, c: usize, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (k, s, p) = (self.k, self.stride, self.padding);
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        for ch in 0..c {
            for ki in 0..k {
                for kj in 0..k {
                    // Valid ox: 0 ≤ ox·s + kj − p < w.
                    let lo = if p > kj { (p - kj).div_ceil(s) } else { 0 };
                    let hi = if w + p > kj {
                        (w + p - kj).div_ceil(s).min(wo)
                    } else {
                        0
                    };
                    if lo >= hi {
                        continue;
                    }
                    let row = (ch * k + ki) * k + kj;
                    for oy in 0..ho {
                        let iy = oy * s + ki;
                        if iy < p || iy - p >= h {
                            continue;
                        }
                        let col_start = (row * ho + oy) * wo + lo;
                        let in_start = (ch * h + iy - p) * w + lo * s + kj - p;
                        f(col_start, in_start, hi - lo);
                    }
                }
            }
        }
    }
}

impl Im2Col {
    /// Unfold one sample into `cols` (`C·k·k × Ho·Wo`, zero where the window hits padding).
    fn unfold(&self, x: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
        cols.fill(0.0);
        let s = self.stride;
        self.for_each_run(c, h, w, |o, i, len| {
            if s == 1 {
                cols[o..o + len].copy_from_slice(&x[i..i + len]);
            } else {
                for (t, v) in cols[o..o + len].iter_mut().enumerate() {
                    *v = x[i + t * s];
                }
            }
        });
    }

    /// Fold column gradients back onto one sample's input gradient (col2im), accumulating.
    fn fold(&self, cols: &[f32], c: usize, h: usize, w: usize, dx: &mut [f32]) {
        let s = self.stride;
        self.for_each_run(c, h, w, |o, i, len| {
            for (t, g) in cols[o..o + len].iter().enumerate() {
                dx[i + t * s] += g;
            }
        });
    }
}

/// `C = A·B` (or `C += A·B` with `accumulate`) for f32 matrices given by pointer and
/// (row stride, column stride), single-threaded: callers parallelise over samples.
#[allow(clippy::too_many_arguments)]
fn matmul_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    debug_assert!(dst.len() >= m * n);
    debug_assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    debug_assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the strides and sizes describe matrices inside the given slices (checked in
    // debug builds above), and `dst` is a distinct, exclusively borrowed m×n row-major buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Number of partial weight gradients summed at the end of the backward pass. Fixed (not
/// tied to the thread count) so the summation order, and therefore the result, is the same
/// on every machine.
const WEIGHT_GRAD_PARTS: usize = 8;

/// Convolution of `x (B, C, H, W)` with `w (Cout, C·k·k)` as one op (CPU): per sample,
/// unfold into a private column buffer and multiply by the weight with one GEMM; samples run
/// in parallel. The backward recomputes the columns and forms dW = Σ dY·colsᵀ and
/// dx = fold(Wᵀ·dY) with GEMMs, so no full-batch column tensor ever enters the autograd
/// graph (candle would allocate and add a zero gradient of that size per node).
struct FusedConv(Im2Col);

impl CustomOp2 for FusedConv {
    fn name(&self) -> &'static str {
        "fused-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let geo = &self.0;
        let (b, c, h, w) = l1.shape().dims4()?;
        let (cout, ckk) = l2.shape().dims2()?;
        let x = contiguous_f32(s1, l1, "input")?;
        let wt = contiguous_f32(s2, l2, "weight")?;
        let (ho, wo) = (geo.out_len(h), geo.out_len(w));
        let hw = ho * wo;
        let per_in = c * h * w;
        let mut y = vec![0f32; b * cout * hw];
        y.par_chunks_mut(cout * hw).enumerate().for_each_init(
            || vec![0f32; ckk * hw],
            |cols, (bi, yb)| {
                geo.unfold(&x[bi * per_in..(bi + 1) * per_in], c, h, w, cols);
                matmul_into(cout, hw, ckk, yb, false, wt, (ckk, 1), cols, (hw, 1));
            },
        );
        Ok((CpuStorage::F32(y), Shape::from((b, cout, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let geo = &self.0;
        let (b, c, h, wd) = x.dims4()?;
        let (cout, ckk) = w.dims2()?;
        let (ho, wo) = (geo.out_len(h), geo.out_len(wd));
        let hw = ho * wo;
        let per_in = c * h * wd;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let gv = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let parts = WEIGHT_GRAD_PARTS.min(b.max(1));
        let per_part = b.div_ceil(parts);
        let mut dx = vec![0f32; b * per_in];
        let mut dw_parts = vec![0f32; parts * cout * ckk];
        dx.par_chunks_mut(per_part * per_in)
            .zip(dw_parts.par_chunks_mut(cout * ckk))
            .enumerate()
            .for_each(|(part, (dx_part, dw))| {
                let mut cols = vec![0f32; ckk * hw];
                let mut dcols = vec![0f32; ckk * hw];
                for (j, dxb) in dx_part.chunks_mut(per_in).enumerate() {
                    let bi = part * per_part + j;
                    let gb = &gv[bi * cout * hw..(bi + 1) * cout * hw];
                    geo.unfold(&xv[bi * per_in..(bi + 1) * per_in], c, h, wd, &mut cols);
                    // dW += dY_b (Cout×HW) · cols_bᵀ (HW×CKK)
                    matmul_into(cout, ckk, hw, dw, true, gb, (hw, 1), &cols, (1, hw));
                    // dcols = Wᵀ (CKK×Cout) · dY_b (Cout×HW)
                    matmul_into(ckk, hw, cout, &mut dcols, false, &wv, (1, ckk), gb, (hw, 1));
                    geo.fold(&dcols, c, h, wd, dxb);
                }
            });
        let mut dwv = vec![0f32; cout * ckk];
        for part in dw_parts.chunks(cout * ckk) {
            for (a, p) in dwv.iter_mut().zip(part) {
                *a += p;
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, c, h, wd), dev)?),
            Some(Tensor::from_vec(dwv, (cout, ckk), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Output and gradients (input, weight) of `conv(x, w)` against a probe.
    fn run(
        f: impl Fn(&Tensor, &Tensor) -> Tensor,
        x: &Var,
        w: &Var,
        probe: Option<&Tensor>,
    ) -> (Tensor, Tensor, Tensor, Tensor) {
        let y = f(x.as_tensor(), w.as_tensor());
        let probe = probe
            .cloned()
            .unwrap_or_else(|| Tensor::randn(0f32, 1.0, y.dims(), &Device::Cpu).unwrap());
        let g = (&y * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gx = g.get(x.as_tensor()).unwrap().clone();
        let gw = g.get(w.as_tensor()).unwrap().clone();
        (y, gx, gw, probe)
    }

    fn conv(
        cout: usize,
        cin: usize,
        k: usize,
        stride: usize,
        padding: usize,
        w: &Tensor,
    ) -> Conv2d {
        Conv2d {
            weight: w.clone(),
            cout,
            cin,
            k,
            stride,
            padding,
        }
    }

    /// The fused CPU kernel against candle's native conv2d (forward and both gradients).
    /// candle's own conv backward mis-sizes the input gradient for stride 2 with odd sizes,
    /// so these use square inputs the stride divides; odd shapes are checked below.
    #[test]
    fn fused_conv_matches_candle_conv_forward_and_gradients() {
        let dev = Device::Cpu;
        for (b, cin, cout, h, k, stride, padding) in [
            (2, 3, 4, 9, 3, 1, 1),
            (3, 4, 5, 8, 3, 2, 1),
            (1, 2, 3, 7, 1, 1, 0),
            (2, 4, 6, 8, 1, 2, 0),
            (2, 3, 8, 16, 7, 2, 3),
            (2, 2, 2, 5, 5, 1, 0),
            (9, 3, 4, 6, 3, 1, 1),
        ] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, cin, h, h), &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (cout, cin, k, k), &dev).unwrap())
                .unwrap();
            let (ya, gxa, gwa, probe) = run(
                |x, w| conv(cout, cin, k, stride, padding, w).forward(x).unwrap(),
                &x,
                &w,
                None,
            );
            let (yb, gxb, gwb, _) = run(
                |x, w| x.conv2d(w, padding, stride, 1, 1).unwrap(),
                &x,
                &w,
                Some(&probe),
            );
            let case = format!("b{b} c{cin}->{cout} {h}px k{k} s{stride} p{padding}");
            assert!(max_diff(&ya, &yb) < 1e-3, "{case}: forward");
            assert!(max_diff(&gxa, &gxb) < 1e-3, "{case}: input gradient");
            assert!(max_diff(&gwa, &gwb) < 1e-3, "{case}: weight gradient");
        }
    }

    /// The fused kernel against the view-based im2col (built from candle ops, whose autograd
    /// is candle's), including odd sizes with stride 2.
    #[test]
    fn fused_conv_matches_view_im2col_on_odd_strided_shapes() {
        let dev = Device::Cpu;
        for (h, wd, k, stride, padding) in [
            (7, 7, 3, 2, 1),
            (7, 5, 1, 2, 0),
            (9, 6, 3, 2, 1),
            (5, 5, 3, 1, 1),
            (11, 11, 7, 2, 3),
        ] {
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 2, h, wd), &dev).unwrap()).unwrap();
            let w =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 2, k, k), &dev).unwrap()).unwrap();
            let fused =
                |x: &Tensor, w: &Tensor| conv(4, 2, k, stride, padding, w).forward(x).unwrap();
            let views = |x: &Tensor, w: &Tensor| {
                let cv = conv(4, 2, k, stride, padding, w);
                let (ho, wo) = (cv.out_len(h), cv.out_len(wd));
                let cols = cv.im2col_by_views(x, ho, wo).unwrap();
                let wmat = w.reshape((4, 2 * k * k)).unwrap();
                wmat.broadcast_left(3)
                    .unwrap()
                    .matmul(&cols)
                    .unwrap()
                    .reshape((3, 4, ho, wo))
                    .unwrap()
            };
            let (ya, gxa, gwa, probe) = run(fused, &x, &w, None);
            let (yb, gxb, gwb, _) = run(views, &x, &w, Some(&probe));
            let case = format!("{h}x{wd} k{k} s{stride}");
            assert!(max_diff(&ya, &yb) < 1e-4, "{case}: forward");
            assert!(max_diff(&gxa, &gxb) < 1e-4, "{case}: input gradient");
            assert!(max_diff(&gwa, &gwb) < 1e-4, "{case}: weight gradient");
        }
    }
}
