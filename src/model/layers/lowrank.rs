//! LoRKD's low-rank expert modules on a groups = 1 convolution, and the EKS convolution
//! that applies them to a batch mixing several tasks (METHODS.md, "LoRKD").
//!
//! Task `t` owns `A_t ∈ R^{(r·k)×(Cin·k)}` (Kaiming-uniform, bound `1/√(Cin·k)`) and
//! `B_t ∈ R^{(Cout·k)×(r·k)}` (zero), and its expert convolves with `W0 + ΔW_t`, where
//! `ΔW_t = (α/r) · reshape(B_t A_t)` to `(Cout, Cin, k, k)`, row-major. A sample of task
//! `t` must only ever train `A_t`, `B_t` (and the shared `W0`).
//!
//! Three interchangeable forms compute the same outputs and gradients ([`EksForm`]):
//! - `Reference`: the LoRKD code's form. Every sample gets its own aggregated weight
//!   `W'_b = W0 + Σ_t M[b,t] ΔW_t` (`M` the one-hot task matrix) and the batch is
//!   convolved as a grouped convolution with groups = B, run group by group (which is
//!   also how candle runs grouped convolutions).
//! - `TaskGrouped`: since `M` is one-hot there are only T distinct weights; one ordinary
//!   convolution per present task with `W0 + ΔW_t` over that task's samples, results put
//!   back in batch order.
//! - `LoraStyle`: the adapter baseline of the supplement's Table 2: `x ∗ W0` over the
//!   whole batch plus, per present task, that task's samples convolved with `ΔW_t`.

use candle_core::{DType, IndexOp, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::conv::{conv2d_weight, Conv2d};
use crate::kernels::conv::ConvGeometry;

/// How an [`EksConv`] applies the experts to a mixed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EksForm {
    Reference,
    TaskGrouped,
    LoraStyle,
}

impl EksForm {
    pub const ALL: [EksForm; 3] = [EksForm::Reference, EksForm::TaskGrouped, EksForm::LoraStyle];

    pub fn name(self) -> &'static str {
        match self {
            EksForm::Reference => "reference (per-sample weights, groups = B)",
            EksForm::TaskGrouped => "task-grouped",
            EksForm::LoraStyle => "LoRA-style (x∗W0 + per-task ΔW)",
        }
    }
}

/// Rank and scale of the low-rank experts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowRank {
    pub rank: usize,
    pub alpha: f64,
}

/// A groups = 1 convolution with one low-rank expert per task.
pub struct EksConv {
    base: Conv2d,
    /// Per task: `A_t` and `B_t`.
    experts: Vec<(Tensor, Tensor)>,
    scale: f64,
    rank: usize,
}

