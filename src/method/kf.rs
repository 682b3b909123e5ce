//! KF, Factorizing Knowledge (Yang, Ye and Wang, ECCV 2022; reference code
//! Adamdad/KnowledgeFactor): a common knowledge network (CKN, the student backbone,
//! features z_c) and one small task-specific network per task (TSN_t: the student's
//! architecture at a quarter of its widths, projected to z_c's width, features z_t).
//! Task t predicts with head_t(z_c + z_t).
//!
//! Loss of a task's samples: label-smoothed CE (ε = 0.1) of head_t(z_c + z_t); KD from the
//! teacher's head for the task (weight `kd_alpha` = 0.1, T = `kd_temperature` = 10, as in
//! their CIFAR configs); InfoMax between the teacher's features (through a trained linear
//! projection) and z_c over the batch (weight 1); InfoMin of z_t (weight 1e-3); and the
//! auxiliary CE of a second head on z_t alone (weight 1). Matched stages are reduced to
//! the pooled features here (the reference matches several).
//!
//! An expert is CKN + TSN_t + head_t: two networks, more parameters than one student,
//! which is the LoRKD paper's point against it.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};

use super::kd_loss::soft_kl;
use super::kf_loss::{info_max, info_min, label_smoothed_ce};
use super::teacher::Teacher;
use super::weighting::{Equal, Weighting};
use super::{BuildContext, Granularity, Method, TaskLosses, TaskModel};
use crate::data::batch::Batch;
use crate::model::heads::TaskHeads;
use crate::model::{build_backbone, Backbone};
use crate::spec::run::{KdConfig, MethodOptions, ModelConfig};

const LABEL_SMOOTHING: f64 = 0.1;
const INFOMAX_WEIGHT: f64 = 1.0;
const INFOMIN_WEIGHT: f64 = 1e-3;
const AUX_WEIGHT: f64 = 1.0;

/// The task-specific networks' architecture: the student's at a quarter of its widths
/// (at least 4 channels; even where ShuffleNetV2 splits channels in halves).
pub fn tsn_config(student: &ModelConfig) -> ModelConfig {
    let mut cfg = student.clone();
    cfg.widths = student
        .widths
        .iter()
        .map(|w| {
            let q = w.div_ceil(4).max(4);
            q + q % 2
        })
        .collect();
    cfg
}

struct TaskNet {
    net: Box<dyn Backbone>,
    proj: Linear,
}

impl TaskNet {
    fn new(student: &ModelConfig, dim: usize, vb: VarBuilder, proj_vb: VarBuilder) -> Result<Self> {
        let net = build_backbone(&tsn_config(student), vb)?;
        let proj = candle_nn::linear(net.feature_dim(), dim, proj_vb)?;
        Ok(Self { net, proj })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.proj.forward(&self.net.forward_t(x, train)?)
    }
}

pub struct Kf {
    ckn: Box<dyn Backbone>,
    tsn: Vec<TaskNet>,
    heads: TaskHeads,
    aux: TaskHeads,
    task_keys: Vec<String>,
    teacher: Option<(Arc<Teacher>, Linear, f64, f64)>,
}

impl Kf {
    pub fn new(ctx: &BuildContext, vb: VarBuilder) -> Result<Self> {
        let ckn = build_backbone(ctx.model, vb.pp("backbone"))?;
        let dim = ckn.feature_dim();
        let tsn = ctx
            .tasks
            .iter()
            .map(|(k, _)| TaskNet::new(ctx.model, dim, vb.pp("tsn").pp(k), vb.pp("tsn_proj").pp(k)))
            .collect::<Result<_>>()?;
        let teacher = match (&ctx.teacher, ctx.options.kd) {
            (Some(t), Some(KdConfig::Logit { temperature, alpha })) => Some((
                t.clone(),
                candle_nn::linear(t.feature_dim(), dim, vb.pp("kf_teacher_proj"))?,
                temperature,
                alpha,
            )),
            (Some(_), Some(KdConfig::Feature { .. })) => {
                candle_core::bail!("KF distils logits: use kd = \"logit\" (its default)")
            }
            _ => None,
        };
        Ok(Self {
            ckn,
            tsn,
            heads: TaskHeads::new(dim, ctx.tasks, vb.pp("heads"))?,
            aux: TaskHeads::new(dim, ctx.tasks, vb.pp("aux_heads"))?,
            task_keys: ctx.tasks.iter().map(|(k, _)| k.clone()).collect(),
            teacher,
        })
    }
}

