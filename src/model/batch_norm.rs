//! Batch normalisation for `(B, C, H, W)`, optionally followed by a ReLU or by a residual
//! add and a ReLU (the three places it appears in a ResNet block), as one fused custom op
//! on the CPU in both training and evaluation mode. candle-nn's `BatchNorm` is a chain of
//! transposes, copies and broadcast ops, and candle's ReLU backward alone builds a mask with
//! a comparison and a dtype conversion (about 2.5 ms per 64×16×28×28 tensor here); together
//! they dominated small-image training. Fusing also means fewer intermediate tensors (and
//! gradients) held by the autograd graph. Other devices use plain tensor ops.
//!
//! Running statistics are updated from the op's own per-channel statistics (never from
//! tensors that carry the autograd graph) and stored as `running_mean`/`running_var` beside
//! `weight`/`bias`, the PyTorch names, so checkpoints carry them; the optimiser skips them by
//! name.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use super::conv_bn::{conv_bn, FusableConv};
use super::lane_sums::{grad_sums, relu_grad, row_sq_dev, row_sum};
use super::simd::multiversion;
use super::{contiguous_f32, output_f32, with_f32};

pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    channels: usize,
    eps: f64,
    momentum: f64,
}

pub fn batch_norm2d(channels: usize, vb: VarBuilder) -> Result<BatchNorm2d> {
    let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
    let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
    Ok(BatchNorm2d {
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        // `from_tensor` of a variable shares its storage, so updates land in the var map.
        running_mean: Var::from_tensor(&running_mean)?,
        running_var: Var::from_tensor(&running_var)?,
        channels,
        eps: 1e-5,
        momentum: 0.1,
    })
}

/// What follows the normalisation inside the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    None,
    Relu,
    /// `relu(bn(x) + residual)`.
    AddRelu,
}

/// Per-channel mean and `1/√(var + eps)` used by a forward, kept for its backward.
#[derive(Default)]
pub(crate) struct Stats {
    mean: Vec<f32>,
    /// Biased batch variance (training) — what the running variance is updated from.
    var: Vec<f32>,
    inv_std: Vec<f32>,
}

