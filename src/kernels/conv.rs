//! The CPU convolution kernel (groups = 1) as one candle custom op, forward and backward.
//!
//! Stride-1 convolutions never build im2col columns: the input of a sample is copied once
//! into a zero-padded buffer, and output `y[co, p]` on the padded ("extended") grid is
//! `Σ_{c,ki,kj} W[co,c,ki,kj] · xpad[c, p + off(ki,kj)]`, a matrix product whose B rows are
//! shifted windows of that buffer ([`gemm::nn`] with per-k offsets). The input gradient is
//! the same construction run backwards (a full correlation of the output gradient with the
//! flipped kernel). The extended grid computes `k−1` junk columns per row, which are
//! dropped, so small images (and strided convolutions) use explicit im2col columns instead,
//! gathered through a precomputed index table with several samples side by side. A 1×1
//! convolution without padding reads its operands in place.
//!
//! The weight gradient is one product `dWᵀ = windows · dYᵀ` over every valid output pixel,
//! accumulated over fixed chunks of samples with the rows of dWᵀ split between threads, so
//! every entry is summed in the same order whatever the thread count. Gradients nobody
//! asked for (the input of the first layer) are not computed.

use candle_core::{Layout, Result, Shape};

use super::buffers::output_f32;
use super::gemm::{self, strided, IndirectA, IndirectB};
use super::layout::{fold, transpose, transpose_block, unfold};
use super::slice_conv::{ConvGrads, SliceConv};
use crate::util::parallel;

/// Kernel size, stride, padding and dilation of a square convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl ConvGeometry {
    /// Span of the dilated kernel.
    fn span(&self) -> usize {
        self.dilation * (self.k - 1) + 1
    }

    /// Output side length for an input side length, `None` when the kernel does not fit.
    pub fn out_len(&self, n: usize) -> Option<usize> {
        let padded = n + 2 * self.padding;
        (padded >= self.span()).then(|| (padded - self.span()) / self.stride + 1)
    }

    /// Calls `f(col_start, in_start, len)` for every run of one sample's im2col columns
    /// (rows `row_stride` floats apart): entries `col_start + t` come from input pixels
    /// `in_start + t·stride`, `t < len`. Out-of-image positions (padding) are skipped.
    fn for_each_run(
        &self,
        (c, h, w): (usize, usize, usize),
        row_stride: usize,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let (k, s, p, d) = (self.k, self.stride, self.padding, self.dilation);
        let (ho, wo) = (self.out_len(h).unwrap_or(0), self.out_len(w).unwrap_or(0));
        for ch in 0..c {
            for ki in 0..k {
                for kj in 0..k {
                    let dx = kj * d;
                    // Valid ox: 0 ≤ ox·s + dx − p < w.
                    let lo = if p > dx { (p - dx).div_ceil(s) } else { 0 };
                    let hi = if w + p > dx {
                        (w + p - dx).div_ceil(s).min(wo)
                    } else {
                        0
                    };
                    if lo >= hi {
                        continue;
                    }
                    let row = (ch * k + ki) * k + kj;
                    for oy in 0..ho {
                        let iy = oy * s + ki * d;
                        if iy < p || iy - p >= h {
                            continue;
                        }
                        let col_start = row * row_stride + oy * wo + lo;
                        let in_start = (ch * h + iy - p) * w + lo * s + dx - p;
                        f(col_start, in_start, hi - lo);
                    }
                }
            }
        }
    }

    /// For every im2col entry of one sample (`C·k·k × Ho·Wo`, row-major), the input pixel
    /// it copies, or `u32::MAX` where the window hits padding. Built once per call, it turns
    /// unfold and fold into plain gathers and scatters.
    fn gather_table(&self, chw: (usize, usize, usize)) -> Vec<u32> {
        let (c, h, w) = chw;
        let (ho, wo) = (self.out_len(h).unwrap_or(0), self.out_len(w).unwrap_or(0));
        let mut idx = vec![u32::MAX; c * self.k * self.k * ho * wo];
        let s = self.stride;
        self.for_each_run(chw, ho * wo, |o, i, len| {
            for (t, v) in idx[o..o + len].iter_mut().enumerate() {
                *v = (i + t * s) as u32;
            }
        });
        idx
    }
}

