//! MoCo-MTL (Fernando et al., ICLR 2023): MTL's shared student and heads, with the
//! backbone's update combined from the per-task gradients by MoCo's moving estimate and
//! task weights ([`super::moco`]). LibMTL's softmax λ update is the default;
//! `lambda_update = "simplex"` gives the paper's projection, `step_decay = "epoch"` counts
//! the step-size decay in epochs instead of iterations.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use crate::spec::catalog::{Granularity, SettingGroup, TransferRule};
use crate::spec::options::{LambdaUpdate, MethodOptions, MocoConfig, StepDecay};
use crate::spec::settings::{SettingError, SettingsTable};

pub const MOCO_MTL: HardSharingMethod = HardSharingMethod {
    key: "mocomtl",
    granularity: Granularity::Joint,
    transfer: TransferRule::SharedEncoder,
    weighting: WeightingKind::MoCo,
    defaults: MethodOptions {
        kd: None,
        low_rank: None,
        moco: Some(MocoConfig::DEFAULT),
        kf: None,
    },
    settings: &[MOCO_SETTINGS],
};

/// `lambda_update = "softmax" | "simplex"` and `step_decay = "iteration" | "epoch"`.
pub const MOCO_SETTINGS: SettingGroup = SettingGroup {
    what: "MoCo-MTL settings",
    keys: &["lambda_update", "step_decay"],
    read: read_moco,
};

fn read_moco(t: &SettingsTable, base: MethodOptions) -> Result<MethodOptions, SettingError> {
    let mut moco = base.moco.unwrap_or_default();
    if let Some(u) = t.get::<LambdaUpdate>("lambda_update")? {
        moco.lambda_update = u.into_inner();
    }
    if let Some(d) = t.get::<StepDecay>("step_decay")? {
        moco.decay = d.into_inner();
    }
    Ok(MethodOptions {
        moco: Some(moco),
        ..base
    })
}
