//! One linear classification head per task on the pooled feature. Heads are named by task
//! key (`heads.<task>`) so an expert can be cut out of a multi-task checkpoint by name.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

pub struct TaskHeads {
    heads: Vec<Linear>,
}

impl TaskHeads {
    /// `tasks`: (task key, number of classes) in the run's task order.
    pub fn new(feature_dim: usize, tasks: &[(String, usize)], vb: VarBuilder) -> Result<Self> {
        let heads = tasks
            .iter()
            .map(|(key, classes)| linear(feature_dim, *classes, vb.pp(key)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { heads })
    }

    /// Parameters of head `task` (weight and bias).
    pub fn params(&self, task: usize) -> usize {
        let h = &self.heads[task];
        h.weight().elem_count() + h.bias().map_or(0, |b| b.elem_count())
    }

    /// Logits of head `task` (index into the run's task list).
    pub fn forward(&self, task: usize, features: &Tensor) -> Result<Tensor> {
        let head = &self.heads[task];
        let (classes, dim) = head.weight().dims2()?;
        crate::model::cost::record_macs((features.dim(0)? * classes * dim) as u64);
        head.forward(features)
    }
}
