//! The frozen foundation model a distilling run learns from: the backbone and task heads
//! of a finished foundation run, loaded as constants (no gradient ever reaches them), run
//! in evaluation mode, with its features cached across epochs ([`FeatureCache`]).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::feature_cache::{FeatureCache, DEFAULT_BUDGET_BYTES};
use crate::data::batch::Batch;
use crate::error::{Error, Result};
use crate::model::heads::TaskHeads;
use crate::model::{build_backbone, Backbone};
use crate::spec::run::RunSpec;

pub struct Teacher {
    backbone: Box<dyn Backbone>,
    heads: TaskHeads,
    task_keys: Vec<String>,
    cache: FeatureCache,
}

impl Teacher {
    /// The model of foundation run `spec` from its checkpoint; `tasks` are its (task key,
    /// classes) in run order.
    pub fn load(
        spec: &RunSpec,
        checkpoint: &Path,
        tasks: &[(String, usize)],
        device: &Device,
    ) -> Result<Teacher> {
        let tensors = candle_core::safetensors::load(checkpoint, device).map_err(|e| {
            Error::Failed(format!(
                "{}: cannot read the foundation model ({e}); delete its run folder to retrain it",
                checkpoint.display()
            ))
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let backbone = build_backbone(&spec.model, vb.pp("backbone"))?;
        let dim = backbone.feature_dim();
        let heads = TaskHeads::new(dim, tasks, vb.pp("heads"))?;
        Ok(Teacher {
            backbone,
            heads,
            task_keys: tasks.iter().map(|(k, _)| k.clone()).collect(),
            cache: FeatureCache::new(dim, DEFAULT_BUDGET_BYTES),
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.backbone.feature_dim()
    }

    /// Pooled features of the batch's images (cached, no gradient).
    pub fn features(&self, batch: &Batch) -> candle_core::Result<Tensor> {
        self.cache.features(self.backbone.as_ref(), batch)
    }

    /// The teacher's logits for task `key` from its features.
    pub fn logits(&self, key: &str, features: &Tensor) -> candle_core::Result<Tensor> {
        let Some(t) = self.task_keys.iter().position(|k| k == key) else {
            candle_core::bail!("the foundation model has no head for task `{key}`");
        };
        self.heads.forward(t, features)
    }

    /// The backbone, for cost measurements.
    pub fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }

    /// The head of task `key`, for cost measurements.
    pub fn task_index(&self, key: &str) -> Option<usize> {
        self.task_keys.iter().position(|k| k == key)
    }

    pub fn heads(&self) -> &TaskHeads {
        &self.heads
    }
}