impl EksConv {
    /// `base` is the shared convolution (`W0`, under its own names); the factors are
    /// `lora_A.{t}` and `lora_B.{t}` under `vb`.
    pub fn new(base: Conv2d, tasks: usize, low: LowRank, vb: VarBuilder) -> Result<Self> {
        if low.rank == 0 || tasks == 0 {
            candle_core::bail!("low-rank experts need rank ≥ 1 and at least one task");
        }
        let (cout, cin, k, _) = base.weight().dims4()?;
        let a_init = Init::Kaiming {
            dist: candle_nn::init::NormalOrUniform::Uniform,
            fan: candle_nn::init::FanInOut::FanIn,
            // Bound gain·√(3/fan_in) = 1/√(Cin·k).
            non_linearity: candle_nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
        };
        let experts = (0..tasks)
            .map(|t| {
                Ok((
                    vb.get_with_hints((low.rank * k, cin * k), &format!("lora_A.{t}"), a_init)?,
                    vb.get_with_hints(
                        (cout * k, low.rank * k),
                        &format!("lora_B.{t}"),
                        Init::Const(0.0),
                    )?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            base,
            experts,
            scale: low.alpha / low.rank as f64,
            rank: low.rank,
        })
    }

    pub fn tasks(&self) -> usize {
        self.experts.len()
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn base(&self) -> &Conv2d {
        &self.base
    }

    /// `ΔW_t = (α/r) · reshape(B_t A_t)`, shaped like `W0`.
    pub fn delta(&self, task: usize) -> Result<Tensor> {
        let Some((a, b)) = self.experts.get(task) else {
            candle_core::bail!("task {task} has no expert ({} tasks)", self.experts.len());
        };
        (b.matmul(a)? * self.scale)?.reshape(self.base.weight().shape())
    }

    /// `W0 + ΔW_t`: the plain convolution weight of task `t`'s expert.
    pub fn merged_weight(&self, task: usize) -> Result<Tensor> {
        self.base.weight() + self.delta(task)?
    }

    /// The convolution of a batch whose sample `i` belongs to task `tasks[i]`.
    pub fn forward(&self, x: &Tensor, tasks: &[usize], form: EksForm) -> Result<Tensor> {
        let b = x.dim(0)?;
        if tasks.len() != b {
            candle_core::bail!("{} task ids for a batch of {b}", tasks.len());
        }
        if let Some(&t) = tasks.iter().find(|&&t| t >= self.experts.len()) {
            candle_core::bail!("task id {t} out of range ({} tasks)", self.experts.len());
        }
        let g = self.base.geometry();
        match form {
            EksForm::Reference => self.reference(x, tasks, g),
            EksForm::TaskGrouped => per_task_conv(x, tasks, g, |t| self.merged_weight(t)),
            EksForm::LoraStyle => {
                let shared = conv2d_weight(x, self.base.weight(), g)?;
                shared + per_task_conv(x, tasks, g, |t| self.delta(t))?
            }
        }
    }

    /// Per-sample weights `W0 + M·ΔW`, one convolution per sample.
    fn reference(&self, x: &Tensor, tasks: &[usize], g: ConvGeometry) -> Result<Tensor> {
        let dev = x.device();
        let t_count = self.experts.len();
        let mut onehot = vec![0f32; tasks.len() * t_count];
        for (i, &t) in tasks.iter().enumerate() {
            onehot[i * t_count + t] = 1.0;
        }
        let m = Tensor::from_vec(onehot, (tasks.len(), t_count), dev)?.to_dtype(x.dtype())?;
        let deltas = (0..t_count)
            .map(|t| self.delta(t)?.flatten_all())
            .collect::<Result<Vec<_>>>()?;
        let w0 = self.base.weight();
        let per_sample = m
            .matmul(&Tensor::stack(&deltas, 0)?)?
            .broadcast_add(&w0.flatten_all()?)?;
        let outs = (0..tasks.len())
            .map(|i| {
                let w = per_sample.i(i)?.reshape(w0.shape())?;
                conv2d_weight(&x.narrow(0, i, 1)?, &w, g)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&outs, 0)
    }
}

/// Each present task's samples convolved with `weight(task)`, back in batch order.
fn per_task_conv(
    x: &Tensor,
    tasks: &[usize],
    g: ConvGeometry,
    weight: impl Fn(usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let parts = groups(tasks)
        .into_iter()
        .map(|(t, rows)| {
            let y = conv2d_weight(&select(x, &rows)?, &weight(t)?, g)?;
            Ok((rows, y))
        })
        .collect::<Result<Vec<_>>>()?;
    scatter(parts, tasks.len())
}

/// The batch rows of each present task, tasks in increasing order.
fn groups(tasks: &[usize]) -> Vec<(usize, Vec<u32>)> {
    let mut present: Vec<usize> = tasks.to_vec();
    present.sort_unstable();
    present.dedup();
    present
        .into_iter()
        .map(|t| {
            let rows = tasks
                .iter()
                .enumerate()
                .filter(|(_, &u)| u == t)
                .map(|(i, _)| i as u32)
                .collect();
            (t, rows)
        })
        .collect()
}

fn select(x: &Tensor, rows: &[u32]) -> Result<Tensor> {
    let idx = Tensor::from_slice(rows, rows.len(), x.device())?;
    x.index_select(&idx, 0)
}

/// Rows of the per-group outputs put back in batch order.
fn scatter(parts: Vec<(Vec<u32>, Tensor)>, batch: usize) -> Result<Tensor> {
    let mut order = Vec::with_capacity(batch);
    let mut outs = Vec::with_capacity(parts.len());
    for (rows, y) in parts {
        order.extend(rows);
        outs.push(y);
    }
    // `inverse[i]` is the position of batch row i in the concatenation.
    let mut inverse = vec![0u32; batch];
    for (pos, &row) in order.iter().enumerate() {
        inverse[row as usize] = pos as u32;
    }
    let cat = Tensor::cat(&outs, 0)?;
    let idx = Tensor::from_vec(inverse, batch, cat.device())?.to_dtype(DType::U32)?;
    cat.index_select(&idx, 0)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    use super::*;
    use crate::kernels::test_support::{max_abs, max_abs_diff};
    use crate::model::init::SeededInit;
    use crate::model::layers::conv::conv2d_with;

    const LOW: LowRank = LowRank {
        rank: 2,
        alpha: 4.0,
    };

    /// An EKS conv whose B factors are non-zero (fresh ones are zero, which would make the
    /// gradient checks trivial).
    fn eks(tasks: usize, g: ConvGeometry) -> (VarMap, EksConv) {
        let map = VarMap::new();
        let vb = SeededInit::var_builder(&map, 3, &Device::Cpu);
        let base = conv2d_with(3, 4, g, vb.pp("conv")).unwrap();
        let conv = EksConv::new(base, tasks, LOW, vb.pp("conv")).unwrap();
        for (name, var) in map.data().lock().unwrap().iter() {
            if name.contains("lora_B") {
                let t = Tensor::randn(0f32, 0.3, var.shape(), &Device::Cpu).unwrap();
                var.set(&t).unwrap();
            }
        }
        (map, conv)
    }

    fn geometries() -> [ConvGeometry; 2] {
        [
            ConvGeometry {
                k: 3,
                stride: 1,
                padding: 1,
                dilation: 1,
            },
            ConvGeometry {
                k: 1,
                stride: 2,
                padding: 0,
                dilation: 1,
            },
        ]
    }

    /// The three forms agree in outputs and in the gradients of W0, every A_t and B_t and
    /// the input, and the merged weight gives task t's outputs.
    #[test]
    fn forms_agree_in_outputs_and_all_gradients() {
        let dev = Device::Cpu;
        for g in geometries() {
            let (map, conv) = eks(3, g);
            let tasks = [2, 0, 2, 1, 0, 2];
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (6, 3, 7, 5), &dev).unwrap()).unwrap();
            let y_ref = conv
                .forward(x.as_tensor(), &tasks, EksForm::Reference)
                .unwrap();
            let probe = Tensor::randn(0f32, 1.0, y_ref.dims(), &dev).unwrap();
            let run = |form| {
                let y = conv.forward(x.as_tensor(), &tasks, form).unwrap();
                let grads = (&y * &probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                (y, grads)
            };
            let (y0, g0) = run(EksForm::Reference);
            for form in [EksForm::TaskGrouped, EksForm::LoraStyle] {
                let (y, gr) = run(form);
                assert!(max_abs_diff(&y, &y0) < 1e-5, "{form:?} output");
                assert!(
                    max_abs_diff(gr.get(&x).unwrap(), g0.get(&x).unwrap()) < 1e-4,
                    "{form:?} dx"
                );
                for (name, var) in map.data().lock().unwrap().iter() {
                    let d = max_abs_diff(gr.get(var).unwrap(), g0.get(var).unwrap());
                    assert!(d < 1e-4, "{form:?} gradient of {name} differs by {d}");
                }
            }
            // The merged weight alone reproduces a task's rows.
            let merged = conv2d_weight(
                &x.as_tensor().narrow(0, 0, 1).unwrap(),
                &conv.merged_weight(2).unwrap(),
                g,
            )
            .unwrap();
            assert!(max_abs_diff(&merged, &y0.narrow(0, 0, 1).unwrap()) < 1e-5);
        }
    }

    /// A loss over the samples of other tasks gives A_t and B_t exactly zero gradient, in
    /// every form; W0 still gets one.
    #[test]
    fn experts_get_no_gradient_from_other_tasks() {
        let dev = Device::Cpu;
        for g in geometries() {
            let (map, conv) = eks(3, g);
            let tasks = [0, 1, 0, 2, 1];
            let x = Tensor::randn(0f32, 1.0, (5, 3, 6, 6), &dev).unwrap();
            for form in EksForm::ALL {
                let y = conv.forward(&x, &tasks, form).unwrap();
                // Only the rows of tasks 0 and 2 enter the loss: task 1's expert is untouched.
                let keep = Tensor::from_slice(&[1f32, 0., 1., 1., 0.], (5, 1, 1, 1), &dev).unwrap();
                let loss = y
                    .broadcast_mul(&keep)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                let grads = loss.backward().unwrap();
                for (name, var) in map.data().lock().unwrap().iter() {
                    let grad = grads.get(var);
                    if name.ends_with(".1") {
                        if let Some(gv) = grad {
                            let m = max_abs(gv);
                            assert_eq!(
                                m, 0.0,
                                "{form:?}: {name} got gradient {m} from other tasks"
                            );
                        }
                    } else if name.ends_with("weight") {
                        let m = max_abs(grad.unwrap());
                        assert!(m > 0.0, "{form:?}: W0 got no gradient");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_task_ids_are_errors() {
        let (_, conv) = eks(2, geometries()[0]);
        let x = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(conv
            .forward(&x, &[0, 2], EksForm::TaskGrouped)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert!(conv
            .forward(&x, &[0], EksForm::Reference)
            .unwrap_err()
            .to_string()
            .contains("task ids"));
    }
}
