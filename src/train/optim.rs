//! Optimisers with PyTorch semantics and parameter groups by name: SGD with momentum
//! (coupled weight decay, as `torch.optim.SGD`) and AdamW (decoupled decay). Weight decay
//! applies only to weight matrices and kernels (rank ≥ 2), never to biases or norm
//! parameters; batch-norm running statistics are not parameters at all. Optimiser state is
//! exposed as named tensors so checkpoints can resume a run exactly.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use super::sgd_step::{DescentStep, MomentumStep};
use crate::model::layers::batch_norm::is_buffer;
use crate::spec::run::{OptimConfig, OptimizerKind};

/// A trainable variable with its name and decay group.
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

/// The trainable parameters of a var map, sorted by name (so updates happen in a fixed order).
pub fn params_of(map: &candle_nn::VarMap) -> Vec<Param> {
    let data = map.data().lock().expect("var map lock");
    let mut out: Vec<Param> = data
        .iter()
        .filter(|(n, _)| !is_buffer(n))
        .map(|(n, v)| Param {
            name: n.clone(),
            decay: v.as_tensor().rank() >= 2,
            var: v.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub struct Optimizer {
    cfg: OptimConfig,
    params: Vec<Param>,
    /// SGD: momentum buffer; AdamW: first moment.
    m: Vec<Option<Tensor>>,
    /// AdamW: second moment.
    v: Vec<Option<Tensor>>,
    pub steps: u64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Optimizer {
    pub fn new(cfg: &OptimConfig, params: Vec<Param>) -> Self {
        let n = params.len();
        Self {
            cfg: cfg.clone(),
            params,
            m: vec![None; n],
            v: vec![None; n],
            steps: 0,
        }
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Gradients computed from variables carry their own autograd graph; stored
            // state must not, or every step's graph would stay alive through the momentum
            // buffers (an unbounded leak).
            let g = &g.detach();
            let w = &p.var.as_tensor().detach();
            let wd = if p.decay { self.cfg.weight_decay } else { 0.0 };
            match self.cfg.name {
                OptimizerKind::Sgd => {
                    let mom = self.cfg.momentum;
                    match &self.m[i] {
                        // Every later step on the CPU: two passes in place, the same bits
                        // as below (the ops have no GPU kernels).
                        Some(buf)
                            if mom > 0.0
                                && w.device().is_cpu()
                                && w.dtype() == candle_core::DType::F32
                                && buf.is_contiguous()
                                && w.is_contiguous() =>
                        {
                            let step = MomentumStep {
                                momentum: mom as f32,
                                weight_decay: (wd > 0.0).then_some(wd as f32),
                            };
                            buf.inplace_op3(&g.contiguous()?, w, &step)?;
                            w.inplace_op2(buf, &DescentStep { lr: lr as f32 })?;
                        }
                        m => {
                            let g = if wd > 0.0 {
                                (g + (w * wd)?)?
                            } else {
                                g.clone()
                            };
                            let buf = match m {
                                Some(b) if mom > 0.0 => ((b * mom)? + &g)?,
                                _ => g,
                            };
                            p.var.set(&(w - (&buf * lr)?)?)?;
                            // The buffer is updated in place from the next step on, so it
                            // must not be the gradient's own storage.
                            self.m[i] = Some(if wd > 0.0 || mom == 0.0 {
                                buf.detach()
                            } else {
                                buf.copy()?
                            });
                        }
                    }
                }
                OptimizerKind::Adamw => {
                    let m = match &self.m[i] {
                        Some(m) => ((m * BETA1)? + (g * (1.0 - BETA1))?)?,
                        None => (g * (1.0 - BETA1))?,
                    };
                    let v = match &self.v[i] {
                        Some(v) => ((v * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?,
                        None => (g.sqr()? * (1.0 - BETA2))?,
                    };
                    let t = self.steps as i32;
                    let m_hat = (&m / (1.0 - BETA1.powi(t)))?;
                    let v_hat = (&v / (1.0 - BETA2.powi(t)))?;
                    let decayed = if wd > 0.0 {
                        (w * (1.0 - lr * wd))?
                    } else {
                        w.clone()
                    };
                    let update = (m_hat / (v_hat.sqrt()? + EPS)?)?;
                    p.var.set(&(decayed - (update * lr)?)?)?;
                    self.m[i] = Some(m);
                    self.v[i] = Some(v);
                }
            }
        }
        Ok(())
    }

    /// Optimiser state as named tensors (`optim.m.<param>`, `optim.v.<param>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if let Some(m) = &self.m[i] {
                out.push((format!("optim.m.{}", p.name), m.clone()));
            }
            if let Some(v) = &self.v[i] {
                out.push((format!("optim.v.{}", p.name), v.clone()));
            }
        }
        out
    }

    /// Restore state written by [`Optimizer::state`].
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>, steps: u64) {
        for (i, p) in self.params.iter().enumerate() {
            self.m[i] = get(&format!("optim.m.{}", p.name));
            self.v[i] = get(&format!("optim.v.{}", p.name));
        }
        self.steps = steps;
    }
}

#[cfg(test)]
mod tests {
    //! Reference values from PyTorch 2.x:
    //! ```python
    //! import torch
    //! w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
    //! b = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
    //! opt = torch.optim.SGD([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}], lr=0.1, momentum=0.9)
    //! for _ in range(2):
    //!     opt.zero_grad(); ((w ** 2).sum() + (b * 3).sum()).backward(); opt.step()
    //! print(w, b)   # w = [[0.4351, -0.8702], [0.2176, 1.3053]], b = [-0.3700, -1.3700]
    //! ```
    //! By hand: g = 2.1·w, so w1 = 0.79·w; buf2 = 0.9·2.1·w + 2.1·0.79·w = 3.549·w, so
    //! w2 = 0.79·w − 0.3549·w = 0.4351·w; the bias sees g = 3: b1 = b − 0.3, b2 = b1 − 0.57.
    use super::*;
    use crate::spec::run::Schedule;
    use candle_core::Device;

    #[test]
    fn sgd_matches_pytorch() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1.0f32, -2.0, 0.5, 3.0], (2, 2), &dev).unwrap();
        let b = Var::from_slice(&[0.5f32, -0.5], 2, &dev).unwrap();
        let cfg = OptimConfig {
            name: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.1,
            schedule: Schedule::Constant,
            warmup_epochs: 0,
        };
        let mut opt = Optimizer::new(
            &cfg,
            vec![
                Param {
                    name: "w".into(),
                    var: w.clone(),
                    decay: true,
                },
                Param {
                    name: "b".into(),
                    var: b.clone(),
                    decay: false,
                },
            ],
        );
        for _ in 0..2 {
            let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap()
                + (b.as_tensor() * 3.0).unwrap().sum_all().unwrap())
            .unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
        }
        let wv: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let bv: Vec<f32> = b.as_tensor().to_vec1().unwrap();
        for (a, e) in wv.iter().zip([0.4351f32, -0.8702, 0.21755, 1.3053]) {
            assert!((a - e).abs() < 1e-4, "{wv:?}");
        }
        for (a, e) in bv.iter().zip([-0.37f32, -1.37]) {
            assert!((a - e).abs() < 1e-4, "{bv:?}");
        }
    }
}
