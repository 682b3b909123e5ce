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

use std::sync::Arc;

use super::conv::{check_and_record, conv2d_weight, Conv2d};
use crate::kernels::conv::ConvGeometry;
use crate::kernels::slice_conv::{SliceConv, SliceConvOp};
use crate::kernels::task_conv::TaskConv;

/// How an [`EksConv`] applies the experts to a mixed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EksForm {
    Reference,
    TaskGrouped,
    LoraStyle,
    /// `x∗W0 + (α/r)·((x∗A_t)∗B_t)`: the factors applied as two convolutions, without
    /// forming `ΔW_t`. Only for 1×1 layers, where `reshape(B_t A_t)` is exactly the
    /// composition of a 1×1 convolution to `r` channels and one back (for k > 1 the
    /// reshape mixes kernel positions into the channels, which no pair of convolutions does).
    Factorised,
    /// Per layer, the merged form (task-grouped) or the factorised one, by the supplement's
    /// cost model: merged when `T·r/(b·l) + 1 ≤ r` ([`merged_is_cheaper`]) or the layer is
    /// not 1×1. What training uses.
    Auto,
}

impl EksForm {
    /// The forms every layer has (the factorised one exists for 1×1 layers only).
    pub const ALL: [EksForm; 3] = [EksForm::Reference, EksForm::TaskGrouped, EksForm::LoraStyle];

    pub fn name(self) -> &'static str {
        match self {
            EksForm::Reference => "reference (per-sample weights, groups = B)",
            EksForm::TaskGrouped => "task-grouped",
            EksForm::LoraStyle => "LoRA-style (x∗W0 + per-task ΔW)",
            EksForm::Factorised => "factorised (x∗W0 + (x∗A_t)∗B_t)",
            EksForm::Auto => "merged or factorised per layer",
        }
    }
}

thread_local! {
    /// Where [`forms_chosen`] collects the choices of [`EksForm::Auto`].
    static CHOSEN: std::cell::RefCell<Option<Vec<FormChoice>>> = const { std::cell::RefCell::new(None) };
}

/// One layer's choice under [`EksForm::Auto`]: its kernel size, `T·r/(b·l) + 1` and rank,
/// and the form taken.
#[derive(Debug, Clone, Copy)]
pub struct FormChoice {
    pub k: usize,
    pub cost_ratio: f64,
    pub rank: usize,
    pub form: EksForm,
}

/// Runs `f` and returns what every EKS layer it ran in [`EksForm::Auto`] chose (the forward
/// passes run on the calling thread).
pub fn forms_chosen<R>(f: impl FnOnce() -> R) -> (R, Vec<FormChoice>) {
    let outer = CHOSEN.with_borrow_mut(|c| c.replace(Vec::new()));
    let r = f();
    let chosen = CHOSEN
        .with_borrow_mut(|c| std::mem::replace(c, outer))
        .unwrap_or_default();
    (r, chosen)
}

fn record_choice(choice: FormChoice) {
    CHOSEN.with_borrow_mut(|c| {
        if let Some(c) = c {
            c.push(choice);
        }
    });
}

