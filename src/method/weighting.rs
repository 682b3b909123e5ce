//! Gradient weightings: how per-task losses become gradients of the trainable variables.
//! Equal weighting (the plain task loss) sums the losses and differentiates once;
//! [`super::task_gradients::GradientBalancing`] (MoCo-MTL, Aligned-MTL) differentiates each
//! task's loss on its own and combines the per-task gradients of the shared parameters.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// What a weighting may need besides the losses.
pub struct StepContext<'a> {
    /// The local task of every loss term.
    pub tasks: &'a [usize],
    /// Every loss term's share of the batch (its samples / batch size): the terms are task
    /// means scaled by it, so term / share is the task's mean loss.
    pub shares: &'a [f64],
    /// Tasks of the run.
    pub num_tasks: usize,
    /// Parameters shared by all tasks (the backbone), in a fixed order.
    pub shared: &'a [Var],
    /// Every trainable parameter (shared and task-specific).
    pub params: &'a [Var],
    /// Optimiser step and epoch, both counted from 1.
    pub step: u64,
    pub epoch: u32,
}

pub trait Weighting: Send {
    /// Whether the task weights change from step to step, so the run logs them to
    /// `task_weights.parquet` (equal weighting's are all 1).
    fn logs_weights(&self) -> bool {
        true
    }
    /// Whether [`Weighting::backward`] differentiates the step's graph once per loss, so
    /// its forward pass must keep what the ops saved across backward passes
    /// (`model::layers::conv_bn::keeping_saved_outputs`).
    fn differentiates_each_loss(&self) -> bool {
        false
    }
    /// Gradients for one step and, logged per step, the weight of every task the update
    /// used as (local task, weight): the loss terms' tasks, or all tasks for a method
    /// whose update also draws on absent ones (MoCo-MTL's running estimate).
    fn backward(
        &mut self,
        losses: &[Tensor],
        ctx: &StepContext,
    ) -> Result<(GradStore, Vec<(usize, f64)>)>;
    /// State carried from step to step (MoCo-MTL's Y and λ), saved in the checkpoint under
    /// `weighting.*` names so a resumed run continues exactly where it stopped.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }
    /// Restores [`Weighting::state`] from a checkpoint's tensors; a message when the state
    /// the weighting needs is missing or does not fit.
    fn load_state(
        &mut self,
        _tensors: &HashMap<String, Tensor>,
    ) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Σ_t L_t with unit weights: the task loss of METHODS.md.
pub struct Equal;

impl Weighting for Equal {
    fn logs_weights(&self) -> bool {
        false
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        ctx: &StepContext,
    ) -> Result<(GradStore, Vec<(usize, f64)>)> {
        let total = sum(losses)?;
        Ok((
            total.backward()?,
            ctx.tasks.iter().map(|&t| (t, 1.0)).collect(),
        ))
    }
}

/// Sum of scalar tensors.
pub fn sum(losses: &[Tensor]) -> Result<Tensor> {
    let mut it = losses.iter();
    let first = it
        .next()
        .ok_or_else(|| candle_core::Error::Msg("no loss terms in batch".into()))?;
    it.try_fold(first.clone(), |acc, l| acc + l)
}
