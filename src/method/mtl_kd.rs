//! MTL-KD: MTL plus knowledge distillation from the foundation model. One shared student
//! and a head per task on mixed batches; every task's loss gains the KD term (feature KD
//! by default, logit KD as an option). Expert for task t: shared backbone + head_t.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use super::kd_settings::KD_SETTINGS;
use super::FEATURE_KD;
use crate::spec::catalog::{Granularity, TransferRule};
use crate::spec::options::MethodOptions;

pub const MTL_KD: HardSharingMethod = HardSharingMethod {
    key: "mtlkd",
    granularity: Granularity::Joint,
    transfer: TransferRule::SharedEncoder,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: Some(FEATURE_KD),
        low_rank: None,
        moco: None,
        kf: None,
    },
    settings: &[KD_SETTINGS],
};
