//! The CPU kernel of depthwise convolution (groups = channels, one `k×k` filter per
//! channel). candle runs grouped convolutions as one convolution per group followed by a
//! concatenation, and the backward of every slice allocates a full-size zero tensor
//! (FACTS.md: 3.8 s per forward+backward at 64 groups), so this is its own kernel: per
//! channel plane, padded (and split into phase planes for strides above 1) once, then one
//! long vector operation per filter tap (see `Phased`).

use candle_core::{Layout, Result, Shape};

use super::buffers::output_f32;
use super::conv::ConvGeometry;
use super::simd::multiversion;
use super::slice_conv::{ConvGrads, SliceConv};
use crate::util::parallel;

/// Sizes of one call: batch, channels, input and output sides.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

/// A zero-padded channel plane split into `stride²` phase planes: phase `(py, px)` holds
/// the padded pixels `(r·s + py, c·s + px)`. Tap `(ki, kj)` then reads, for output
/// `(oy, ox)`, pixel `(oy + ⌊ki·d/s⌋, ox + ⌊kj·d/s⌋)` of phase `(ki·d mod s, kj·d mod s)`:
/// a stride-1 window. On the "extended grid" (`ho` rows of the phase width `wph`, the last
/// `wph − wo` columns of each row junk), output `q` is `Σ_tap w[tap] · phases[offset(tap) +
/// q]`, so each tap is one long vector operation instead of one short strided loop per
/// output row (which dominated on the 4–16 px planes of a ShuffleNetV2).
struct Phased {
    s: usize,
    p: usize,
    /// Phase plane width.
    wph: usize,
    /// Floats per phase plane: `hph · wph` plus slack for the last window's overhang.
    len: usize,
}

impl Phased {
    fn new(g: &ConvGeometry, d: &Dims) -> Self {
        let s = g.stride;
        let (hp, wp) = (d.h + 2 * g.padding, d.w + 2 * g.padding);
        let (hph, wph) = (hp.div_ceil(s), wp.div_ceil(s));
        Self {
            s,
            p: g.padding,
            wph,
            len: hph * wph + (g.dilation * (g.k - 1)) / s + 1,
        }
    }

    /// Floats of the whole buffer (every phase).
    fn total(&self) -> usize {
        self.s * self.s * self.len
    }

    fn extended(&self, ho: usize) -> usize {
        ho * self.wph
    }

