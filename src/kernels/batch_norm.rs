//! The CPU kernel of batch normalisation for `(B, C, H, W)`, optionally followed by a ReLU
//! or by a residual add and a ReLU (the three places it appears in a ResNet block), as one
//! candle custom op in both training and evaluation mode. candle-nn's `BatchNorm` is a
//! chain of transposes, copies and broadcast ops, and candle's ReLU backward alone builds a
//! mask with a comparison and a dtype conversion (about 2.5 ms per 64×16×28×28 tensor here);
//! together they dominated small-image training. Fusing also means fewer intermediate
//! tensors (and gradients) held by the autograd graph.
//!
//! The op records its per-channel batch statistics ([`Stats`]) for its backward pass and
//! for its caller, the batch-norm layer, which updates its running statistics from them,
//! never from tensors that carry the autograd graph.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::buffers::{contiguous_f32, output_f32, with_f32};
use super::lane_sums::{grad_sums, relu_grad, row_sq_dev, row_sum};
use super::simd::multiversion;
use crate::util::parallel;

/// What follows the normalisation inside the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    None,
    Relu,
    /// `relu(bn(x) + residual)`.
    AddRelu,
}

/// Per-channel mean and `1/√(var + eps)` used by a forward, kept for its backward.
#[derive(Default)]
pub struct Stats {
    pub mean: Vec<f32>,
    /// Biased batch variance (training) — what the running variance is updated from.
    pub var: Vec<f32>,
    inv_std: Vec<f32>,
}

/// The fused op of one forward: operands `(x, [γ; β])`, or `(x, [γ; β], residual)` for the
/// `AddRelu` tail.
pub struct FusedBatchNorm {
    eps: f64,
    tail: Tail,
    /// Evaluation mode: the running (mean, variance) to normalise with.
    running: Option<(Vec<f32>, Vec<f32>)>,
    pub stats: Arc<Mutex<Stats>>,
}

multiversion! {
    /// One row of the output: `x·scale + shift`, then the tail (`residual` is empty unless
    /// the tail adds one).
    fn normalize_row(out: &mut [f32], x: &[f32], residual: &[f32], scale: f32, shift: f32, relu: bool) {
        if !residual.is_empty() {
            for ((o, &v), &s) in out.iter_mut().zip(x).zip(residual) {
                *o = (v * scale + shift + s).max(0.0);
            }
        } else if relu {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = (v * scale + shift).max(0.0);
            }
        } else {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * scale + shift;
            }
        }
    }
}

multiversion! {
    /// One row of the input gradient, `dx = k·g' + a·x + bias`, and (when `dres` is not
    /// empty) of the residual's gradient `g'`.
    fn input_grad_row(
        dx: &mut [f32],
        dres: &mut [f32],
        x: &[f32],
        g: &[f32],
        out: &[f32],
        coeffs: (f32, f32, f32),
        masked: bool,
    ) {
        let (k, a, bias) = coeffs;
        if masked {
            for (((v, &xi), &gi), &oi) in dx.iter_mut().zip(x).zip(g).zip(out) {
                *v = k * relu_grad(gi, oi) + a * xi + bias;
            }
            for ((v, &gi), &oi) in dres.iter_mut().zip(g).zip(out) {
                *v = relu_grad(gi, oi);
            }
        } else {
            for ((v, &xi), &gi) in dx.iter_mut().zip(x).zip(g) {
                *v = k * gi + a * xi + bias;
            }
            for (v, &gi) in dres.iter_mut().zip(g) {
                *v = gi;
            }
        }
    }
}

impl FusedBatchNorm {
    /// An op normalising with batch statistics (`running = None`, training) or with the
    /// given running (mean, variance) (evaluation).
    pub fn new(eps: f64, tail: Tail, running: Option<(Vec<f32>, Vec<f32>)>) -> Self {
        FusedBatchNorm {
            eps,
            tail,
            running,
            stats: Arc::new(Mutex::new(Stats::default())),
        }
    }

    /// Normalise (with batch or running statistics), apply the tail, record the statistics.
    pub fn forward(
        &self,
        x: &[f32],
        gb: &[f32],
        residual: Option<&[f32]>,
        dims: (usize, usize, usize),
    ) -> Vec<f32> {
        let (b, c, hw) = dims;
        let n = (b * hw) as f64;
        let (gamma, beta) = gb.split_at(c);
        let stats: Vec<(f32, f32, f32)> = match &self.running {
            Some((mean, var)) => (0..c)
                .map(|ch| {
                    (
                        mean[ch],
                        var[ch],
                        (1.0 / (var[ch] as f64 + self.eps).sqrt()) as f32,
                    )
                })
                .collect(),
            None => parallel::map(c, |ch| {
                let row = |bi: usize| &x[(bi * c + ch) * hw..][..hw];
                let sum: f64 = (0..b).map(|bi| row_sum(row(bi))).sum();
                let mean = sum / n;
                let m = mean as f32;
                let sq: f64 = (0..b).map(|bi| row_sq_dev(row(bi), m)).sum();
                let var = sq / n;
                (m, var as f32, (1.0 / (var + self.eps).sqrt()) as f32)
            }),
        };
        // SAFETY: `normalize_row` writes every element of every row.
        let mut y = unsafe { output_f32(x.len()) };
        let relu = self.tail != Tail::None;
        parallel::for_each_chunk_mut(&mut y, hw, |row, out| {
            let ch = row % c;
            let (mean, _, inv) = stats[ch];
            let scale = gamma[ch] * inv;
            let shift = beta[ch] - mean * scale;
            let xs = &x[row * hw..(row + 1) * hw];
            let rs = residual
                .map(|r| &r[row * hw..(row + 1) * hw])
                .unwrap_or(&[]);
            normalize_row(out, xs, rs, scale, shift, relu);
        });
        let mut st = self.stats.lock().expect("batch-norm stats");
        st.mean = stats.iter().map(|s| s.0).collect();
        st.var = stats.iter().map(|s| s.1).collect();
        st.inv_std = stats.iter().map(|s| s.2).collect();
        y
    }

