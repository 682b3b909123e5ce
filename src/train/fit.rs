//! The one training loop every method uses: mixed-task batches, per-task losses from the
//! method's network, the method's gradient weighting, an optimiser step with the scheduled
//! learning rate. After every epoch it evaluates, hands metric rows to the caller and writes a
//! checkpoint; inside a long epoch the caller may checkpoint between steps too (the epoch's
//! running tallies travel with it, so a resumed epoch ends with the same numbers). A
//! non-finite loss stops the run as *diverged* instead of wasting the sweep.

use candle_core::Device;
use candle_nn::VarMap;

use crate::data::batch::{SplitName, TaskView};
use crate::error::Result;
use crate::method::weighting::{StepContext, Weighting};
use crate::method::TaskModel;
use crate::model::layers::conv_bn::keeping_saved_outputs_if;
use crate::spec::run::TrainConfig;
use crate::train::eval::evaluate;
use crate::train::optim::Optimizer;
use crate::train::schedule::learning_rate;

/// Progress of the loop, for progress bars.
pub struct StepProgress {
    pub epoch: u32,
    pub epochs: u32,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub loss: f64,
}

/// One measured value of one epoch (task = local index, `None` for run-level values).
pub struct EpochValue {
    pub task: Option<usize>,
    pub split: SplitName,
    pub metric: &'static str,
    pub value: f64,
}

/// The running tallies of one epoch's training steps, from which its train metrics come.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochTally {
    /// Optimiser steps of the epoch done so far.
    pub steps: usize,
    /// Per task: summed per-sample cross-entropy, correct predictions, samples seen.
    pub loss_sum: Vec<f64>,
    pub correct: Vec<usize>,
    pub seen: Vec<usize>,
    pub samples: usize,
    /// Training seconds spent on the epoch so far (before a resume included).
    pub train_secs: f64,
}

impl EpochTally {
    pub fn new(tasks: usize) -> Self {
        EpochTally {
            steps: 0,
            loss_sum: vec![0.0; tasks],
            correct: vec![0; tasks],
            seen: vec![0; tasks],
            samples: 0,
            train_secs: 0.0,
        }
    }
}

pub enum FitOutcome {
    Done,
    Diverged(String),
}

/// Hooks the runner provides: persist an epoch, report progress.
pub trait FitHooks {
    /// Called after each epoch with its values; must persist them and the checkpoint.
    fn epoch_done(
        &mut self,
        epoch: u32,
        values: Vec<EpochValue>,
        map: &VarMap,
        optim: &Optimizer,
        weighting: &dyn Weighting,
    ) -> Result<()>;
    fn step(&mut self, p: &StepProgress);
    /// Whether to checkpoint now, between two steps of an epoch (a time interval elapsed).
    fn checkpoint_due(&mut self) -> bool {
        false
    }
    /// Called between two steps of `epoch` when [`FitHooks::checkpoint_due`] said so; must
    /// persist the checkpoint with `tally`.
    fn inside_epoch(
        &mut self,
        _epoch: u32,
        _tally: &EpochTally,
        _map: &VarMap,
        _optim: &Optimizer,
        _weighting: &dyn Weighting,
    ) -> Result<()> {
        Ok(())
    }
    /// The weight the method gave each task's loss at one optimiser step.
    fn task_weights(&mut self, _epoch: u32, _step: u64, _weights: &[(usize, f64)]) {}
}

pub struct FitArgs<'a> {
    pub model: &'a dyn TaskModel,
    pub weighting: &'a mut dyn Weighting,
    /// The shared (backbone) and all trainable parameters, for per-task gradients.
    pub shared: &'a [candle_core::Var],
    pub params: &'a [candle_core::Var],
    pub optim: &'a mut Optimizer,
    pub map: &'a VarMap,
    pub view: &'a TaskView<'a>,
    pub cfg: &'a TrainConfig,
    pub seed: u64,
    pub device: &'a Device,
    /// Epochs already done (resume point).
    pub start_epoch: u32,
    /// How far epoch `start_epoch` had got, when the run resumes inside it.
    pub resume_tally: Option<EpochTally>,
}