    fn tap_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let (k, s, d) = (g.k, self.s, g.dilation);
        (0..k * k)
            .map(|t| {
                let (dy, dx) = ((t / k) * d, (t % k) * d);
                ((dy % s) * s + dx % s) * self.len + (dy / s) * self.wph + dx / s
            })
            .collect()
    }

    /// Position in the buffer of input pixel `(iy, ix)`.
    #[inline(always)]
    fn at(&self, iy: usize, ix: usize) -> usize {
        let (y, x) = (iy + self.p, ix + self.p);
        ((y % self.s) * self.s + x % self.s) * self.len + (y / self.s) * self.wph + x / self.s
    }

    /// Split one plane into the phases. Only input pixels are written: the padding and
    /// slack of `out` must be zero already (buffers are allocated zeroed and reused).
    fn fill(&self, plane: &[f32], d: &Dims, out: &mut [f32]) {
        for (iy, row) in plane.chunks_exact(d.w).enumerate() {
            if self.s == 1 {
                let at = self.at(iy, 0);
                out[at..at + d.w].copy_from_slice(row);
            } else if self.s == 2 && d.w >= 2 {
                let (a, b) = (self.at(iy, 0), self.at(iy, 1));
                deinterleave_row(row, out, a, b);
            } else {
                for (ix0, at) in self.row_runs(iy, d.w) {
                    let dst = &mut out[at..];
                    for (o, &v) in dst.iter_mut().zip(row[ix0..].iter().step_by(self.s)) {
                        *o = v;
                    }
                }
            }
        }
    }

    /// Per phase column of input row `iy`: the first input column `ix0` landing in it and
    /// its position; columns `ix0 + j·s` follow contiguously.
    fn row_runs(&self, iy: usize, w: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let s = self.s;
        (0..s.min(w)).map(move |ix0| (ix0, self.at(iy, ix0)))
    }

    /// The input-pixel entries of a phased gradient, back in plane order.
    fn gather(&self, phased: &[f32], d: &Dims, plane: &mut [f32]) {
        for (iy, row) in plane.chunks_exact_mut(d.w).enumerate() {
            if self.s == 1 {
                let at = self.at(iy, 0);
                row.copy_from_slice(&phased[at..at + d.w]);
            } else if self.s == 2 && d.w >= 2 {
                let (a, b) = (self.at(iy, 0), self.at(iy, 1));
                interleave_row(phased, a, b, row);
            } else {
                for (ix0, at) in self.row_runs(iy, d.w) {
                    let src = &phased[at..];
                    for (v, &g) in row[ix0..].iter_mut().step_by(self.s).zip(src) {
                        *v = g;
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Inverse of [`deinterleave_row`].
    fn interleave_row(phased: &[f32], even: usize, odd: usize, row: &mut [f32]) {
        let (pairs, rest) = row.as_chunks_mut::<2>();
        let n = pairs.len();
        for (j, p) in pairs.iter_mut().enumerate() {
            p[0] = phased[even + j];
            p[1] = phased[odd + j];
        }
        if let [last] = rest {
            *last = phased[even + n];
        }
    }
}

multiversion! {
    /// Stride-2 phase split of one row: even columns to `out[even..]`, odd to `out[odd..]`.
    fn deinterleave_row(row: &[f32], out: &mut [f32], even: usize, odd: usize) {
        let (pairs, rest) = row.as_chunks::<2>();
        for (j, p) in pairs.iter().enumerate() {
            out[even + j] = p[0];
            out[odd + j] = p[1];
        }
        if let [last] = rest {
            out[even + pairs.len()] = *last;
        }
    }
}

/// The depthwise kernel of one geometry; operands `(x (B, C, H, W), w (C, k·k))`.
pub struct DepthwiseOp(pub ConvGeometry);

multiversion! {
    /// One plane on the extended grid (`Phased`): `out_ext[q] = Σ_tap w[tap] ·
    /// xp[offs[tap] + q]`.
    fn plane_forward_ext(xp: &[f32], w: &[f32], offs: &[usize], out_ext: &mut [f32]) {
        let l = out_ext.len();
        out_ext.fill(0.0);
        for (&wv, &o) in w.iter().zip(offs) {
            for (v, &x) in out_ext.iter_mut().zip(&xp[o..o + l]) {
                *v += wv * x;
            }
        }
    }
}

multiversion! {
    /// Backward of [`plane_forward_ext`], with the output gradient `gy_ext` zero in its
    /// junk columns: `dw[tap] += Σ_q gy_ext[q] · xp[offs[tap] + q]`
    /// (16 lanes in a fixed order) and `dxp[offs[tap] + q] += w[tap] · gy_ext[q]`.
    fn plane_backward_ext(
        xp: &[f32],
        gy_ext: &[f32],
        w: &[f32],
        offs: &[usize],
        dxp: &mut [f32],
        dw: &mut [f32],
        want_dx: bool,
    ) {
        const LANES: usize = 16;
        let l = gy_ext.len();
        let (gc, gr) = gy_ext.as_chunks::<LANES>();
        for (tap, &o) in offs.iter().enumerate() {
            let xs = &xp[o..o + l];
            let (xc, xr) = xs.as_chunks::<LANES>();
            let mut acc = [0f32; LANES];
            for (g, x) in gc.iter().zip(xc) {
                for i in 0..LANES {
                    acc[i] += g[i] * x[i];
                }
            }
            let mut sum: f32 = acc.iter().sum();
            for (g, x) in gr.iter().zip(xr) {
                sum += g * x;
            }
            dw[tap] += sum;
            if want_dx {
                let wv = w[tap];
                for (d, &g) in dxp[o..o + l].iter_mut().zip(gy_ext) {
                    *d += wv * g;
                }
            }
        }
    }
}

impl DepthwiseOp {
    fn dims(&self, xl: &Layout, wl: &Layout) -> Result<Dims> {
        let (b, c, h, w) = xl.shape().dims4()?;
        let (wc, kk) = wl.shape().dims2()?;
        let g = &self.0;
        if wc != c || kk != g.k * g.k {
            candle_core::bail!(
                "depthwise conv: weight {wc}×{kk} does not fit {c} channels of {}×{}",
                g.k,
                g.k
            );
        }
        let (Some(ho), Some(wo)) = (g.out_len(h), g.out_len(w)) else {
            candle_core::bail!(
                "depthwise conv: {h}×{w} input is smaller than the {}×{} kernel",
                g.k,
                g.k
            );
        };
        Ok(Dims { b, c, h, w, ho, wo })
    }

    fn forward(&self, x: &[f32], wt: &[f32], d: &Dims) -> Vec<f32> {
        let g = &self.0;
        let kk = g.k * g.k;
        let pad = Phased::new(g, d);
        let (hw_in, hw_out) = (d.h * d.w, d.ho * d.wo);
        // SAFETY: every plane is written by its row copies out of the extended grid.
        let mut y = unsafe { output_f32(d.b * d.c * hw_out) };
        let offs = pad.tap_offsets(g);
        let ext_len = pad.extended(d.ho);
        parallel::for_each_chunk_mut_init(
            &mut y,
            hw_out,
            || (vec![0f32; pad.total()], vec![0f32; ext_len]),
            |(xp, out_ext), plane, out| {
                let ch = plane % d.c;
                pad.fill(&x[plane * hw_in..][..hw_in], d, xp);
                plane_forward_ext(xp, &wt[ch * kk..][..kk], &offs, out_ext);
                for (oy, row) in out.chunks_exact_mut(d.wo).enumerate() {
                    row.copy_from_slice(&out_ext[oy * pad.wph..][..d.wo]);
                }
            },
        );
        y
    }

    /// Input gradient (if wanted) and weight gradient. Channels run in parallel, each
    /// summing its weight gradient over the batch in order, so results do not depend on the
    /// thread count.
    fn backward(
        &self,
        x: &[f32],
        wt: &[f32],
        dy: &[f32],
        d: &Dims,
        want_dx: bool,
    ) -> (Option<Vec<f32>>, Vec<f32>) {
        let g = &self.0;
        let kk = g.k * g.k;
        let pad = Phased::new(g, d);
        let (hw_in, hw_out) = (d.h * d.w, d.ho * d.wo);
        let results: Vec<(Vec<f32>, Vec<f32>)> = parallel::map(d.c, |ch| {
            let w = &wt[ch * kk..][..kk];
            let mut dw = vec![0f64; kk];
            let mut dx_planes = if want_dx {
                vec![0f32; d.b * hw_in]
            } else {
                Vec::new()
            };
            let mut xp = vec![0f32; pad.total()];
            let mut dxp = vec![0f32; pad.total()];
            let mut dw_plane = vec![0f32; kk];
            let offs = pad.tap_offsets(g);
            // Junk columns stay zero: only the first `wo` of each row are written.
            let mut gy_ext = vec![0f32; pad.extended(d.ho)];
            for bi in 0..d.b {
                let plane = bi * d.c + ch;
                pad.fill(&x[plane * hw_in..][..hw_in], d, &mut xp);
                let gy = &dy[plane * hw_out..][..hw_out];
                dxp.fill(0.0);
                dw_plane.fill(0.0);
                for (oy, row) in gy.chunks_exact(d.wo).enumerate() {
                    gy_ext[oy * pad.wph..][..d.wo].copy_from_slice(row);
                }
                let (dxp, dwp) = (&mut dxp, &mut dw_plane);
                plane_backward_ext(&xp, &gy_ext, w, &offs, dxp, dwp, want_dx);
                for (t, v) in dw_plane.iter().enumerate() {
                    dw[t] += *v as f64;
                }
                if want_dx {
                    pad.gather(dxp, d, &mut dx_planes[bi * hw_in..][..hw_in]);
                }
            }
            (dx_planes, dw.iter().map(|&v| v as f32).collect())
        });
        let mut dw = vec![0f32; d.c * kk];
        for (ch, (_, dwc)) in results.iter().enumerate() {
            dw[ch * kk..][..kk].copy_from_slice(dwc);
        }
        // The planes back into sample-major order, split between the threads (on one it
        // was a twentieth of a ShuffleNetV2 step with the other thread idle).
        let dx = want_dx.then(|| {
            // SAFETY: every plane of the gradient is copied in below.
            let mut dx = unsafe { output_f32(d.b * d.c * hw_in) };
            parallel::for_each_chunk_mut(&mut dx, hw_in.max(1), |p, plane| {
                let (bi, ch) = (p / d.c, p % d.c);
                plane.copy_from_slice(&results[ch].0[bi * hw_in..][..hw_in]);
            });
            dx
        });
        (dx, dw)
    }
}

impl SliceConv for DepthwiseOp {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn out_shape(&self, x: &Layout, w: &Layout) -> Result<Shape> {
        let d = self.dims(x, w)?;
        Ok(Shape::from((d.b, d.c, d.ho, d.wo)))
    }

    fn forward_slices(&self, x: &[f32], xl: &Layout, w: &[f32], wl: &Layout) -> Result<Vec<f32>> {
        Ok(self.forward(x, w, &self.dims(xl, wl)?))
    }

    fn backward_slices(
        &self,
        (x, xl): (&[f32], &Layout),
        (w, wl): (&[f32], &Layout),
        dy: &[f32],
        want_dx: bool,
        _want_dw: bool,
    ) -> Result<ConvGrads> {
        let (dx, dw) = self.backward(x, w, dy, &self.dims(xl, wl)?, want_dx);
        Ok((dx, Some(dw)))
    }
}