/// Copy `rows` runs of `len` floats from `src_at = (start, stride)` to `dst_at = (start,
/// stride)`: the row copies between padded and unpadded image layouts.
fn copy_rows(
    src: &[f32],
    (src_start, src_stride): (usize, usize),
    dst: &mut [f32],
    (dst_start, dst_stride): (usize, usize),
    rows: usize,
    len: usize,
) {
    for r in 0..rows {
        dst[dst_start + r * dst_stride..][..len]
            .copy_from_slice(&src[src_start + r * src_stride..][..len]);
    }
}

/// Sizes of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    cout: usize,
    ho: usize,
    wo: usize,
}

impl Dims {
    fn ckk(&self, g: &ConvGeometry) -> usize {
        self.c * g.k * g.k
    }
}

/// The padded-buffer layout of the stride-1 path for one sample.
struct Extended {
    /// Padded width and height.
    wp: usize,
    hp: usize,
    /// Floats per channel in the padded input buffer (padded image + slack for the last window).
    cs: usize,
    /// Length of one output row on the extended grid: `ho · wp`.
    l: usize,
    /// Offset of window `(ki, kj)` in the padded buffer, per kernel position.
    offs: Vec<usize>,
    /// Whether the operands can be read in place (1×1, no padding).
    in_place: bool,
}

impl Extended {
    fn new(g: &ConvGeometry, d: &Dims) -> Self {
        let (wp, hp) = (d.w + 2 * g.padding, d.h + 2 * g.padding);
        let offs: Vec<usize> = (0..g.k * g.k)
            .map(|kk| (kk / g.k) * g.dilation * wp + (kk % g.k) * g.dilation)
            .collect();
        let in_place = g.k == 1 && g.padding == 0;
        Self {
            wp,
            hp,
            cs: if in_place {
                d.h * d.w
            } else {
                hp * wp + g.span() - 1
            },
            l: d.ho * wp,
            offs,
            in_place,
        }
    }

    fn max_off(&self) -> usize {
        self.offs.iter().copied().max().unwrap_or(0)
    }

    /// Copy one sample into its zero-padded buffer (`c × cs`): only the margins are
    /// zeroed, the image rows are copied.
    fn pad(&self, x: &[f32], d: &Dims, p: usize, out: &mut [f32]) {
        let hw = d.h * d.w;
        for ch in 0..d.c {
            let base = ch * self.cs;
            let first = base + p * self.wp + p;
            out[base..first].fill(0.0);
            for iy in 1..d.h {
                // Right margin of row iy−1 and left margin of row iy.
                let gap = first + (iy - 1) * self.wp + d.w;
                out[gap..gap + 2 * p].fill(0.0);
            }
            out[first + (d.h - 1) * self.wp + d.w..base + self.cs].fill(0.0);
            copy_rows(x, (ch * hw, d.w), out, (first, self.wp), d.h, d.w);
        }
    }

    /// `B` offsets of the forward product / weight gradient: row `(c, ki, kj)` is the window
    /// of channel `c` shifted by `(ki, kj)`.
    fn input_rows(&self, c: usize) -> Vec<usize> {
        (0..c)
            .flat_map(|ch| self.offs.iter().map(move |o| ch * self.cs + o))
            .collect()
    }
}

/// Whether the stride-1 padded-buffer path is used: its junk columns cost `(k−1)/Wo` extra
/// work, which explicit columns avoid on small images (where their copy is cheap).
fn implicit(g: &ConvGeometry, d: &Dims) -> bool {
    g.stride == 1 && ((g.k == 1 && g.padding == 0) || d.wo >= 10)
}

/// Convolution `x (B, C, H, W) ∗ w (Cout, C·k·k)` (groups = 1) on the CPU.
pub struct FusedConv(pub ConvGeometry);

/// Samples per step of the weight-gradient accumulation. Fixed (not tied to the thread
/// count) so the summation order, and therefore the result, is the same on every machine.
const DW_CHUNK: usize = 8;

impl FusedConv {
    fn dims(&self, xl: &Layout, wl: &Layout) -> Result<Dims> {
        let (b, c, h, w) = xl.shape().dims4()?;
        let (cout, ckk) = wl.shape().dims2()?;
        let g = &self.0;
        if ckk != c * g.k * g.k {
            candle_core::bail!("conv: weight has {ckk} columns, expected {c}·{}²", g.k);
        }
        let (Some(ho), Some(wo)) = (g.out_len(h), g.out_len(w)) else {
            candle_core::bail!(
                "conv: {h}×{w} input is smaller than the {}×{} kernel",
                g.k,
                g.k
            );
        };
        Ok(Dims {
            b,
            c,
            h,
            w,
            cout,
            ho,
            wo,
        })
    }