/// The supplement's cost model (section D, after FLoRA): forming the `T` present tasks'
/// merged weights costs `T·r·d²` on top of the convolution's `b·l·d²`, the factorised
/// form `r·b·l·d²`; merged is cheaper when `T·r/(b·l) + 1 ≤ r`, with `b` the batch and `l`
/// the output positions of the layer.
pub fn merged_is_cheaper(tasks: usize, rank: usize, batch: usize, positions: usize) -> bool {
    let bl = (batch * positions).max(1) as f64;
    (tasks * rank) as f64 / bl + 1.0 <= rank as f64
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
        self.check_tasks(x, tasks)?;
        let g = self.base.geometry();
        let form = match form {
            EksForm::Auto => self.chosen_form(x, tasks)?,
            f => f,
        };
        match form {
            EksForm::Auto => unreachable!("resolved above"),
            EksForm::Reference => self.reference(x, tasks, g),
            EksForm::Factorised => self.factorised(x, tasks, g),
            EksForm::TaskGrouped => per_task_conv(x, tasks, g, |t| self.merged_weight(t)),
            EksForm::LoraStyle => {
                let shared = conv2d_weight(x, self.base.weight(), g)?;
                shared + per_task_conv(x, tasks, g, |t| self.delta(t))?
            }
        }
    }

    /// On the CPU, for a batch in the merged form: its one kernel and weight stack, for the
    /// fused convolution + batch norm (the cost model's choice is recorded then). `None`
    /// for the other forms and devices, which run [`EksConv::forward`].
    pub fn merged_kernel(
        &self,
        x: &Tensor,
        tasks: &[usize],
        form: EksForm,
    ) -> Result<Option<(Box<dyn SliceConv>, Tensor)>> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            return Ok(None);
        }
        self.check_tasks(x, tasks)?;
        let merged = match form {
            EksForm::TaskGrouped => true,
            EksForm::Auto => {
                let choice = self.choose(x, tasks)?;
                if choice.form == EksForm::TaskGrouped {
                    record_choice(choice);
                }
                choice.form == EksForm::TaskGrouped
            }
            _ => false,
        };
        if !merged {
            return Ok(None);
        }
        let (kernel, stack) =
            task_kernel(x, tasks, self.base.geometry(), |t| self.merged_weight(t))?;
        Ok(Some((Box::new(kernel), stack)))
    }

    fn check_tasks(&self, x: &Tensor, tasks: &[usize]) -> Result<()> {
        let b = x.dim(0)?;
        if tasks.len() != b {
            candle_core::bail!("{} task ids for a batch of {b}", tasks.len());
        }
        if let Some(&t) = tasks.iter().find(|&&t| t >= self.experts.len()) {
            candle_core::bail!("task id {t} out of range ({} tasks)", self.experts.len());
        }
        Ok(())
    }

    /// The form [`EksForm::Auto`] takes for this layer on a batch `x` with these tasks.
    pub fn chosen_form(&self, x: &Tensor, tasks: &[usize]) -> Result<EksForm> {
        let choice = self.choose(x, tasks)?;
        record_choice(choice);
        Ok(choice.form)
    }

    fn choose(&self, x: &Tensor, tasks: &[usize]) -> Result<FormChoice> {
        let g = self.base.geometry();
        let (b, _, h, w) = x.dims4()?;
        let positions = g.out_len(h).unwrap_or(0) * g.out_len(w).unwrap_or(0);
        let present = groups(tasks).len();
        let form = if g.k == 1 && !merged_is_cheaper(present, self.rank, b, positions) {
            EksForm::Factorised
        } else {
            EksForm::TaskGrouped
        };
        Ok(FormChoice {
            k: g.k,
            cost_ratio: (present * self.rank) as f64 / (b * positions).max(1) as f64 + 1.0,
            rank: self.rank,
            form,
        })
    }

    /// `x∗W0 + (α/r)·((x∗A_t)∗B_t)` per present task (1×1 layers only).
    fn factorised(&self, x: &Tensor, tasks: &[usize], g: ConvGeometry) -> Result<Tensor> {
        if g.k != 1 {
            candle_core::bail!(
                "the factorised EKS form needs a 1×1 convolution, not {}×{}",
                g.k,
                g.k
            );
        }
        let factor = |t: usize, which: usize| -> Result<Tensor> {
            let Some((a, b)) = self.experts.get(t) else {
                candle_core::bail!("task {t} has no expert ({} tasks)", self.experts.len());
            };
            let m = if which == 0 { a } else { b };
            m.reshape((m.dim(0)?, m.dim(1)?, 1, 1))
        };
        let one = ConvGeometry {
            k: 1,
            stride: 1,
            padding: 0,
            dilation: 1,
        };
        let shared = conv2d_weight(x, self.base.weight(), g)?;
        let low = per_task_conv(x, tasks, g, |t| factor(t, 0))?;
        let up = per_task_conv(&low, tasks, one, |t| factor(t, 1))?;
        shared + (up * self.scale)?
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

/// Each present task's samples convolved with `weight(task)`, back in batch order. On the
/// CPU one [`TaskConv`] op over the whole batch; elsewhere one convolution per task.
fn per_task_conv(
    x: &Tensor,
    tasks: &[usize],
    g: ConvGeometry,
    weight: impl Fn(usize) -> Result<Tensor>,
) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        task_conv_op(x, tasks, g, weight)
    } else {
        per_task_convs(x, tasks, g, weight)
    }
}

