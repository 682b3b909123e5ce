//! KF, Factorizing Knowledge (Yang, Ye and Wang, ECCV 2022; reference code
//! Adamdad/KnowledgeFactor): a common knowledge network (CKN, the student backbone,
//! features z_c) and one small task-specific network per task (TSN_t: the student's
//! architecture at a quarter of its widths, projected to z_c's width, features z_t).
//! Task t predicts with head_t(z_c + z_t).
//!
//! Loss of a task's samples ([`KfConfig`], defaults from the reference's CIFAR configs):
//! label-smoothed CE (ε = 0.1) of head_t(z_c + z_t); KD from the teacher's head for the task
//! (weight `kd_alpha` = 0.1, T = `kd_temperature` = 10); InfoMax between teacher and CKN at
//! their last `infomax_stages` = 3 stages, as the reference: each stage globally pooled, the
//! teacher's through a trained Linear → BatchNorm → ReLU → Linear onto the CKN stage's
//! width, the mean over the stages weighted 1; InfoMin of z_t (weight 1e-3); and the
//! auxiliary CE of a second head on z_t alone (weight 1).
//!
//! An expert is CKN + TSN_t + head_t: two networks, more parameters than one student,
//! which is the LoRKD paper's point against it.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};

use super::kd_loss::soft_kl;
use super::kd_settings::KD_SETTINGS;
use super::kf_loss::{info_max, info_min, label_smoothed_ce};
use super::teacher::Teacher;
use super::weighting::{Equal, Weighting};
use super::{BuildContext, Method, TaskLosses, TaskModel};
use crate::data::batch::Batch;
use crate::model::layers::batch_norm::{batch_norm2d, BatchNorm2d};
use crate::model::layers::heads::TaskHeads;
use crate::model::{build_backbone, Backbone};
use crate::spec::catalog::{Granularity, MethodSettings, SettingGroup, TransferRule};
use crate::spec::options::{KdConfig, KfConfig, MethodOptions};
use crate::spec::run::ModelConfig;
use crate::spec::settings::{non_negative, positive, SettingError, SettingsTable};

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

/// InfoMax's projection of one teacher stage onto a CKN stage, as the reference's:
/// Linear → BatchNorm1d → ReLU → Linear.
struct StageProjection {
    fc1: Linear,
    bn: BatchNorm2d,
    fc2: Linear,
}

impl StageProjection {
    fn new(from: usize, to: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(from, to, vb.pp("fc1"))?,
            bn: batch_norm2d(to, vb.pp("bn"))?,
            fc2: candle_nn::linear(to, to, vb.pp("fc2"))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let (b, c) = h.dims2()?;
        // A batch norm over (B, C) is the 2-d one over (B, C, 1, 1).
        let h = self.bn.forward_relu(&h.reshape((b, c, 1, 1))?, train)?;
        self.fc2.forward(&h.reshape((b, c))?)
    }
}

/// What KF learns from the teacher: its logits (KD) and its stages (InfoMax).
struct KfTeacher {
    teacher: Arc<Teacher>,
    /// (teacher stage, CKN stage, projection) of every matched pair, last stages last.
    matched: Vec<(usize, usize, StageProjection)>,
    temperature: f64,
    kd_weight: f64,
}

pub struct Kf {
    ckn: Box<dyn Backbone>,
    tsn: Vec<TaskNet>,
    heads: TaskHeads,
    aux: TaskHeads,
    task_keys: Vec<String>,
    cfg: KfConfig,
    teacher: Option<KfTeacher>,
}

impl Kf {
    pub fn new(ctx: &BuildContext, vb: VarBuilder) -> Result<Self> {
        let ckn = build_backbone(ctx.model, vb.pp("backbone"))?;
        let dim = ckn.feature_dim();
        let cfg = ctx.options.kf.unwrap_or_default();
        let tsn = ctx
            .tasks
            .iter()
            .map(|(k, _)| TaskNet::new(ctx.model, dim, vb.pp("tsn").pp(k), vb.pp("tsn_proj").pp(k)))
            .collect::<Result<_>>()?;
        let teacher = match (&ctx.teacher, ctx.options.kd) {
            (Some(t), Some(KdConfig::Logit { temperature, alpha })) => {
                let (t_dims, s_dims) = (t.stage_dims(), ckn.stage_dims());
                let n = cfg.infomax_stages.min(t_dims.len()).min(s_dims.len());
                let matched = (0..n)
                    .map(|j| {
                        let (ti, si) = (t_dims.len() - n + j, s_dims.len() - n + j);
                        let proj = StageProjection::new(
                            t_dims[ti],
                            s_dims[si],
                            vb.pp("kf_teacher_proj").pp(j.to_string()),
                        )?;
                        Ok((ti, si, proj))
                    })
                    .collect::<Result<_>>()?;
                Some(KfTeacher {
                    teacher: t.clone(),
                    matched,
                    temperature,
                    kd_weight: alpha,
                })
            }
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
            cfg,
            teacher,
        })
    }

    /// CKN features z_c and, with a teacher, the teacher's features and the InfoMax term
    /// (the mean over the matched stages).
    fn common(&self, batch: &Batch, train: bool) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let Some(kt) = &self.teacher else {
            return Ok((self.ckn.forward_t(&batch.x, train)?, None));
        };
        let mut student = self.ckn.stage_features_t(&batch.x, train)?;
        let mut teacher = kt.teacher.stage_features(batch)?;
        let mut terms = Vec::with_capacity(kt.matched.len());
        for (ti, si, proj) in &kt.matched {
            terms.push(info_max(
                &proj.forward_t(&teacher[*ti], train)?,
                &student[*si],
            )?);
        }
        let im = (Tensor::stack(&terms, 0)?.sum_all()? / terms.len().max(1) as f64)?;
        let (Some(z_c), Some(f)) = (student.pop(), teacher.pop()) else {
            candle_core::bail!("a network gave no stage features");
        };
        Ok((z_c, Some((f, im))))
    }
}