    fn forward(&self, x: &[f32], wt: &[f32], d: &Dims) -> Vec<f32> {
        let g = &self.0;
        let ckk = d.ckk(g);
        let (hw_in, hw_out) = (d.h * d.w, d.ho * d.wo);
        // SAFETY: both paths write every output element: the GEMM (not accumulating) or the
        // row copies out of its result cover each sample's `Cout × Ho × Wo` block.
        let mut y = unsafe { output_f32(d.b * d.cout * hw_out) };
        let w_rows = strided(d.cout, ckk);
        let w_cols: Vec<usize> = (0..ckk).collect();
        let a = IndirectA {
            data: wt,
            row_offsets: &w_rows,
            k_offsets: &w_cols,
        };
        if implicit(g, d) {
            let ext = Extended::new(g, d);
            let b_offs = ext.input_rows(d.c);
            parallel::for_each_chunk_mut_init(
                &mut y,
                d.cout * hw_out,
                || {
                    if ext.in_place {
                        (Vec::new(), Vec::new())
                    } else {
                        (vec![0f32; d.c * ext.cs], vec![0f32; d.cout * ext.l])
                    }
                },
                |(xp, yext), bi, yb| {
                    let xs = &x[bi * d.c * hw_in..(bi + 1) * d.c * hw_in];
                    if ext.in_place {
                        let b = IndirectB {
                            data: xs,
                            k_offsets: &b_offs,
                        };
                        gemm::nn(hw_out, a, b, yb, hw_out, false);
                        return;
                    }
                    ext.pad(xs, d, g.padding, xp);
                    let b = IndirectB {
                        data: xp,
                        k_offsets: &b_offs,
                    };
                    gemm::nn(ext.l, a, b, yext, ext.l, false);
                    copy_rows(yext, (0, ext.wp), yb, (0, d.wo), d.cout * d.ho, d.wo);
                },
            );
        } else {
            // Explicit columns, several samples side by side so small images still give the
            // GEMM a wide right-hand side.
            let group = explicit_group(hw_out);
            let table = g.gather_table((d.c, d.h, d.w));
            parallel::for_each_chunk_mut_init(
                &mut y,
                group * d.cout * hw_out,
                || {
                    let out = if group > 1 {
                        group * d.cout * hw_out
                    } else {
                        0
                    };
                    (vec![0f32; ckk * group * hw_out], vec![0f32; out])
                },
                |(cols, out), gi, yg| {
                    let n = yg.len() / (d.cout * hw_out);
                    let width = n * hw_out;
                    for s in 0..n {
                        let xs = &x[(gi * group + s) * d.c * hw_in..][..d.c * hw_in];
                        unfold(&table, hw_out, xs, &mut cols[s * hw_out..], width);
                    }
                    let b_offs = strided(ckk, width);
                    let b = IndirectB {
                        data: cols,
                        k_offsets: &b_offs,
                    };
                    if n == 1 {
                        gemm::nn(hw_out, a, b, yg, hw_out, false);
                        return;
                    }
                    gemm::nn(width, a, b, out, width, false);
                    for s in 0..n {
                        for co in 0..d.cout {
                            yg[(s * d.cout + co) * hw_out..][..hw_out]
                                .copy_from_slice(&out[co * width + s * hw_out..][..hw_out]);
                        }
                    }
                },
            );
        }
        y
    }