impl TaskModel for Kf {
    fn task_losses(&self, batch: &Batch, train: bool) -> Result<TaskLosses> {
        let z_c = self.ckn.forward_t(&batch.x, train)?;
        let teacher = match &self.teacher {
            Some((t, proj, temperature, weight)) => {
                let f = t.features(batch)?;
                let im = info_max(&proj.forward(&f)?, &z_c)?;
                Some((t, f, im, *temperature, *weight))
            }
            None => None,
        };
        let mut out = TaskLosses::new();
        for g in &batch.groups {
            let x = batch.x.index_select(&g.rows, 0)?;
            let z_t = self.tsn[g.task].forward_t(&x, train)?;
            let logits = self
                .heads
                .forward(g.task, &(z_c.index_select(&g.rows, 0)? + &z_t)?)?;
            let mut loss = label_smoothed_ce(&logits, &g.labels, LABEL_SMOOTHING)?;
            let aux = candle_nn::loss::cross_entropy(&self.aux.forward(g.task, &z_t)?, &g.labels)?;
            loss = (loss + (aux * AUX_WEIGHT)?)?;
            if g.count >= 2 {
                // Batch statistics need two samples.
                loss = (loss + (info_min(&z_t)? * INFOMIN_WEIGHT)?)?;
            }
            if let Some((t, f, im, temperature, weight)) = &teacher {
                let t_logits = t.logits(&self.task_keys[g.task], &f.index_select(&g.rows, 0)?)?;
                let kd = soft_kl(&logits, &t_logits, *temperature)?;
                // InfoMax is a batch term: each task carries its share of it.
                loss = ((loss + (kd * *weight)?)? + (im * INFOMAX_WEIGHT)?)?;
            }
            out.push_group(g, batch.size, loss, &logits)?;
        }
        Ok(out)
    }

    fn expert_logits(&self, x: &Tensor, task: usize) -> Result<Tensor> {
        let z = (self.ckn.forward_t(x, false)? + self.tsn[task].forward_t(x, false)?)?;
        self.heads.forward(task, &z)
    }
}

pub struct KfMethod;

pub static KF: KfMethod = KfMethod;

impl Method for KfMethod {
    fn key(&self) -> &'static str {
        "kf"
    }
    fn granularity(&self) -> Granularity {
        Granularity::Joint
    }
    fn default_options(&self) -> MethodOptions {
        MethodOptions {
            kd: Some(KdConfig::Logit {
                temperature: 10.0,
                alpha: 0.1,
            }),
            low_rank: None,
            moco: None,
        }
    }
    fn build(&self, ctx: &BuildContext, vb: VarBuilder) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(Kf::new(ctx, vb)?))
    }
    fn weighting(&self, _options: &MethodOptions, _tasks: usize) -> Box<dyn Weighting> {
        Box::new(Equal)
    }
    fn check_options(&self, options: &MethodOptions) -> std::result::Result<(), String> {
        match options.kd {
            Some(KdConfig::Feature { .. }) => Err(
                "KF distils the teacher's logits: use kd = \"logit\" (its default, weight kd_alpha = 0.1, T = 10) or \"none\"".into(),
            ),
            _ => Ok(()),
        }
    }
    fn expert_tsn(&self, student: &ModelConfig) -> Option<ModelConfig> {
        Some(tsn_config(student))
    }
    /// CKN (`backbone.*`), TSN_t (`tsn.*`, `tsn_proj.*`) and head_t (`head.*`).
    fn export_expert(
        &self,
        map: &VarMap,
        tasks: &[String],
        task: usize,
        _options: &MethodOptions,
    ) -> crate::Result<BTreeMap<String, Tensor>> {
        let key = super::expert::task_key(tasks, task)?;
        let vars = map.data().lock().expect("var map");
        let mut out = BTreeMap::new();
        for (name, var) in vars.iter() {
            let renamed = if name.starts_with("backbone.") {
                Some(name.clone())
            } else if let Some(rest) = name.strip_prefix(&format!("tsn.{key}.")) {
                Some(format!("tsn.{rest}"))
            } else if let Some(rest) = name.strip_prefix(&format!("tsn_proj.{key}.")) {
                Some(format!("tsn_proj.{rest}"))
            } else {
                name.strip_prefix(&format!("heads.{key}."))
                    .map(|rest| format!("head.{rest}"))
            };
            if let Some(n) = renamed {
                out.insert(n, var.as_tensor().detach());
            }
        }
        Ok(out)
    }
}
