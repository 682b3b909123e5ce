//! Gradient weightings: how per-task losses become gradients of the trainable variables.
//! Equal weighting (the plain task loss) lives here; MoCo-MTL and Aligned-MTL will implement
//! the same trait with per-task gradients of the shared parameters.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

pub trait Weighting: Send {
    fn name(&self) -> &'static str;
    /// Gradients for one step and the task weights used (logged per step).
    fn backward(&mut self, losses: &[Tensor]) -> Result<(GradStore, Vec<f64>)>;
}

/// Σ_t L_t with unit weights: the task loss of METHODS.md.
pub struct Equal;

impl Weighting for Equal {
    fn name(&self) -> &'static str {
        "equal"
    }

    fn backward(&mut self, losses: &[Tensor]) -> Result<(GradStore, Vec<f64>)> {
        let total = sum(losses)?;
        Ok((total.backward()?, vec![1.0; losses.len()]))
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
