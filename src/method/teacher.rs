//! The frozen foundation model a distilling run learns from: the backbone and task heads
//! of a finished foundation run, loaded as constants (no gradient ever reaches them), run
//! in evaluation mode, with its features cached across epochs ([`FeatureCache`]).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::feature_cache::{FeatureCache, DEFAULT_BUDGET_BYTES};
use crate::data::batch::Batch;
use crate::data::CHANNELS;
use crate::error::{Error, Result};
use crate::model::cost::{count_macs, Cost};
use crate::model::layers::batch_norm::is_buffer;
use crate::model::layers::heads::TaskHeads;
use crate::model::{build_backbone, Backbone};
use crate::spec::run::RunSpec;

pub struct Teacher {
    backbone: Box<dyn Backbone>,
    heads: TaskHeads,
    task_keys: Vec<String>,
    cache: FeatureCache,
    /// Every stage's pooled features side by side (filled only by methods that match
    /// stages, KF).
    stage_cache: FeatureCache,
    /// Trainable parameters of the backbone (batch-norm statistics excluded).
    backbone_params: u64,
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
        let backbone_params = tensors
            .iter()
            .filter(|(k, _)| k.starts_with("backbone.") && !is_buffer(k))
            .map(|(_, t)| t.elem_count() as u64)
            .sum();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let backbone = build_backbone(&spec.model, vb.pp("backbone"))?;
        let dim = backbone.feature_dim();
        let heads = TaskHeads::new(dim, tasks, vb.pp("heads"))?;
        let stage_dim = backbone.stage_dims().iter().sum();
        Ok(Teacher {
            backbone,
            heads,
            task_keys: tasks.iter().map(|(k, _)| k.clone()).collect(),
            cache: FeatureCache::new(dim, DEFAULT_BUDGET_BYTES),
            stage_cache: FeatureCache::new(stage_dim, DEFAULT_BUDGET_BYTES),
            backbone_params,
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.backbone.feature_dim()
    }

    fn task(&self, key: &str) -> candle_core::Result<usize> {
        match self.task_keys.iter().position(|k| k == key) {
            Some(t) => Ok(t),
            None => candle_core::bail!("the foundation model has no head for task `{key}`"),
        }
    }

    /// Pooled features of the batch's images (cached, no gradient).
    pub fn features(&self, batch: &Batch) -> candle_core::Result<Tensor> {
        self.cache.features(self.backbone.as_ref(), batch)
    }

    /// Widths of the teacher's stage features, first stage first.
    pub fn stage_dims(&self) -> Vec<usize> {
        self.backbone.stage_dims()
    }

    /// Pooled features of every stage of the batch's images (cached, no gradient); the
    /// last are [`Teacher::features`].
    pub fn stage_features(&self, batch: &Batch) -> candle_core::Result<Vec<Tensor>> {
        let all = self.stage_cache.features_with(batch, |x| {
            Tensor::cat(&self.backbone.stage_features_t(x, false)?, 1)
        })?;
        let mut offset = 0;
        let mut out = Vec::new();
        for d in self.backbone.stage_dims() {
            out.push(all.narrow(1, offset, d)?.contiguous()?);
            offset += d;
        }
        Ok(out)
    }

    /// The teacher's logits for task `key` from its features.
    pub fn logits(&self, key: &str, features: &Tensor) -> candle_core::Result<Tensor> {
        self.heads.forward(self.task(key)?, features)
    }

    /// Parameters and multiply-accumulates per `image_size` image of the backbone plus
    /// task `key`'s head.
    pub fn cost(&self, key: &str, image_size: usize, device: &Device) -> crate::Result<Cost> {
        let t = self.task(key)?;
        let x = Tensor::zeros((1, CHANNELS, image_size, image_size), DType::F32, device)?;
        let (r, macs) = count_macs(|| -> candle_core::Result<Tensor> {
            self.heads.forward(t, &self.backbone.forward_t(&x, false)?)
        });
        r?;
        Ok(Cost {
            params: self.backbone_params + self.heads.params(t) as u64,
            macs,
        })
    }
}