pub(crate) struct FusedBatchNorm {
    eps: f64,
    tail: Tail,
    /// Evaluation mode: the running (mean, variance) to normalise with.
    running: Option<(Vec<f32>, Vec<f32>)>,
    pub(crate) stats: Arc<Mutex<Stats>>,
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
    /// Normalise (with batch or running statistics), apply the tail, record the statistics.
    pub(crate) fn forward(
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
            None => (0..c)
                .into_par_iter()
                .map(|ch| {
                    let row = |bi: usize| &x[(bi * c + ch) * hw..][..hw];
                    let sum: f64 = (0..b).map(|bi| row_sum(row(bi))).sum();
                    let mean = sum / n;
                    let m = mean as f32;
                    let sq: f64 = (0..b).map(|bi| row_sq_dev(row(bi), m)).sum();
                    let var = sq / n;
                    (m, var as f32, (1.0 / (var + self.eps).sqrt()) as f32)
                })
                .collect(),
        };
        // SAFETY: `normalize_row` writes every element of every row.
        let mut y = unsafe { output_f32(x.len()) };
        let relu = self.tail != Tail::None;
        y.par_chunks_mut(hw).enumerate().for_each(|(row, out)| {
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
    pub(crate) fn backward(
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
        let sums: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
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
            })
            .collect();
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
        dx.par_chunks_mut(hw)
            .zip(dres_rows)
            .enumerate()
            .for_each(|(row, (d, dr))| {
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

impl BatchNorm2d {
    /// `bn(x)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.apply(x, None, Tail::None, train)
    }

    /// `relu(bn(x))`.
    pub fn forward_relu(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.apply(x, None, Tail::Relu, train)
    }

    /// `relu(bn(x) + residual)`.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.apply(x, Some(residual), Tail::AddRelu, train)
    }

    fn apply(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        tail: Tail,
        train: bool,
    ) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.channels {
            candle_core::bail!("batch norm expects {} channels, got {c}", self.channels);
        }
        if !x.device().is_cpu() {
            let y = self.forward_tensor_ops(x, train)?;
            return match residual {
                Some(r) => (y + r)?.relu(),
                None if tail == Tail::Relu => y.relu(),
                None => Ok(y),
            };
        }
        let op = self.fused_op(tail, train)?;
        let stats = op.stats.clone();
        let gb = self.gamma_beta()?;
        let x = x.contiguous()?;
        let y = match residual {
            Some(r) => x.apply_op3(&gb, &r.contiguous()?, op)?,
            None => x.apply_op2(&gb, op)?,
        };
        self.record(&stats, b * h * w, train)?;
        Ok(y)
    }

    /// `bn(conv(x))` as one op on the CPU (see [`super::conv_bn`]).
    pub fn after_conv(&self, conv: &dyn FusableConv, x: &Tensor, train: bool) -> Result<Tensor> {
        conv_bn(conv, self, x, None, Tail::None, train)
    }

    /// `relu(bn(conv(x)))` as one op on the CPU.
    pub fn after_conv_relu(
        &self,
        conv: &dyn FusableConv,
        x: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        conv_bn(conv, self, x, None, Tail::Relu, train)
    }

    /// `relu(bn(conv(x)) + residual)` as one op on the CPU.
    pub fn after_conv_add_relu(
        &self,
        conv: &dyn FusableConv,
        x: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        conv_bn(conv, self, x, Some(residual), Tail::AddRelu, train)
    }

    /// `[γ; β]`, the fused op's second operand.
    pub(crate) fn gamma_beta(&self) -> Result<Tensor> {
        Tensor::cat(&[&self.weight, &self.bias], 0)
    }

    /// The fused CPU op for one forward (with the running statistics in evaluation mode).
    pub(crate) fn fused_op(&self, tail: Tail, train: bool) -> Result<FusedBatchNorm> {
        let running = (!train).then(|| -> Result<_> {
            Ok((
                self.running_mean.as_tensor().to_vec1::<f32>()?,
                self.running_var.as_tensor().to_vec1::<f32>()?,
            ))
        });
        Ok(FusedBatchNorm {
            eps: self.eps,
            tail,
            running: running.transpose()?,
            stats: Arc::new(Mutex::new(Stats::default())),
        })
    }

    /// Training mode: update the running statistics from a forward's batch statistics
    /// (`n` values per channel).
    pub(crate) fn record(&self, stats: &Arc<Mutex<Stats>>, n: usize, train: bool) -> Result<()> {
        if !train {
            return Ok(());
        }
        let st = stats.lock().expect("batch-norm stats");
        let dev = self.weight.device();
        let n = n as f64;
        let mean = Tensor::from_slice(&st.mean, self.channels, dev)?;
        let unbiased =
            (Tensor::from_slice(&st.var, self.channels, dev)? * (n / (n - 1.0).max(1.0)))?;
        self.update_running(&mean, &unbiased, self.momentum)
    }

    /// The same normalisation out of tensor ops (devices without the fused kernel).
    fn forward_tensor_ops(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = (b * h * w) as f64;
        let xs = x.reshape((b, c, h * w))?;
        let shape = (1, c, 1);
        let (mean, var) = if train {
            let mean = (xs.sum_keepdim(2)?.sum_keepdim(0)? / n)?;
            let var = (xs
                .broadcast_sub(&mean)?
                .sqr()?
                .sum_keepdim(2)?
                .sum_keepdim(0)?
                / n)?;
            let unbiased = (var.detach().flatten_all()? * (n / (n - 1.0).max(1.0)))?;
            self.update_running(&mean.detach().flatten_all()?, &unbiased, self.momentum)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape(shape)?,
                self.running_var.as_tensor().reshape(shape)?,
            )
        };
        let scale = self
            .weight
            .reshape(shape)?
            .broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let shift = (self.bias.reshape(shape)? - mean.broadcast_mul(&scale)?)?;
        xs.broadcast_mul(&scale)?
            .broadcast_add(&shift)?
            .reshape((b, c, h, w))
    }

