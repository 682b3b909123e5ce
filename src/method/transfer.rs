//! The network a transfer run fine-tunes: what it starts from (an expert, a shared encoder,
//! a foundation model's backbone, or nothing) plus one new linear head for the downstream
//! set's classes. It starts from the source run's weights, loaded by name by the runner:
//! `backbone.*` (a plain student: LoRKD experts arrive merged, `W0 + ΔW_t`, or as `W0`
//! under †) and, for a KF expert, its task network `tsn.*` with its projection
//! `tsn_proj.*`, whose features are added to the backbone's as in KF (head(z_c + z_t)).
//!
//! Our protocol (the paper gives none): `finetune` trains every parameter with
//! cross-entropy; `linear_probe` trains only the head, on the frozen network's features in
//! evaluation mode (cached, as for the frozen towers of foundation runs).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::feature_cache::{FeatureCache, DEFAULT_BUDGET_BYTES};
use super::{TaskLosses, TaskModel};
use crate::data::batch::Batch;
use crate::model::{build_backbone, Backbone};
use crate::spec::run::{ModelConfig, TransferMode};

/// Variable prefix of the new head (the only trained part of a linear probe).
pub const HEAD: &str = "head";

/// A task network and its projection onto the backbone's width (KF's TSN_t).
struct TaskNetwork {
    net: Box<dyn Backbone>,
    proj: Linear,
}

pub struct TransferNet {
    backbone: Box<dyn Backbone>,
    tsn: Option<TaskNetwork>,
    head: Linear,
    mode: TransferMode,
    /// Linear probes: the frozen features, computed once per sample.
    frozen: Option<FeatureCache>,
}

impl TransferNet {
    /// The network for `classes` downstream classes on the student `model`, with KF's task
    /// network of architecture `tsn` when the source is a KF expert.
    pub fn new(
        model: &ModelConfig,
        tsn: Option<&ModelConfig>,
        classes: usize,
        mode: TransferMode,
        vb: VarBuilder,
    ) -> Result<Self> {
        let backbone = build_backbone(model, vb.pp("backbone"))?;
        let dim = backbone.feature_dim();
        let tsn = match tsn {
            Some(cfg) => {
                let net = build_backbone(cfg, vb.pp("tsn"))?;
                let proj = candle_nn::linear(net.feature_dim(), dim, vb.pp("tsn_proj"))?;
                Some(TaskNetwork { net, proj })
            }
            None => None,
        };
        Ok(Self {
            backbone,
            tsn,
            head: candle_nn::linear(dim, classes, vb.pp(HEAD))?,
            mode,
            frozen: (mode == TransferMode::LinearProbe)
                .then(|| FeatureCache::new(dim, DEFAULT_BUDGET_BYTES)),
        })
    }

    /// The features the head reads: z_c, plus z_t for a KF expert.
    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let z = self.backbone.forward_t(x, train)?;
        match &self.tsn {
            Some(t) => z + t.proj.forward(&t.net.forward_t(x, train)?)?,
            None => Ok(z),
        }
    }

    /// Pooled features at the end of every stage, in evaluation mode; the last is what the
    /// head reads (for a KF expert z_c + z_t, whose earlier stages are the shared CKN's).
    pub fn stage_features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut stages = self.backbone.stage_features_t(x, false)?;
        if let Some(t) = &self.tsn {
            if let Some(last) = stages.pop() {
                stages.push((last + t.proj.forward(&t.net.forward_t(x, false)?)?)?);
            }
        }
        Ok(stages)
    }
}

impl TaskModel for TransferNet {
    fn task_losses(&self, batch: &Batch, train: bool) -> Result<TaskLosses> {
        let features = match &self.frozen {
            Some(cache) => cache.features_with(batch, |x| self.features(x, false))?,
            None => self.features(&batch.x, train)?,
        };
        let mut out = TaskLosses::new();
        for g in &batch.groups {
            let f = features.index_select(&g.rows, 0)?;
            let logits = self.head.forward(&f)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &g.labels)?;
            out.push_group(g, batch.size, loss, &logits)?;
        }
        Ok(out)
    }

    fn expert_logits(&self, x: &Tensor, _task: usize) -> Result<Tensor> {
        self.head.forward(&self.features(x, false)?)
    }

    fn trainable(&self, name: &str) -> bool {
        match self.mode {
            TransferMode::Finetune => true,
            TransferMode::LinearProbe => name.starts_with(&format!("{HEAD}.")),
        }
    }
}
