//! Hard parameter sharing: one backbone, one linear head per task. With a single task this
//! is an STL student; with all tasks of a pre-training set it is the MTL student (and the
//! supervised foundation model). The expert for task t is the backbone plus head_t.
//!
//! The same network serves the distilling methods: with a teacher it adds the KD term of
//! the method's [`KdConfig`] to every task's loss, and for LoRKD its groups = 1
//! convolutions carry per-task low-rank experts routed by the batch's task ids.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor, D};
use candle_nn::{Linear, Module, VarBuilder, VarMap};

use super::feature_cache::{FeatureCache, DEFAULT_BUDGET_BYTES};
use super::kd_loss::{hinton, soft_kl};
use super::task_gradients::GradientBalancing;
use super::teacher::Teacher;
use super::weighting::{Equal, Weighting};
use super::{BuildContext, Method, TaskLosses, TaskModel};
use crate::data::batch::Batch;
use crate::model::init::SeededInit;
use crate::model::layers::conv_layer::{ConvKind, Routing};
use crate::model::layers::heads::TaskHeads;
use crate::model::layers::lowrank::LowRank;
use crate::model::{build_backbone_with, Backbone};
use crate::spec::catalog::{Granularity, MethodSettings, SettingGroup, TransferRule};
use crate::spec::options::{KdConfig, MethodOptions};

/// A method whose network is [`HardSharing`]: STL, MTL, MoCo-MTL, Aligned-MTL, STL-KD,
/// MTL-KD and LoRKD differ only in what one run trains on (`granularity`), in how task
/// gradients are combined (`weighting`) and in their settings (KD, low-rank experts),
/// which each method's file defines.
pub struct HardSharingMethod {
    pub key: &'static str,
    pub granularity: Granularity,
    pub transfer: TransferRule,
    pub weighting: WeightingKind,
    pub defaults: MethodOptions,
    /// What its `[method.NAME]` table may set besides the training overrides.
    pub settings: &'static [SettingGroup],
}

/// How a hard-sharing method turns its task losses into one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightingKind {
    /// The sum of the task losses.
    Equal,
    /// MoCo-MTL on the per-task gradients of the backbone.
    MoCo,
    /// Aligned-MTL on the per-task gradients of the backbone.
    Aligned,
}

impl MethodSettings for HardSharingMethod {
    fn key(&self) -> &'static str {
        self.key
    }
    fn granularity(&self) -> Granularity {
        self.granularity
    }
    fn transfer_rule(&self) -> TransferRule {
        self.transfer
    }
    fn default_options(&self) -> MethodOptions {
        self.defaults
    }
    fn setting_groups(&self) -> &'static [SettingGroup] {
        self.settings
    }
}

impl Method for HardSharingMethod {
    fn build(&self, ctx: &BuildContext, vb: VarBuilder) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(HardSharing::new(ctx, vb)?))
    }
    fn weighting(&self, options: &MethodOptions, tasks: usize) -> Box<dyn Weighting> {
        match self.weighting {
            WeightingKind::Equal => Box::new(Equal),
            WeightingKind::Aligned => Box::new(GradientBalancing::aligned()),
            WeightingKind::MoCo => Box::new(GradientBalancing::moco(
                options.moco.unwrap_or_default(),
                tasks,
            )),
        }
    }
}

pub struct HardSharing {
    backbone: Box<dyn Backbone>,
    heads: TaskHeads,
    task_keys: Vec<String>,
    /// LoRKD: the task ids the experts read.
    routing: Option<Routing>,
    distill: Option<Distill>,
    /// Loaded foundation towers: the backbone is frozen and only the heads train
    /// (linear probes), on cached features.
    frozen: Option<FeatureCache>,
}

/// What a distilling network learns from.
struct Distill {
    teacher: Arc<Teacher>,
    kd: KdConfig,
    /// Feature KD: `p`, teacher width → student width, fixed at its random initialisation
    /// as in the reference code (it is not a variable of the run, so it is neither trained
    /// nor checkpointed; the run seed recreates it on resume).
    projection: Option<Linear>,
}

