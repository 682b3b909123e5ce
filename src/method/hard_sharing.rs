//! Hard parameter sharing: one backbone, one linear head per task. With a single task this is
//! an STL student; with all tasks of a pre-training set it is the MTL student. The expert for
//! task t is the backbone plus head_t.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::{BuildContext, TaskLosses, TaskModel};
use crate::data::batch::Batch;
use crate::model::heads::TaskHeads;
use crate::model::{build_backbone, Backbone};

pub struct HardSharing {
    backbone: Box<dyn Backbone>,
    heads: TaskHeads,
}

impl HardSharing {
    pub fn new(ctx: &BuildContext, vb: VarBuilder) -> Result<Self> {
        let backbone = build_backbone(ctx.model, vb.pp("backbone"))?;
        let heads = TaskHeads::new(backbone.feature_dim(), ctx.tasks, vb.pp("heads"))?;
        Ok(Self { backbone, heads })
    }
}

/// Number of rows whose arg-max equals the label.
pub fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    let hits = pred.eq(labels)?.to_dtype(DType::U32)?.sum_all()?;
    Ok(hits.to_scalar::<u32>()? as usize)
}

impl TaskModel for HardSharing {
    fn task_losses(&self, batch: &Batch, train: bool) -> Result<TaskLosses> {
        let features = self.backbone.forward_t(&batch.x, train)?;
        let mut out = TaskLosses {
            tasks: Vec::new(),
            losses: Vec::new(),
            correct: Vec::new(),
        };
        for g in &batch.groups {
            let f = features.index_select(&g.rows, 0)?;
            let logits = self.heads.forward(g.task, &f)?;
            let ce = candle_nn::loss::cross_entropy(&logits, &g.labels)?;
            out.losses
                .push((ce * (g.count as f64 / batch.size as f64))?);
            out.tasks.push(g.task);
            out.correct
                .push((count_correct(&logits, &g.labels)?, g.count));
        }
        Ok(out)
    }

    fn expert_logits(&self, x: &Tensor, task: usize) -> Result<Tensor> {
        let f = self.backbone.forward_t(x, false)?;
        self.heads.forward(task, &f)
    }
}