pub fn fit(a: FitArgs, hooks: &mut dyn FitHooks) -> Result<FitOutcome> {
    let steps_per_epoch = a.view.train_epoch(a.seed, 0, a.cfg.batch_size).len();
    let total_steps = steps_per_epoch * a.cfg.epochs as usize;
    let warmup = steps_per_epoch * a.cfg.optim.warmup_epochs as usize;
    let ntasks = a.view.tasks.len();
    let mut resume_tally = a.resume_tally;
    for epoch in a.start_epoch..a.cfg.epochs {
        let started = std::time::Instant::now();
        let batches = a.view.train_epoch(a.seed, epoch, a.cfg.batch_size);
        let mut tally = resume_tally
            .take()
            .unwrap_or_else(|| EpochTally::new(ntasks));
        let earlier_secs = tally.train_secs;
        // Checkpoint writes inside the epoch are not training time.
        let mut paused = std::time::Duration::ZERO;
        for (i, items) in batches.iter().enumerate().skip(tally.steps) {
            let step = epoch as usize * steps_per_epoch + i;
            let batch = a.view.batch(items, SplitName::Train, a.device)?;
            let terms = keeping_saved_outputs_if(a.weighting.differentiates_each_loss(), || {
                a.model.task_losses(&batch, true)
            })?;
            let mut batch_loss = 0f64;
            for (k, &t) in terms.tasks.iter().enumerate() {
                let l = terms.losses[k].to_scalar::<f32>()? as f64;
                batch_loss += l;
                // Undo the 1/B scaling to accumulate per-sample cross-entropy of task t.
                tally.loss_sum[t] += l * batch.size as f64;
                tally.correct[t] += terms.correct[k].0;
                tally.seen[t] += terms.correct[k].1;
            }
            if !batch_loss.is_finite() {
                return Ok(FitOutcome::Diverged(format!(
                    "loss became {batch_loss} at epoch {} step {} (lr {:.3e}); lower the learning rate",
                    epoch + 1,
                    i + 1,
                    learning_rate(&a.cfg.optim, step, total_steps, warmup)
                )));
            }
            let shares = terms.shares(batch.size);
            let ctx = StepContext {
                tasks: &terms.tasks,
                shares: &shares,
                num_tasks: ntasks,
                shared: a.shared,
                params: a.params,
                step: step as u64 + 1,
                epoch: epoch + 1,
            };
            let (grads, weights) = a.weighting.backward(&terms.losses, &ctx)?;
            hooks.task_weights(epoch, step as u64 + 1, &weights);
            let lr = learning_rate(&a.cfg.optim, step, total_steps, warmup);
            a.optim.step(&grads, lr)?;
            tally.samples += batch.size;
            tally.steps = i + 1;
            hooks.step(&StepProgress {
                epoch,
                epochs: a.cfg.epochs,
                step: i + 1,
                steps_per_epoch,
                loss: batch_loss,
            });
            if i + 1 < steps_per_epoch && hooks.checkpoint_due() {
                tally.train_secs = earlier_secs + (started.elapsed() - paused).as_secs_f64();
                let writing = std::time::Instant::now();
                hooks.inside_epoch(epoch, &tally, a.map, a.optim, a.weighting)?;
                paused += writing.elapsed();
            }
        }
        let train_secs = earlier_secs + (started.elapsed() - paused).as_secs_f64();
        let EpochTally {
            loss_sum,
            correct,
            seen,
            samples,
            ..
        } = tally;
        let mut values = Vec::new();
        for t in 0..ntasks {
            if seen[t] > 0 {
                values.push(EpochValue {
                    task: Some(t),
                    split: SplitName::Train,
                    metric: "loss",
                    value: loss_sum[t] / seen[t] as f64,
                });
                values.push(EpochValue {
                    task: Some(t),
                    split: SplitName::Train,
                    metric: "accuracy",
                    value: correct[t] as f64 / seen[t] as f64,
                });
            }
        }
        values.push(EpochValue {
            task: None,
            split: SplitName::Train,
            metric: "samples_per_s",
            value: samples as f64 / train_secs.max(1e-9),
        });
        values.push(EpochValue {
            task: None,
            split: SplitName::Train,
            metric: "epoch_time_s",
            value: train_secs,
        });
        let last = epoch + 1 == a.cfg.epochs;
        let mut splits = vec![SplitName::Val];
        if last {
            splits.push(SplitName::Test);
        }
        for split in splits {
            for e in evaluate(a.model, a.view, split, a.cfg.eval_batch_size, a.device)? {
                if e.samples == 0 {
                    continue;
                }
                values.push(EpochValue {
                    task: Some(e.task),
                    split,
                    metric: "accuracy",
                    value: e.accuracy,
                });
                values.push(EpochValue {
                    task: Some(e.task),
                    split,
                    metric: "loss",
                    value: e.loss,
                });
            }
        }
        hooks.epoch_done(epoch, values, a.map, a.optim, a.weighting)?;
    }
    Ok(FitOutcome::Done)
}