    /// Gradients of the input (if `want_dx`) and of the weight (if `want_dw`).
    fn backward(
        &self,
        x: &[f32],
        wt: &[f32],
        dy: &[f32],
        d: &Dims,
        want_dx: bool,
        want_dw: bool,
    ) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
        let g = &self.0;
        let (hw_in, hw_out) = (d.h * d.w, d.ho * d.wo);
        let implicit = implicit(g, d);
        let ext = Extended::new(g, d);
        // The weight gradient reads windows of a padded copy whenever the stride is 1: its
        // product runs over valid output pixels only, so small images cost it no junk
        // columns, and the padded copy is cheaper than gathering im2col columns.
        let dw_implicit = g.stride == 1;
        let table = if implicit && dw_implicit {
            Vec::new()
        } else {
            g.gather_table((d.c, d.h, d.w))
        };
        let dx = want_dx.then(|| {
            let mut dx = if implicit {
                // SAFETY: the implicit products write every element of each sample's
                // gradient (a non-accumulating GEMM, or row copies out of one).
                unsafe { output_f32(d.b * d.c * hw_in) }
            } else {
                // `fold` accumulates into it.
                vec![0f32; d.b * d.c * hw_in]
            };
            let group = if implicit { 1 } else { explicit_group(hw_out) };
            let product = InputGrad::new(g, d, wt, &ext, &table, implicit);
            parallel::for_each_chunk_mut_init(
                &mut dx,
                group * d.c * hw_in,
                || (Vec::new(), Vec::new()),
                |scratch, gi, dxs| {
                    let n = dxs.len() / (d.c * hw_in);
                    let first = gi * group;
                    let dys = &dy[first * d.cout * hw_out..(first + n) * d.cout * hw_out];
                    product.run(dys, n, dxs, scratch);
                },
            );
            dx
        });
        let dw = want_dw.then(|| self.weight_grad(x, dy, d, dw_implicit, &ext, &table));
        (dx, dw)
    }

    /// `dWᵀ = windows · dYᵀ` (`C·k·k × Cout`, so the product's contiguous side is `Cout`),
    /// accumulated over chunks of [`DW_CHUNK`] samples in order; within a chunk, threads
    /// split the rows of dWᵀ, so each entry is summed by one thread in a fixed order and the
    /// result does not depend on the thread count.
    fn weight_grad(
        &self,
        x: &[f32],
        dy: &[f32],
        d: &Dims,
        implicit: bool,
        ext: &Extended,
        table: &[u32],
    ) -> Vec<f32> {
        let g = &self.0;
        let ckk = d.ckk(g);
        let (hw_in, hw_out) = (d.h * d.w, d.ho * d.wo);
        let mut dwt = vec![0f32; ckk * d.cout];
        // Buffers for one chunk, reused by every chunk (each fully rewrites what it reads).
        let chunk = DW_CHUNK.min(d.b);
        let mut dyt_buf = vec![0f32; chunk * hw_out * d.cout];
        let mut in_buf = match (implicit, ext.in_place) {
            (true, true) => Vec::new(),
            (true, false) => vec![0f32; chunk * d.c * ext.cs],
            (false, _) => vec![0f32; ckk * chunk * hw_out],
        };
        let mut first = 0;
        while first < d.b {
            let n = DW_CHUNK.min(d.b - first);
            let xs = &x[first * d.c * hw_in..(first + n) * d.c * hw_in];
            let dys = &dy[first * d.cout * hw_out..(first + n) * d.cout * hw_out];
            // dYᵀ of the chunk: one row of Cout values per output pixel.
            let dyt = &mut dyt_buf[..n * hw_out * d.cout];
            parallel::for_each_chunk_mut(dyt, hw_out * d.cout, |s, rows| {
                let src = &dys[s * d.cout * hw_out..(s + 1) * d.cout * hw_out];
                transpose(src, d.cout, hw_out, rows);
            });
            let dyt_rows = strided(n * hw_out, d.cout);
            // A: rows are the (shifted) input windows, k runs over every output pixel.
            let (data, rows, k_offs) = if implicit && ext.in_place {
                let stride = d.c * hw_in;
                let k_offs: Vec<usize> = (0..n)
                    .flat_map(|s| (0..hw_in).map(move |p| s * stride + p))
                    .collect();
                (xs, ext.input_rows(d.c), k_offs)
            } else if implicit {
                let xp = &mut in_buf[..n * d.c * ext.cs];
                parallel::for_each_chunk_mut(xp, d.c * ext.cs, |s, buf| {
                    ext.pad(&xs[s * d.c * hw_in..][..d.c * hw_in], d, g.padding, buf);
                });
                let stride = d.c * ext.cs;
                let k_offs: Vec<usize> = (0..n)
                    .flat_map(|s| {
                        (0..d.ho).flat_map(move |oy| {
                            (0..d.wo).map(move |ox| s * stride + oy * ext.wp + ox)
                        })
                    })
                    .collect();
                (&in_buf[..], ext.input_rows(d.c), k_offs)
            } else {
                let width = n * hw_out;
                let cols = &mut in_buf[..ckk * width];
                // Threads take whole rows of the columns (all samples of each row), so each
                // writes one contiguous block; a loop over samples left it to one thread.
                let rows_per_task = ckk.div_ceil(2 * parallel::threads()).max(1);
                parallel::for_each_chunk_mut(cols, (rows_per_task * width).max(1), |t, block| {
                    let r0 = t * rows_per_task;
                    let rows = &table[r0 * hw_out..(r0 + block.len() / width) * hw_out];
                    for s in 0..n {
                        let x1 = &xs[s * d.c * hw_in..][..d.c * hw_in];
                        unfold(rows, hw_out, x1, &mut block[s * hw_out..], width);
                    }
                });
                (&in_buf[..], strided(ckk, width), (0..width).collect())
            };
            // Whole 16-row blocks of the GEMM kernel per task (a ragged block costs a full
            // one), dealt out as evenly as whole blocks allow: 144 rows (a 3×3 layer of 16
            // channels) on two threads were three tasks of 48, one thread doing two of
            // them. The split does not change any sum, so results stay thread-independent.
            let blocks = ckk.div_ceil(16);
            let tasks = (2 * parallel::threads()).min(blocks);
            let mut parts = Vec::with_capacity(tasks);
            let (mut rest_c, mut rest_rows) = (&mut dwt[..], &rows[..]);
            for t in 0..tasks {
                let n_blocks = blocks / tasks + usize::from(t < blocks % tasks);
                let n_rows = (16 * n_blocks).min(rest_rows.len());
                let (c, c_rest) = std::mem::take(&mut rest_c).split_at_mut(n_rows * d.cout);
                let (r, r_rest) = rest_rows.split_at(n_rows);
                parts.push((c, r));
                (rest_c, rest_rows) = (c_rest, r_rest);
            }
            parallel::for_each_item(parts, |(c, rows): (&mut [f32], &[usize])| {
                let a = IndirectA {
                    data,
                    row_offsets: rows,
                    k_offsets: &k_offs,
                };
                let b = IndirectB {
                    data: &dyt_buf,
                    k_offsets: &dyt_rows,
                };
                gemm::nn(d.cout, a, b, c, d.cout, true);
            });
            first += n;
        }
        // SAFETY: the transposes write every element.
        let mut dw = unsafe { output_f32(d.cout * ckk) };
        // dW's rows in bands, one per task: band `t` is columns `co0..` of dWᵀ.
        let band = d.cout.div_ceil(2 * parallel::threads()).max(1);
        parallel::for_each_chunk_mut(&mut dw, band * ckk.max(1), |t, rows| {
            let co0 = t * band;
            transpose_block(&dwt[co0..], d.cout, ckk, rows.len() / ckk, rows);
        });
        dw
    }
}