impl HardSharing {
    pub fn new(ctx: &BuildContext, vb: VarBuilder) -> Result<Self> {
        let (kind, routing) = match ctx.options.low_rank {
            Some(lr) => {
                let routing = Routing::default();
                (
                    ConvKind::LowRank {
                        tasks: ctx.tasks.len(),
                        low: LowRank {
                            rank: lr.rank,
                            alpha: lr.alpha,
                        },
                        routing: routing.clone(),
                    },
                    Some(routing),
                )
            }
            None => (ConvKind::Plain, None),
        };
        let backbone = build_backbone_with(ctx.model, &kind, vb.pp("backbone"))?;
        let dim = backbone.feature_dim();
        let heads = TaskHeads::new(dim, ctx.tasks, vb.pp("heads"))?;
        let distill = match (ctx.options.kd, &ctx.teacher) {
            (Some(kd), Some(teacher)) => Some(Distill {
                projection: match kd {
                    KdConfig::Feature { .. } => Some(projection(
                        teacher.feature_dim(),
                        dim,
                        ctx.seed,
                        vb.device(),
                    )?),
                    KdConfig::Logit { .. } => None,
                },
                teacher: teacher.clone(),
                kd,
            }),
            _ => None,
        };
        Ok(Self {
            backbone,
            heads,
            task_keys: ctx.tasks.iter().map(|(k, _)| k.clone()).collect(),
            routing,
            distill,
            frozen: ctx
                .frozen_backbone
                .then(|| FeatureCache::new(dim, DEFAULT_BUDGET_BYTES)),
        })
    }

    /// Pooled features of a batch whose row i belongs to local task `tasks[i]`.
    fn features(&self, x: &Tensor, tasks: Vec<usize>, train: bool) -> Result<Tensor> {
        if let Some(r) = &self.routing {
            r.set(tasks);
        }
        self.backbone.forward_t(x, train)
    }
}

/// The fixed random projection of feature KD (PyTorch `nn.Linear` initialisation).
fn projection(from: usize, to: usize, seed: u64, device: &candle_core::Device) -> Result<Linear> {
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, seed, device);
    let l = candle_nn::linear(from, to, vb.pp("kd_projection"))?;
    Ok(Linear::new(
        l.weight().detach(),
        l.bias().map(|b| b.detach()),
    ))
}

/// Number of rows whose arg-max equals the label.
pub fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    let hits = pred.eq(labels)?.to_dtype(DType::U32)?.sum_all()?;
    Ok(hits.to_scalar::<u32>()? as usize)
}

impl TaskModel for HardSharing {
    fn task_losses(&self, batch: &Batch, train: bool) -> Result<TaskLosses> {
        let features = match &self.frozen {
            Some(cache) => cache.features(self.backbone.as_ref(), batch)?,
            None => self.features(&batch.x, batch.row_tasks(), train)?,
        };
        let teacher = match &self.distill {
            Some(d) => {
                let f = d.teacher.features(batch)?;
                let target = match &d.projection {
                    Some(p) => p.forward(&f)?,
                    None => f.clone(),
                };
                Some((d, f, target))
            }
            None => None,
        };
        let mut out = TaskLosses::new();
        for g in &batch.groups {
            let f = features.index_select(&g.rows, 0)?;
            let logits = self.heads.forward(g.task, &f)?;
            let loss = match &teacher {
                None => candle_nn::loss::cross_entropy(&logits, &g.labels)?,
                Some((d, tf, target)) => match d.kd {
                    KdConfig::Feature {
                        weight,
                        temperature,
                    } => {
                        let ce = candle_nn::loss::cross_entropy(&logits, &g.labels)?;
                        let kd = soft_kl(&f, &target.index_select(&g.rows, 0)?, temperature)?;
                        (ce + (kd * weight)?)?
                    }
                    KdConfig::Logit { temperature, alpha } => {
                        let t_logits = d
                            .teacher
                            .logits(&self.task_keys[g.task], &tf.index_select(&g.rows, 0)?)?;
                        hinton(&logits, &t_logits, &g.labels, temperature, alpha)?
                    }
                },
            };
            out.push_group(g, batch.size, loss, &logits)?;
        }
        Ok(out)
    }

    fn expert_logits(&self, x: &Tensor, task: usize) -> Result<Tensor> {
        let f = self.features(x, vec![task; x.dim(0)?], false)?;
        self.heads.forward(task, &f)
    }

    fn set_eks_form(&self, form: crate::model::layers::lowrank::EksForm) {
        if let Some(r) = &self.routing {
            r.set_form(form);
        }
    }

    fn trainable(&self, name: &str) -> bool {
        self.frozen.is_none() || name.starts_with("heads.")
    }
}
