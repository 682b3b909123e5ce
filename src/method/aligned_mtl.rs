//! Aligned-MTL (Senushkin et al., CVPR 2023): MTL's shared student and heads, with the
//! backbone's update the per-task gradients aligned to condition number 1 and summed
//! ([`super::aligned`]). No hyperparameters.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use crate::spec::catalog::{Granularity, TransferRule};
use crate::spec::options::MethodOptions;

pub const ALIGNED_MTL: HardSharingMethod = HardSharingMethod {
    key: "alignedmtl",
    granularity: Granularity::Joint,
    transfer: TransferRule::SharedEncoder,
    weighting: WeightingKind::Aligned,
    defaults: MethodOptions {
        kd: None,
        low_rank: None,
        moco: None,
        kf: None,
    },
    settings: &[],
};
