//! Evaluation: per-task top-1 accuracy and mean cross-entropy of each task's expert on a
//! split, with batch norm in evaluation mode.

use candle_core::{Device, Result};

use crate::data::batch::{Item, SplitName, TaskView};
use crate::method::hard_sharing::count_correct;
use crate::method::TaskModel;

#[derive(Debug, Clone)]
pub struct TaskEval {
    /// Local task index.
    pub task: usize,
    pub accuracy: f64,
    pub loss: f64,
    pub samples: usize,
}

/// Evaluate every task of the view on one split.
pub fn evaluate(
    model: &dyn TaskModel,
    view: &TaskView,
    split: SplitName,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<TaskEval>> {
    let mut out = Vec::new();
    for t in 0..view.tasks.len() {
        let n = view.split(t, split).len();
        let (mut correct, mut loss_sum) = (0usize, 0f64);
        let items: Vec<Item> = (0..n).map(|i| (t, i)).collect();
        for chunk in items.chunks(batch_size.max(1)) {
            let batch = view.batch(chunk, split, device)?;
            let logits = model.expert_logits(&batch.x, t)?;
            let labels = &batch.groups[0].labels;
            let ce = candle_nn::loss::cross_entropy(&logits, labels)?.to_scalar::<f32>()? as f64;
            loss_sum += ce * chunk.len() as f64;
            correct += count_correct(&logits, labels)?;
        }
        out.push(TaskEval {
            task: t,
            accuracy: if n == 0 {
                f64::NAN
            } else {
                correct as f64 / n as f64
            },
            loss: if n == 0 {
                f64::NAN
            } else {
                loss_sum / n as f64
            },
            samples: n,
        });
    }
    Ok(out)
}
