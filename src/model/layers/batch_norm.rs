//! Batch normalisation for `(B, C, H, W)`, optionally followed by a ReLU or by a residual
//! add and a ReLU: on the CPU one fused custom op ([`crate::kernels::batch_norm`]) in both
//! training and evaluation mode; other devices use plain tensor ops.
//!
//! Running statistics are updated from the op's own per-channel statistics (never from
//! tensors that carry the autograd graph) and stored as `running_mean`/`running_var` beside
//! `weight`/`bias`, the PyTorch names, so checkpoints carry them; the optimiser skips them by
//! name.

use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::kernels::batch_norm::{FusedBatchNorm, Stats, Tail};

/// Names of variables that are state (the running statistics), not parameters: optimisers
/// and parameter counts skip them.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

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
        Ok(FusedBatchNorm::new(self.eps, tail, running.transpose()?))
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
    use crate::kernels::test_support::max_abs_diff;
    use crate::model::init::SeededInit;
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
