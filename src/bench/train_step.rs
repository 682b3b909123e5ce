//! Our side of the training-step benchmark: build the workload's network with the harness's
//! own layers, then time full steps (forward, cross-entropy, backward, SGD update) on a fixed
//! random batch and record the heap high-water mark of one step. A LoRKD workload's
//! network carries experts and its batch mixes the tasks (drawn before the batch).

use candle_core::{Device, Module, Tensor};
use candle_nn::VarMap;

use super::workload::Workload;
use super::{timed_repeats, StepStats};
use crate::model::layers::conv_layer::{ConvKind, Routing};
use crate::model::layers::lowrank::{forms_chosen, EksForm, FormChoice, LowRank};
use crate::model::{build_backbone_with, init::SeededInit};
use crate::spec::run::{OptimConfig, OptimizerKind, Schedule};
use crate::train::optim::{params_of, Optimizer};
use crate::util::alloc;
use crate::util::rng::SplitMix64;

/// The optimiser both sides use: SGD, momentum 0.9, weight decay 1e-4.
pub const LR: f64 = 0.05;

/// Time `warmup` untimed steps, then steps until both `min_steps` and `min_secs` are reached.
pub fn measure(
    w: &Workload,
    warmup: usize,
    min_steps: usize,
    min_secs: f64,
) -> crate::Result<StepStats> {
    let dev = Device::Cpu;
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 0, &dev);
    let (b, s) = (w.batch_size, w.image_size);
    let mut rng = SplitMix64::new(7);
    let kind = match &w.lorkd {
        None => ConvKind::Plain,
        Some(l) => {
            let routing = Routing::default();
            routing.set((0..b).map(|_| rng.below(l.tasks as u64) as usize).collect());
            ConvKind::LowRank {
                tasks: l.tasks,
                low: LowRank {
                    rank: l.rank,
                    alpha: l.alpha,
                },
                routing,
            }
        }
    };
    let backbone = build_backbone_with(&w.model_config(), &kind, vb.pp("backbone"))?;
    let head = candle_nn::linear(backbone.feature_dim(), w.classes, vb.pp("head"))?;
    let optim_cfg = OptimConfig {
        name: OptimizerKind::Sgd,
        lr: LR,
        momentum: 0.9,
        weight_decay: 1e-4,
        schedule: Schedule::Constant,
        warmup_epochs: 0,
    };
    let mut optim = Optimizer::new(&optim_cfg, params_of(&map));
    let xs: Vec<f32> = (0..b * 3 * s * s)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        .collect();
    let ys: Vec<i64> = (0..b).map(|_| rng.below(w.classes as u64) as i64).collect();
    let x = Tensor::from_vec(xs, (b, 3, s, s), &dev)?;
    let y = Tensor::from_vec(ys, b, &dev)?;
    let mut step = || -> crate::Result<f32> {
        let features = backbone.forward_t(&x, true)?;
        let loss = candle_nn::loss::cross_entropy(&head.forward(&features)?, &y)?;
        let grads = loss.backward()?;
        optim.step(&grads, LR)?;
        Ok(loss.to_scalar::<f32>()?)
    };
    // The first step also says which form each EKS layer took.
    let (first, chosen) = forms_chosen(&mut step);
    first?;
    for _ in 1..warmup {
        step()?;
    }
    // One step for memory: the high-water mark above what lives between steps (weights,
    // momentum buffers), i.e. activations kept for the backward, gradients and scratch.
    let base = alloc::reset_peak();
    step()?;
    let peak_step = alloc::counting().then(|| alloc::peak_bytes().saturating_sub(base));
    let mut last_loss = 0.0;
    let times = timed_repeats(min_steps, min_secs, || -> crate::Result<()> {
        last_loss = step()?;
        Ok(())
    })?;
    if !last_loss.is_finite() {
        return Err(crate::Error::Failed(format!(
            "bench {}: loss became {last_loss}",
            w.key
        )));
    }
    Ok(StepStats {
        eks_forms: w.lorkd.as_ref().map(|_| describe_forms(&chosen)),
        ..StepStats::from_times(b, &times, peak_step, Some(base))
    })
}

/// `"merged on 36 of 36 (…)"`: what the EKS layers chose and the cost model's range.
fn describe_forms(chosen: &[FormChoice]) -> String {
    let count = |f: EksForm| chosen.iter().filter(|c| c.form == f).count();
    let (lo, hi) = chosen.iter().fold((f64::INFINITY, 0f64), |(lo, hi), c| {
        (lo.min(c.cost_ratio), hi.max(c.cost_ratio))
    });
    let ranks: std::collections::BTreeSet<usize> = chosen.iter().map(|c| c.rank).collect();
    let three = chosen.iter().filter(|c| c.k > 1).count();
    format!(
        "merged (task-grouped) on {} and factorised on {} of {} layers ({} of them k > 1, which have no factorised form); the cost model's T·r/(b·l) + 1 ranges from {lo:.3} to {hi:.3} against r = {}",
        count(EksForm::TaskGrouped),
        count(EksForm::Factorised),
        chosen.len(),
        three,
        ranks.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("/"),
    )
}