    /// Gradients of x, of `[γ; β]` and (for `AddRelu`) of the residual.
    ///
    /// Training: `dx = γ·inv/N · (N·g − Σg − x̂·Σ(g·x̂))`; evaluation: `dx = γ·inv·g`, where
    /// `g` is the output gradient masked by the ReLU (`out > 0`) when there is one.
    pub fn backward(
        &self,
        x: &[f32],
        gb: &[f32],
        out: &[f32],
        grad: &[f32],
        dims: (usize, usize, usize),
    ) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
        let (b, c, hw) = dims;
        let n = (b * hw) as f32;
        let gamma = &gb[..c];
        let (mean, inv) = {
            let st = self.stats.lock().expect("batch-norm stats");
            (st.mean.clone(), st.inv_std.clone())
        };
        let masked = self.tail != Tail::None;
        let sums: Vec<(f32, f32)> = parallel::map(c, |ch| {
            let (mut db, mut dg) = (0f64, 0f64);
            for bi in 0..b {
                let o = (bi * c + ch) * hw;
                let r = o..o + hw;
                let (sdb, sdg) =
                    grad_sums(&x[r.clone()], &grad[r.clone()], &out[r], mean[ch], masked);
                db += sdb;
                dg += sdg;
            }
            (db as f32, (dg * inv[ch] as f64) as f32)
        });
        let train = self.running.is_none();
        // SAFETY: `input_grad_row` writes every element of `dx` and of `dres`.
        let mut dx = unsafe { output_f32(x.len()) };
        let mut dres = if self.tail == Tail::AddRelu {
            // SAFETY: as above.
            unsafe { output_f32(x.len()) }
        } else {
            Vec::new()
        };
        let mut dres_rows: Vec<&mut [f32]> = dres.chunks_mut(hw).collect();
        dres_rows.resize_with(b * c, Default::default);
        let rows: Vec<_> = dx.chunks_mut(hw).zip(dres_rows).enumerate().collect();
        parallel::for_each_item(rows, |(row, (d, dr))| {
            let ch = row % c;
            let (db, dg) = sums[ch];
            let (m, iv) = (mean[ch], inv[ch]);
            let r = row * hw..(row + 1) * hw;
            let (xs, gs, os) = (&x[r.clone()], &grad[r.clone()], &out[r]);
            // Training: dx = γ·inv/N · (N·g' − Σg' − x̂·Σ(g'·x̂)); evaluation: γ·inv·g'.
            let coeffs = if train {
                let k = gamma[ch] * iv / n;
                (k * n, -k * dg * iv, -k * db + k * dg * iv * m)
            } else {
                (gamma[ch] * iv, 0.0, 0.0)
            };
            input_grad_row(d, dr, xs, gs, os, coeffs, masked);
        });
        let mut dgb = vec![0f32; 2 * c];
        for (ch, &(db, dg)) in sums.iter().enumerate() {
            dgb[ch] = dg;
            dgb[c + ch] = db;
        }
        (dx, dgb, (self.tail == Tail::AddRelu).then_some(dres))
    }

    fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
        let (b, c, h, w) = l.shape().dims4()?;
        Ok((b, c, h * w))
    }
}

impl CustomOp2 for FusedBatchNorm {
    fn name(&self) -> &'static str {
        "fused-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "input")?;
        let gb = contiguous_f32(s2, l2, "weight and bias")?;
        let y = self.forward(x, gb, None, Self::dims(l1)?);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gb: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dims = Self::dims(x.layout())?;
        let (dx, dgb, _) = with_f32([x, gb, res, grad], |[xv, gbv, rv, gv]| {
            Ok(self.backward(xv, gbv, rv, gv, dims))
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), dev)?),
            Some(Tensor::from_vec(dgb, gb.dims(), dev)?),
        ))
    }
}

impl CustomOp3 for FusedBatchNorm {
    fn name(&self) -> &'static str {
        "fused-batch-norm-add-relu"
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
        if l3.shape() != l1.shape() {
            candle_core::bail!(
                "residual shape {:?} differs from input shape {:?}",
                l3.shape(),
                l1.shape()
            );
        }
        let x = contiguous_f32(s1, l1, "input")?;
        let gb = contiguous_f32(s2, l2, "weight and bias")?;
        let r = contiguous_f32(s3, l3, "residual")?;
        let y = self.forward(x, gb, Some(r), Self::dims(l1)?);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gb: &Tensor,
        residual: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = Self::dims(x.layout())?;
        let (dx, dgb, dres) = with_f32([x, gb, res, grad], |[xv, gbv, rv, gv]| {
            Ok(self.backward(xv, gbv, rv, gv, dims))
        })?;
        let dev = x.device();
        let dres = match (dres, residual.track_op()) {
            (Some(v), true) => Some(Tensor::from_vec(v, x.dims(), dev)?),
            _ => None,
        };
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), dev)?),
            Some(Tensor::from_vec(dgb, gb.dims(), dev)?),
            dres,
        ))
    }
}