    fn update_running(&self, mean: &Tensor, unbiased_var: &Tensor, m: f64) -> Result<()> {
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased_var * m)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::SeededInit;
    use crate::model::test_support::max_abs_diff;
    use candle_core::{Device, ModuleT};
    use candle_nn::VarMap;

    fn grads_of(y: &Tensor, probe: &Tensor) -> candle_core::backprop::GradStore {
        (y * probe).unwrap().sum_all().unwrap().backward().unwrap()
    }

    /// Plain BN against candle-nn's (outputs in both modes, running statistics, gradients),
    /// then the fused tails against BN followed by candle's own ReLU / add, in training and
    /// in evaluation mode.
    #[test]
    fn matches_candle_batch_norm_and_fused_tails_match_tensor_ops() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0.5f32, 2.0, (4, 3, 5, 6), &dev).unwrap()).unwrap();
        let r = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, 5, 6), &dev).unwrap()).unwrap();
        let map = VarMap::new();
        let ours = batch_norm2d(3, SeededInit::var_builder(&map, 0, &dev)).unwrap();
        let map2 = VarMap::new();
        let vb2 = candle_nn::VarBuilder::from_varmap(&map2, candle_core::DType::F32, &dev);
        let theirs = candle_nn::batch_norm(3, candle_nn::BatchNormConfig::default(), vb2).unwrap();
        let their_weight = map2.data().lock().unwrap()["weight"].as_tensor().clone();
        let probe = Tensor::randn(0f32, 1.0, (4, 3, 5, 6), &dev).unwrap();
        for train in [true, true, false] {
            let a = ours.forward_t(x.as_tensor(), train).unwrap();
            let b = theirs.forward_t(x.as_tensor(), train).unwrap();
            assert!(max_abs_diff(&a, &b) < 1e-4, "train={train}");
            let (ga, gb) = (grads_of(&a, &probe), grads_of(&b, &probe));
            let dxa = ga.get(x.as_tensor()).unwrap();
            let dxb = gb.get(x.as_tensor()).unwrap();
            assert!(
                max_abs_diff(dxa, dxb) < 1e-4,
                "input gradient, train={train}"
            );
            let dwa = ga.get(&ours.weight).unwrap();
            assert!(
                max_abs_diff(dwa, gb.get(&their_weight).unwrap()) < 1e-3,
                "train={train}"
            );
        }
        assert!(max_abs_diff(ours.running_var.as_tensor(), theirs.running_var()) < 1e-5);
        assert!(max_abs_diff(ours.running_mean.as_tensor(), theirs.running_mean()) < 1e-5);
        for train in [true, false] {
            let relu_ref = ours
                .forward_t(x.as_tensor(), train)
                .unwrap()
                .relu()
                .unwrap();
            let relu = ours.forward_relu(x.as_tensor(), train).unwrap();
            assert!(max_abs_diff(&relu, &relu_ref) < 1e-6, "relu, train={train}");
            let (ga, gb) = (grads_of(&relu, &probe), grads_of(&relu_ref, &probe));
            assert!(
                max_abs_diff(
                    ga.get(x.as_tensor()).unwrap(),
                    gb.get(x.as_tensor()).unwrap()
                ) < 1e-5
            );
            assert!(max_abs_diff(ga.get(&ours.bias).unwrap(), gb.get(&ours.bias).unwrap()) < 1e-4);
            let add_ref = (ours.forward_t(x.as_tensor(), train).unwrap() + r.as_tensor())
                .unwrap()
                .relu()
                .unwrap();
            let add = ours
                .forward_add_relu(x.as_tensor(), r.as_tensor(), train)
                .unwrap();
            assert!(
                max_abs_diff(&add, &add_ref) < 1e-6,
                "add+relu, train={train}"
            );
            let (ga, gb) = (grads_of(&add, &probe), grads_of(&add_ref, &probe));
            for v in [x.as_tensor(), r.as_tensor(), &ours.weight, &ours.bias] {
                assert!(
                    max_abs_diff(ga.get(v).unwrap(), gb.get(v).unwrap()) < 1e-4,
                    "train={train}"
                );
            }
        }
    }
}
