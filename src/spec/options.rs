//! Methods' own settings as plain configuration types: what `[method.NAME]` tables resolve
//! to, what run specs record (and so hash into run ids), and what the methods read. Each
//! method reads its table into these types itself (`crate::method`, through the hook of
//! [`super::catalog::MethodSettings`]); this module only defines them, so the experiment
//! layer never depends on a method.

use serde::{Deserialize, Serialize};

/// Knowledge distillation from the foundation model (METHODS.md, "Feature KD", "Logit KD").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KdConfig {
    /// `β · T² · KL(softmax(p(f_teacher)/T) ‖ softmax(f_student/T))` over feature dimensions;
    /// `p` a fixed random linear projection to the student's width.
    Feature { weight: f64, temperature: f64 },
    /// Hinton: `α · T² · KL(teacher logits ‖ student logits) + (1 − α) · CE`.
    Logit { temperature: f64, alpha: f64 },
}

/// LoRKD's low-rank experts: rank r and scale numerator α (ΔW = (α/r)·BA).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LowRankConfig {
    pub rank: usize,
    pub alpha: f64,
}

/// A method's own settings after the experiment file's overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kd: Option<KdConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_rank: Option<LowRankConfig>,
    /// MoCo-MTL's weighting settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moco: Option<MocoConfig>,
    /// KF's loss weights and matched stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kf: Option<KfConfig>,
}

impl MethodOptions {
    pub fn is_empty(&self) -> bool {
        *self == MethodOptions::default()
    }
}

/// How λ is brought back to the simplex after its gradient step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaUpdate {
    Softmax,
    Simplex,
}

/// What the step sizes' k counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepDecay {
    Iteration,
    Epoch,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MocoConfig {
    pub beta: f64,
    pub beta_sigma: f64,
    pub gamma: f64,
    pub gamma_sigma: f64,
    pub rho: f64,
    pub lambda_update: LambdaUpdate,
    pub decay: StepDecay,
}

impl MocoConfig {
    /// LibMTL's defaults, softmax λ update, decay by iteration.
    pub const DEFAULT: MocoConfig = MocoConfig {
        beta: 0.5,
        beta_sigma: 0.5,
        gamma: 0.1,
        gamma_sigma: 0.5,
        rho: 0.0,
        lambda_update: LambdaUpdate::Softmax,
        decay: StepDecay::Iteration,
    };
}

impl Default for MocoConfig {
    fn default() -> Self {
        MocoConfig::DEFAULT
    }
}

/// KF's settings (`[method.kf]`); the defaults are the reference's CIFAR configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KfConfig {
    /// ε of the label-smoothed CE on head_t(z_c + z_t).
    pub label_smoothing: f64,
    /// Weight of InfoMax (teacher → CKN), averaged over the matched stages.
    pub infomax_weight: f64,
    /// How many last stages of teacher and CKN InfoMax matches (fewer when a network has
    /// fewer stages).
    pub infomax_stages: usize,
    /// Weight of InfoMin on each z_t.
    pub infomin_weight: f64,
    /// Weight of the auxiliary CE of head_aux_t(z_t).
    pub aux_weight: f64,
}

impl KfConfig {
    pub const DEFAULT: KfConfig = KfConfig {
        label_smoothing: 0.1,
        infomax_weight: 1.0,
        infomax_stages: 3,
        infomin_weight: 1e-3,
        aux_weight: 1.0,
    };
}

impl Default for KfConfig {
    fn default() -> Self {
        KfConfig::DEFAULT
    }
}
