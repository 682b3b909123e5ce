//! Our side of the training-step benchmark: build the workload's network with the harness's
//! own layers, then time full steps (forward, cross-entropy, backward, SGD update) on a fixed
//! random batch and record the heap high-water mark of one step.

use candle_core::{Device, Module, Tensor};
use candle_nn::VarMap;

use super::workload::Workload;
use super::{timed_repeats, StepStats};
use crate::model::{build_backbone, init::SeededInit};
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
    let backbone = build_backbone(&w.model_config(), vb.pp("backbone"))?;
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
    let (b, s) = (w.batch_size, w.image_size);
    let mut rng = SplitMix64::new(7);
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
    for _ in 0..warmup {
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
    Ok(StepStats::from_times(b, &times, peak_step, Some(base)))
}
