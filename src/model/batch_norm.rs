//! Batch normalisation for `(B, C, H, W)`. In training mode on the CPU it is one fused
//! custom op (forward and backward written as per-channel loops over contiguous rows);
//! candle-nn's `BatchNorm` is a chain of transposes, copies and broadcast ops whose backward
//! reduces full-size tensors over non-contiguous axes, and it dominated small-image training
//! time. Evaluation mode, and other devices, use plain tensor ops.
//!
//! Running statistics are updated from the op's own per-channel statistics (never from
//! tensors that carry the autograd graph) and stored as `running_mean`/`running_var` beside
//! `weight`/`bias`, the PyTorch names, so checkpoints carry them; the optimiser skips them by
//! name.

use std::sync::{Arc, Mutex};

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

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

/// Per-channel statistics of the last training forward, shared between the op's forward,
/// its backward and the running-statistics update.
#[derive(Default)]
struct Stats {
    mean: Vec<f32>,
    /// Biased variance (what normalises the batch).
    var: Vec<f32>,
    inv_std: Vec<f32>,
}

struct FusedBatchNorm {
    eps: f64,
    stats: Arc<Mutex<Stats>>,
}

impl CustomOp3 for FusedBatchNorm {
    fn name(&self) -> &'static str {
        "fused-batch-norm"
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
        let (b, c, h, w) = l1.shape().dims4()?;
        let hw = h * w;
        let x = contiguous_f32(s1, l1, "input")?;
        let gamma = contiguous_f32(s2, l2, "weight")?;
        let beta = contiguous_f32(s3, l3, "bias")?;
        let n = (b * hw) as f64;
        // Statistics per channel in f64 for accuracy; channels are independent.
        let stats: Vec<(f32, f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let mut sum = 0f64;
                for bi in 0..b {
                    let row = &x[(bi * c + ch) * hw..(bi * c + ch + 1) * hw];
                    sum += row.iter().map(|&v| v as f64).sum::<f64>();
                }
                let mean = sum / n;
                let mut sq = 0f64;
                for bi in 0..b {
                    let row = &x[(bi * c + ch) * hw..(bi * c + ch + 1) * hw];
                    sq += row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>();
                }
                let var = sq / n;
                (
                    mean as f32,
                    var as f32,
                    (1.0 / (var + self.eps).sqrt()) as f32,
                )
            })
            .collect();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw).enumerate().for_each(|(row, out)| {
            let ch = row % c;
            let (mean, _, inv) = stats[ch];
            let scale = gamma[ch] * inv;
            let shift = beta[ch] - mean * scale;
            for (o, &v) in out.iter_mut().zip(&x[row * hw..(row + 1) * hw]) {
                *o = v * scale + shift;
            }
        });
        let mut st = self.stats.lock().expect("batch-norm stats");
        st.mean = stats.iter().map(|s| s.0).collect();
        st.var = stats.iter().map(|s| s.1).collect();
        st.inv_std = stats.iter().map(|s| s.2).collect();
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let hw = h * w;
        let n = (b * hw) as f32;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let gv = grad.flatten_all()?.to_vec1::<f32>()?;
        let gam = gamma.to_vec1::<f32>()?;
        let (mean, inv) = {
            let st = self.stats.lock().expect("batch-norm stats");
            (st.mean.clone(), st.inv_std.clone())
        };
        // dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·inv/N · (N·dy − dβ − x̂·dγ), per channel.
        let sums: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut db, mut dg) = (0f64, 0f64);
                for bi in 0..b {
                    let o = (bi * c + ch) * hw;
                    for i in o..o + hw {
                        let xhat = (xv[i] - mean[ch]) * inv[ch];
                        db += gv[i] as f64;
                        dg += (gv[i] * xhat) as f64;
                    }
                }
                (db as f32, dg as f32)
            })
            .collect();
        let mut dx = vec![0f32; xv.len()];
        dx.par_chunks_mut(hw).enumerate().for_each(|(row, out)| {
            let ch = row % c;
            let (db, dg) = sums[ch];
            let k = gam[ch] * inv[ch] / n;
            let o = row * hw;
            for (i, d) in out.iter_mut().enumerate() {
                let xhat = (xv[o + i] - mean[ch]) * inv[ch];
                *d = k * (n * gv[o + i] - db - xhat * dg);
            }
        });
        let dev = x.device();
        let dx = Tensor::from_vec(dx, (b, c, h, w), dev)?;
        let dgamma = Tensor::from_vec(sums.iter().map(|s| s.1).collect::<Vec<_>>(), c, dev)?;
        let dbeta = Tensor::from_vec(sums.iter().map(|s| s.0).collect::<Vec<_>>(), c, dev)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

impl BatchNorm2d {
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.channels {
            candle_core::bail!("batch norm expects {} channels, got {c}", self.channels);
        }
        let m = self.momentum;
        let n = (b * h * w) as f64;
        if train && x.device().is_cpu() {
            let stats = Arc::new(Mutex::new(Stats::default()));
            let y = x.contiguous()?.apply_op3(
                &self.weight,
                &self.bias,
                FusedBatchNorm {
                    eps: self.eps,
                    stats: stats.clone(),
                },
            )?;
            let st = stats.lock().expect("batch-norm stats");
            let dev = x.device();
            let mean = Tensor::from_slice(&st.mean, c, dev)?;
            let unbiased = (Tensor::from_slice(&st.var, c, dev)? * (n / (n - 1.0).max(1.0)))?;
            self.update_running(&mean, &unbiased, m)?;
            return Ok(y);
        }
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
            self.update_running(&mean.detach().flatten_all()?, &unbiased, m)?;
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
    use candle_core::{Device, ModuleT};
    use candle_nn::VarMap;

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

    #[test]
    fn matches_candle_batch_norm_outputs_running_stats_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0.5f32, 2.0, (4, 3, 5, 6), &dev).unwrap()).unwrap();
        let map = VarMap::new();
        let ours = batch_norm2d(3, SeededInit::var_builder(&map, 0, &dev)).unwrap();
        let map2 = VarMap::new();
        let vb2 = candle_nn::VarBuilder::from_varmap(&map2, candle_core::DType::F32, &dev);
        let theirs = candle_nn::batch_norm(3, candle_nn::BatchNormConfig::default(), vb2).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (4, 3, 5, 6), &dev).unwrap();
        for train in [true, true, false] {
            let a = ours.forward_t(x.as_tensor(), train).unwrap();
            let b = theirs.forward_t(x.as_tensor(), train).unwrap();
            assert!(max_diff(&a, &b) < 1e-4, "train={train}");
            if train {
                let ga = (&a * &probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gb = (&b * &probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let dxa = ga.get(x.as_tensor()).unwrap();
                let dxb = gb.get(x.as_tensor()).unwrap();
                assert!(max_diff(dxa, dxb) < 1e-4, "input gradient");
                assert!(
                    max_diff(
                        ga.get(&ours.weight).unwrap(),
                        gb.get(&map2.data().lock().unwrap()["weight"].as_tensor().clone())
                            .unwrap()
                    ) < 1e-3
                );
            }
        }
        assert!(max_diff(ours.running_var.as_tensor(), theirs.running_var()) < 1e-5);
        assert!(max_diff(ours.running_mean.as_tensor(), theirs.running_mean()) < 1e-5);
    }
}
