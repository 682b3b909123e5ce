//! Per-task gradients of the shared parameters and the weightings built on them
//! (MoCo-MTL, Aligned-MTL). One forward pass gives every task's loss; each loss is then
//! differentiated on its own, the gradients of the shared parameters are flattened into
//! one vector per task (in the fixed order of [`StepContext::shared`]), and a balancer
//! turns them into one shared gradient. Task-specific parameters (the heads) keep their
//! own task's gradient.
//!
//! Memory: Aligned-MTL holds the T flattened gradients and the result (T + 1 copies of the
//! shared parameters); MoCo-MTL folds each task's gradient into its running estimate Y
//! before the next backward pass (Y, one gradient and the result: T + 2). Each backward
//! pass's own store is dropped once its gradients are taken.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

use super::aligned::aligned;
use super::moco::MoCo;
use super::weighting::{StepContext, Weighting};
use crate::spec::options::{MocoConfig, StepDecay};

/// How the per-task gradients are combined.
pub enum Balance {
    Aligned,
    MoCo(MoCo),
}

pub struct GradientBalancing {
    balance: Balance,
}

impl GradientBalancing {
    pub fn aligned() -> Self {
        GradientBalancing {
            balance: Balance::Aligned,
        }
    }

    pub fn moco(cfg: MocoConfig, tasks: usize) -> Self {
        GradientBalancing {
            balance: Balance::MoCo(MoCo::new(cfg, tasks)),
        }
    }
}

/// The gradients of `vars` in `store`, flattened in order (zeros where a variable got
/// none), removed from the store.
fn take_flat(store: &mut GradStore, vars: &[Var]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(vars.iter().map(|v| v.elem_count()).sum());
    for v in vars {
        match store.remove(v.as_tensor()) {
            Some(g) => out.extend(g.flatten_all()?.to_vec1::<f32>()?),
            None => out.extend(std::iter::repeat_n(0.0, v.elem_count())),
        }
    }
    Ok(out)
}

/// Checkpoint names of MoCo-MTL's state.
const MOCO_Y: &str = "weighting.moco.y";
const MOCO_LAMBDA: &str = "weighting.moco.lambda";

impl Weighting for GradientBalancing {
    fn differentiates_each_loss(&self) -> bool {
        true
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let Balance::MoCo(m) = &self.balance else {
            return Ok(Vec::new());
        };
        let Some((y, dim, lambda)) = m.state() else {
            return Ok(Vec::new());
        };
        let dev = candle_core::Device::Cpu;
        Ok(vec![
            (
                MOCO_Y.into(),
                Tensor::from_vec(y, (lambda.len(), dim), &dev)?,
            ),
            (MOCO_LAMBDA.into(), Tensor::new(lambda.as_slice(), &dev)?),
        ])
    }

    fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> std::result::Result<(), String> {
        let Balance::MoCo(m) = &mut self.balance else {
            return Ok(());
        };
        let (Some(y), Some(lambda)) = (tensors.get(MOCO_Y), tensors.get(MOCO_LAMBDA)) else {
            return Err(format!(
                "it lacks MoCo-MTL's running estimate (`{MOCO_Y}`, `{MOCO_LAMBDA}`), \
                 so the run cannot continue exactly where it stopped"
            ));
        };
        let read = || -> Result<(Vec<f32>, usize, Vec<f64>)> {
            let dim = y.dims().last().copied().unwrap_or(0);
            Ok((
                y.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
                dim,
                lambda.to_dtype(DType::F64)?.to_vec1()?,
            ))
        };
        let (y, dim, lambda) =
            read().map_err(|e| format!("its MoCo-MTL state is unreadable ({e})"))?;
        m.restore(&y, dim, &lambda)
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        ctx: &StepContext,
    ) -> Result<(GradStore, Vec<(usize, f64)>)> {
        let dim: usize = ctx.shared.iter().map(|v| v.elem_count()).sum();
        let shared_ids: std::collections::HashSet<_> =
            ctx.shared.iter().map(|v| v.as_tensor().id()).collect();
        let own_vars: Vec<&Var> = ctx
            .params
            .iter()
            .filter(|v| !shared_ids.contains(&v.as_tensor().id()))
            .collect();
        let mut own: Vec<(Var, Tensor)> = Vec::new();
        let mut rows: Vec<Vec<f32>> = Vec::new();
        let mut present = vec![false; ctx.num_tasks];
        let k = match &self.balance {
            Balance::MoCo(m) if m.decay() == StepDecay::Epoch => ctx.epoch as u64,
            _ => ctx.step,
        }
        .max(1);
        for (i, loss) in losses.iter().enumerate() {
            let mut store = loss.backward()?;
            let flat = take_flat(&mut store, ctx.shared)?;
            for v in &own_vars {
                if let Some(g) = store.remove(v.as_tensor()) {
                    match own
                        .iter_mut()
                        .find(|(o, _)| o.as_tensor().id() == v.as_tensor().id())
                    {
                        Some((_, acc)) => *acc = (&*acc + g)?,
                        None => own.push(((*v).clone(), g)),
                    }
                }
            }
            drop(store);
            let t = ctx.tasks[i];
            present[t] = true;
            match &mut self.balance {
                Balance::Aligned => rows.push(flat),
                Balance::MoCo(m) => {
                    // MoCo scales each normalised gradient by the task's loss: its mean
                    // over the task's samples, as with LibMTL's per-task batches, not the
                    // term's share of the mixed batch (which made the updates ~T× smaller).
                    let term = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                    let share = ctx
                        .shares
                        .get(i)
                        .copied()
                        .unwrap_or(1.0)
                        .max(f64::MIN_POSITIVE);
                    m.absorb(t, k, Some((&flat, term / share)), dim);
                }
            }
        }
        let (weights, shared) = match &mut self.balance {
            Balance::Aligned => {
                let a = aligned(&rows);
                let mut g = vec![0.0f32; dim];
                for (w, row) in a.weights.iter().zip(&rows) {
                    for (gi, ri) in g.iter_mut().zip(row) {
                        *gi += (*w * *ri as f64) as f32;
                    }
                }
                (ctx.tasks.iter().copied().zip(a.weights).collect(), g)
            }
            Balance::MoCo(m) => {
                for (t, p) in present.iter().enumerate() {
                    if !p {
                        m.absorb(t, k, None, dim);
                    }
                }
                // Every λ_t weighs its row of Y, present in the batch or not.
                let (lambda, g) = m.finish(k);
                (lambda.into_iter().enumerate().collect(), g)
            }
        };
        // A store holding only a throw-away scalar, to be filled with the final gradients.
        let device = losses
            .first()
            .map(|l| l.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let mut out = Tensor::new(0f32, &device)?.backward()?;
        let mut offset = 0;
        for v in ctx.shared {
            let n = v.elem_count();
            let g = Tensor::from_slice(&shared[offset..offset + n], v.shape(), &device)?;
            out.insert(v.as_tensor(), g);
            offset += n;
        }
        for (v, g) in own {
            out.insert(v.as_tensor(), g);
        }
        Ok((out, weights))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;
    use crate::spec::options::LambdaUpdate;

    /// Two tasks sharing `w` (3 values), each with its own head scalar. The per-task
    /// gradients are worked out by hand: L_a = h_a·(w·x_a), L_b = h_b·(w·x_b)².
    #[test]
    fn per_task_gradients_are_combined_and_heads_keep_their_own() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1f32, -1., 2.], 3, &dev).unwrap();
        let ha = Var::from_slice(&[2f32], 1, &dev).unwrap();
        let hb = Var::from_slice(&[0.5f32], 1, &dev).unwrap();
        let xa = Tensor::from_slice(&[1f32, 0., 1.], 3, &dev).unwrap();
        let xb = Tensor::from_slice(&[0f32, 1., 1.], 3, &dev).unwrap();
        let za = (w.as_tensor() * &xa).unwrap().sum_all().unwrap(); // 3
        let zb = (w.as_tensor() * &xb).unwrap().sum_all().unwrap(); // 1
        let la = (ha.as_tensor().sum_all().unwrap() * &za).unwrap();
        let lb = (hb.as_tensor().sum_all().unwrap() * zb.sqr().unwrap()).unwrap();
        // g_a = h_a·x_a = [2, 0, 2]; g_b = 2·h_b·z_b·x_b = [0, 1, 1].
        let shared = [w.clone()];
        let params = [w.clone(), ha.clone(), hb.clone()];
        let ctx = StepContext {
            tasks: &[0, 1],
            shares: &[1.0, 1.0],
            num_tasks: 2,
            shared: &shared,
            params: &params,
            step: 1,
            epoch: 1,
        };
        let mut al = GradientBalancing::aligned();
        let (grads, weights) = al.backward(&[la.clone(), lb.clone()], &ctx).unwrap();
        let rows = vec![vec![2f32, 0., 2.], vec![0f32, 1., 1.]];
        let a = aligned(&rows);
        assert_eq!(weights, vec![(0, a.weights[0]), (1, a.weights[1])]);
        let want: Vec<f32> = (0..3)
            .map(|d| (a.weights[0] * rows[0][d] as f64 + a.weights[1] * rows[1][d] as f64) as f32)
            .collect();
        assert_eq!(
            grads.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            want
        );
        // Heads: dL_a/dh_a = z_a = 3, dL_b/dh_b = z_b² = 1.
        assert_eq!(
            grads.get(ha.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [3.0]
        );
        assert_eq!(
            grads.get(hb.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [1.0]
        );

        let mut mo = GradientBalancing::moco(
            MocoConfig {
                lambda_update: LambdaUpdate::Softmax,
                ..Default::default()
            },
            2,
        );
        // Terms that are shares of a mixed batch: MoCo scales by the tasks' mean losses.
        let ctx = StepContext {
            shares: &[0.5, 0.25],
            ..ctx
        };
        let (grads, weights) = mo.backward(&[la, lb], &ctx).unwrap();
        let mut reference = MoCo::new(MocoConfig::default(), 2);
        // L_a = 6 and L_b = 0.5 as terms; their task means are 6 / 0.5 and 0.5 / 0.25.
        reference.absorb(0, 1, Some((&rows[0], 12.0)), 3);
        reference.absorb(1, 1, Some((&rows[1], 2.0)), 3);
        let (lambda, g) = reference.finish(1);
        assert_eq!(weights, vec![(0, lambda[0]), (1, lambda[1])]);
        assert_eq!(
            grads.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            g
        );
    }

    /// MoCo's state survives a checkpoint round trip; a checkpoint without it is refused
    /// rather than silently restarting Y and λ.
    #[test]
    fn moco_state_round_trips_and_is_required() {
        let mut a = GradientBalancing::moco(MocoConfig::default(), 2);
        assert!(
            a.state().unwrap().is_empty(),
            "nothing before the first step"
        );
        if let Balance::MoCo(m) = &mut a.balance {
            m.absorb(0, 1, Some((&[1.0, 2.0, 3.0], 0.5)), 3);
            m.absorb(1, 1, None, 3);
            m.finish(1);
        }
        let tensors: std::collections::HashMap<String, Tensor> =
            a.state().unwrap().into_iter().collect();
        let mut b = GradientBalancing::moco(MocoConfig::default(), 2);
        b.load_state(&tensors).unwrap();
        let (Balance::MoCo(ma), Balance::MoCo(mb)) = (&a.balance, &b.balance) else {
            unreachable!()
        };
        assert_eq!(ma.state(), mb.state());
        let err = GradientBalancing::moco(MocoConfig::default(), 2)
            .load_state(&Default::default())
            .unwrap_err();
        assert!(err.contains("lacks MoCo-MTL's running estimate"), "{err}");
        let mut three = GradientBalancing::moco(MocoConfig::default(), 3);
        assert!(three.load_state(&tensors).is_err(), "another task count");
        assert!(GradientBalancing::aligned().state().unwrap().is_empty());
    }
}
