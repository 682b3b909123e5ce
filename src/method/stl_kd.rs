//! STL-KD: STL plus knowledge distillation from the foundation model. One student per
//! task; each task's loss gains the KD term (feature KD with β = 1, T = 10 by default;
//! Hinton's logit KD with `kd = "logit"`). Its expert is the whole student.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use super::kd_settings::KD_SETTINGS;
use super::FEATURE_KD;
use crate::spec::catalog::{Granularity, TransferRule};
use crate::spec::options::MethodOptions;

pub const STL_KD: HardSharingMethod = HardSharingMethod {
    key: "stlkd",
    granularity: Granularity::PerTask,
    transfer: TransferRule::MatchingStudent,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: Some(FEATURE_KD),
        low_rank: None,
        moco: None,
        kf: None,
    },
    settings: &[KD_SETTINGS],
};