/// The input-gradient product of one call: its operand tables are built once, and
/// [`InputGrad::run`] is called per sample (stride-1 path) or per group of samples
/// (explicit columns) with scratch buffers that live as long as a rayon job.
struct InputGrad<'a> {
    g: &'a ConvGeometry,
    d: &'a Dims,
    wt: &'a [f32],
    /// A = Wᵀ (per flipped tap on the stride-1 path): row offsets and reduction offsets.
    w_rows: Vec<usize>,
    w_cols: Vec<usize>,
    kind: InputGradKind<'a>,
}

enum InputGradKind<'a> {
    /// `dxpad[c, q] = Σ_{co,kk} W[co,c,kk] · dy[co, q − off(kk)]`, a full correlation of the
    /// output gradient with the flipped kernel, read from a copy of the output gradient whose
    /// rows have the padded width, junk columns zeroed and `front` zeros ahead.
    Implicit {
        ext: &'a Extended,
        front: usize,
        row_len: usize,
        /// Output columns per channel: the padded-width rows of the image.
        lx: usize,
        b_offs: Vec<usize>,
    },
    /// `dcols = Wᵀ · dY` for samples side by side, folded back (col2im).
    Explicit { table: &'a [u32] },
}

impl<'a> InputGrad<'a> {
    fn new(
        g: &'a ConvGeometry,
        d: &'a Dims,
        wt: &'a [f32],
        ext: &'a Extended,
        table: &'a [u32],
        implicit: bool,
    ) -> Self {
        let (kk, ckk) = (g.k * g.k, d.ckk(g));
        if implicit {
            let front = ext.max_off();
            let row_len = if ext.in_place {
                d.ho * d.wo
            } else {
                front + ext.hp * ext.wp
            };
            let s0 = g.padding * ext.wp;
            let b_offs = (0..d.cout * kk)
                .map(|r| (r / kk) * row_len + front + s0 - ext.offs[r % kk])
                .collect();
            Self {
                g,
                d,
                wt,
                w_rows: strided(d.c, kk),
                w_cols: (0..d.cout * kk).map(|r| (r / kk) * ckk + r % kk).collect(),
                kind: InputGradKind::Implicit {
                    ext,
                    front,
                    row_len,
                    lx: d.h * ext.wp,
                    b_offs,
                },
            }
        } else {
            Self {
                g,
                d,
                wt,
                w_rows: (0..ckk).collect(),
                w_cols: strided(d.cout, ckk),
                kind: InputGradKind::Explicit { table },
            }
        }
    }