/// The CPU form of [`per_task_conv`]: the present tasks' weights stacked, one op.
fn task_conv_op(
    x: &Tensor,
    tasks: &[usize],
    g: ConvGeometry,
    weight: impl Fn(usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let (kernel, stack) = task_kernel(x, tasks, g, weight)?;
    x.contiguous()?
        .apply_op2(&stack.contiguous()?, SliceConvOp(kernel))
}

/// The [`TaskConv`] kernel of a batch with these tasks, and its weight stack: the present
/// tasks' `weight(t)`, in increasing task order, as `(S·Cout, Cin·k·k)`.
fn task_kernel(
    x: &Tensor,
    tasks: &[usize],
    g: ConvGeometry,
    weight: impl Fn(usize) -> Result<Tensor>,
) -> Result<(TaskConv, Tensor)> {
    let present = groups(tasks);
    let weights = present
        .iter()
        .map(|(t, _)| weight(*t))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = weights.first() else {
        candle_core::bail!("an EKS convolution of an empty batch");
    };
    let (cout, cin, k, _) = first.dims4()?;
    check_and_record(x, first.dims4()?, g)?;
    let mut slots = vec![0usize; tasks.len()];
    for (slot, (_, rows)) in present.iter().enumerate() {
        for &r in rows {
            slots[r as usize] = slot;
        }
    }
    let stack = Tensor::stack(&weights, 0)?.reshape((present.len() * cout, cin * k * k))?;
    let kernel = TaskConv {
        geometry: g,
        cout,
        slots: Arc::new(slots),
    };
    Ok((kernel, stack))
}

/// The portable form of [`per_task_conv`]: one convolution per task over its samples.
fn per_task_convs(
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
            let mut forms = vec![EksForm::TaskGrouped, EksForm::LoraStyle, EksForm::Auto];
            if g.k == 1 {
                forms.push(EksForm::Factorised);
            }
            for form in forms {
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

    /// The one-op CPU form gives the same bits as one convolution per task, in the output
    /// and every gradient: on the padded-buffer path (wide images), explicit columns (small
    /// images, stride 2), a 1×1 read in place; with a task's samples apart in the batch and
    /// a task absent.
    #[test]
    fn one_op_gives_the_bits_of_one_convolution_per_task() {
        let dev = Device::Cpu;
        let geometry = |k, stride, padding| ConvGeometry {
            k,
            stride,
            padding,
            dilation: 1,
        };
        let cases = [
            (geometry(3, 1, 1), 12),
            (geometry(3, 1, 1), 5),
            (geometry(3, 2, 1), 9),
            (geometry(1, 1, 0), 6),
        ];
        for (g, side) in cases {
            let (map, conv) = eks(4, g);
            let tasks = [3, 0, 3, 3, 0, 1, 0];
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (7, 3, side, side), &dev).unwrap())
                .unwrap();
            let weight = |t| conv.merged_weight(t);
            let one = task_conv_op(x.as_tensor(), &tasks, g, weight).unwrap();
            let per_task = per_task_convs(x.as_tensor(), &tasks, g, weight).unwrap();
            let probe = Tensor::randn(0f32, 1.0, one.dims(), &dev).unwrap();
            let grads = |y: &Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let (g1, g2) = (grads(&one), grads(&per_task));
            let bits = |t: &Tensor| -> Vec<u32> {
                let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                v.into_iter().map(f32::to_bits).collect()
            };
            assert_eq!(bits(&one), bits(&per_task), "{g:?} {side}px output");
            let x_grad = |gr: &candle_core::backprop::GradStore| bits(gr.get(&x).unwrap());
            assert_eq!(x_grad(&g1), x_grad(&g2), "{g:?} {side}px dx");
            for (name, var) in map.data().lock().unwrap().iter() {
                match (g1.get(var), g2.get(var)) {
                    (Some(a), Some(b)) => assert_eq!(bits(a), bits(b), "{g:?} {side}px d{name}"),
                    // Task 2 is absent: its factors get no gradient in the per-task form and
                    // a zero one (or none) in the one-op form.
                    (Some(a), None) => assert_eq!(max_abs(a), 0.0, "{g:?} {side}px d{name}"),
                    (None, None) => {}
                    (None, Some(_)) => panic!("{g:?} {side}px: no gradient of {name}"),
                }
            }
        }
    }

    /// The cost model's verdicts, and the forms Auto takes from them.
    #[test]
    fn the_cost_model_picks_each_layers_form() {
        // ShuffleNetV2's deepest layer at batch 64: 10·4/(64·16) + 1 = 1.04 ≤ 4.
        assert!(merged_is_cheaper(10, 4, 64, 16));
        // Rank 1: 1 + anything > 1, never merged.
        assert!(!merged_is_cheaper(10, 1, 64, 1024));
        // 10·2/(1·4) + 1 = 6 > 2, but 10·2/(64·1) + 1 = 1.31 ≤ 2.
        assert!(!merged_is_cheaper(10, 2, 1, 4));
        assert!(merged_is_cheaper(10, 2, 64, 1));
        let dev = Device::Cpu;
        let one = |k, rank| {
            let map = VarMap::new();
            let vb = SeededInit::var_builder(&map, 3, &dev);
            let g = ConvGeometry {
                k,
                stride: 1,
                padding: k / 2,
                dilation: 1,
            };
            let base = conv2d_with(3, 4, g, vb.pp("conv")).unwrap();
            EksConv::new(base, 3, LowRank { rank, alpha: 1.0 }, vb.pp("conv")).unwrap()
        };
        let x = Tensor::zeros((2, 3, 4, 4), DType::F32, &dev).unwrap();
        let tasks = [0, 2];
        let form = |k, rank| one(k, rank).chosen_form(&x, &tasks).unwrap();
        assert_eq!(form(1, 4), EksForm::TaskGrouped);
        assert_eq!(form(1, 1), EksForm::Factorised);
        // 3×3 layers have no factorised form.
        assert_eq!(form(3, 1), EksForm::TaskGrouped);
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