impl TaskModel for Kf {
    fn task_losses(&self, batch: &Batch, train: bool) -> Result<TaskLosses> {
        let (z_c, teacher) = self.common(batch, train)?;
        let cfg = &self.cfg;
        let mut out = TaskLosses::new();
        for g in &batch.groups {
            let x = batch.x.index_select(&g.rows, 0)?;
            let z_t = self.tsn[g.task].forward_t(&x, train)?;
            let logits = self
                .heads
                .forward(g.task, &(z_c.index_select(&g.rows, 0)? + &z_t)?)?;
            let mut loss = label_smoothed_ce(&logits, &g.labels, cfg.label_smoothing)?;
            let aux = candle_nn::loss::cross_entropy(&self.aux.forward(g.task, &z_t)?, &g.labels)?;
            loss = (loss + (aux * cfg.aux_weight)?)?;
            if g.count >= 2 {
                // Batch statistics need two samples.
                loss = (loss + (info_min(&z_t)? * cfg.infomin_weight)?)?;
            }
            if let (Some((f, im)), Some(kt)) = (&teacher, &self.teacher) {
                let t_logits = kt
                    .teacher
                    .logits(&self.task_keys[g.task], &f.index_select(&g.rows, 0)?)?;
                let kd = soft_kl(&logits, &t_logits, kt.temperature)?;
                // InfoMax is a batch term: each task carries its share of it.
                loss = ((loss + (kd * kt.kd_weight)?)? + (im * cfg.infomax_weight)?)?;
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

impl MethodSettings for KfMethod {
    fn key(&self) -> &'static str {
        "kf"
    }
    fn granularity(&self) -> Granularity {
        Granularity::Joint
    }
    fn transfer_rule(&self) -> TransferRule {
        TransferRule::ExpertOrShared
    }
    fn default_options(&self) -> MethodOptions {
        MethodOptions {
            kd: Some(KdConfig::Logit {
                temperature: 10.0,
                alpha: 0.1,
            }),
            low_rank: None,
            moco: None,
            kf: Some(KfConfig::DEFAULT),
        }
    }
    fn setting_groups(&self) -> &'static [SettingGroup] {
        &[KD_SETTINGS, KF_SETTINGS]
    }
    fn check_options(&self, options: &MethodOptions) -> std::result::Result<(), String> {
        match options.kd {
            Some(KdConfig::Feature { .. }) => Err(
                "KF distils the teacher's logits: use kd = \"logit\" (its default, weight kd_alpha = 0.1, T = 10) or \"none\"".into(),
            ),
            _ => Ok(()),
        }
    }
}

impl Method for KfMethod {
    fn build(&self, ctx: &BuildContext, vb: VarBuilder) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(Kf::new(ctx, vb)?))
    }
    fn weighting(&self, _options: &MethodOptions, _tasks: usize) -> Box<dyn Weighting> {
        Box::new(Equal)
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

/// KF's own settings: `label_smoothing` (ε), `infomax_weight`, `infomax_stages`,
/// `infomin_weight` and `aux_weight`.
pub const KF_SETTINGS: SettingGroup = SettingGroup {
    what: "KF settings",
    keys: &[
        "label_smoothing",
        "infomax_weight",
        "infomax_stages",
        "infomin_weight",
        "aux_weight",
    ],
    read: read_kf,
};

fn read_kf(
    t: &SettingsTable,
    base: MethodOptions,
) -> std::result::Result<MethodOptions, SettingError> {
    let mut kf = base.kf.unwrap_or_default();
    if let Some(e) = t.number("label_smoothing", non_negative)? {
        if e >= 1.0 {
            return Err(t.error(
                "label_smoothing",
                format!("{} must be in [0, 1)", t.field("label_smoothing")),
            ));
        }
        kf.label_smoothing = e;
    }
    let weight = |k: &str, d: f64| t.number(k, non_negative).map(|w| w.unwrap_or(d));
    kf.infomax_weight = weight("infomax_weight", kf.infomax_weight)?;
    kf.infomin_weight = weight("infomin_weight", kf.infomin_weight)?;
    kf.aux_weight = weight("aux_weight", kf.aux_weight)?;
    if let Some(n) = t.number("infomax_stages", positive::<usize>)? {
        kf.infomax_stages = n;
    }
    Ok(MethodOptions {
        kf: Some(kf),
        ..base
    })
}