    /// Input gradients `dxs` of the `n` samples whose output gradients are `dys`.
    fn run(&self, dys: &[f32], n: usize, dxs: &mut [f32], scratch: &mut (Vec<f32>, Vec<f32>)) {
        let (g, d) = (self.g, self.d);
        let (hw_in, hw_out) = (d.h * d.w, d.ho * d.wo);
        let a = IndirectA {
            data: self.wt,
            row_offsets: &self.w_rows,
            k_offsets: &self.w_cols,
        };
        // Scratch keeps its contents between calls: every position read is either written
        // by each call or (the zero margins of `dyb`) never written at all.
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        };
        match &self.kind {
            InputGradKind::Implicit {
                ext,
                front,
                row_len,
                lx,
                b_offs,
            } if !ext.in_place => {
                let (dyb, dx_ext) = scratch;
                grow(dyb, d.cout * row_len);
                grow(dx_ext, d.c * lx);
                for (s, dx) in dxs.chunks_exact_mut(d.c * hw_in).enumerate() {
                    for co in 0..d.cout {
                        let src = ((s * d.cout + co) * hw_out, d.wo);
                        let dst = (co * row_len + front, ext.wp);
                        copy_rows(dys, src, dyb, dst, d.ho, d.wo);
                    }
                    let b = IndirectB {
                        data: dyb,
                        k_offsets: b_offs,
                    };
                    gemm::nn(*lx, a, b, dx_ext, *lx, false);
                    for ch in 0..d.c {
                        let src = (ch * lx + g.padding, ext.wp);
                        copy_rows(dx_ext, src, dx, (ch * hw_in, d.w), d.h, d.w);
                    }
                }
            }
            InputGradKind::Implicit { b_offs, .. } => {
                // 1×1 without padding: dx = Wᵀ · dy, read in place.
                for (s, dx) in dxs.chunks_exact_mut(d.c * hw_in).enumerate() {
                    let b = IndirectB {
                        data: &dys[s * d.cout * hw_out..(s + 1) * d.cout * hw_out],
                        k_offsets: b_offs,
                    };
                    gemm::nn(hw_in, a, b, dx, hw_in, false);
                }
            }
            InputGradKind::Explicit { table } => {
                let ckk = d.ckk(g);
                let width = n * hw_out;
                let (dyw, dcols) = scratch;
                grow(dyw, d.cout * width);
                grow(dcols, ckk * width);
                for s in 0..n {
                    for co in 0..d.cout {
                        dyw[co * width + s * hw_out..][..hw_out]
                            .copy_from_slice(&dys[(s * d.cout + co) * hw_out..][..hw_out]);
                    }
                }
                let dy_rows = strided(d.cout, width);
                let b = IndirectB {
                    data: dyw,
                    k_offsets: &dy_rows,
                };
                gemm::nn(width, a, b, dcols, width, false);
                for (s, dx) in dxs.chunks_exact_mut(d.c * hw_in).enumerate() {
                    fold(table, hw_out, &dcols[s * hw_out..], width, dx);
                }
            }
        }
    }
}

/// Samples per GEMM on the explicit-columns path: enough for a wide right-hand side.
fn explicit_group(hw_out: usize) -> usize {
    (256 / hw_out).clamp(1, 16)
}

impl SliceConv for FusedConv {
    fn name(&self) -> &'static str {
        "fused-conv2d"
    }

    fn out_shape(&self, x: &Layout, w: &Layout) -> Result<Shape> {
        let d = self.dims(x, w)?;
        Ok(Shape::from((d.b, d.cout, d.ho, d.wo)))
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
        want_dw: bool,
    ) -> Result<ConvGrads> {
        Ok(self.backward(x, w, dy, &self.dims(xl, wl)?, want_dx, want_dw))
    }
}
