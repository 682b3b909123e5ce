//! MoCo-MTL (Fernando et al., ICLR 2023): MTL's shared student and heads, with the
//! backbone's update combined from the per-task gradients by MoCo's moving estimate and
//! task weights ([`super::moco`]). LibMTL's softmax λ update is the default;
//! `lambda_update = "simplex"` gives the paper's projection, `step_decay = "epoch"` counts
//! the step-size decay in epochs instead of iterations.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use super::moco::MocoConfig;
use super::Granularity;
use crate::spec::run::MethodOptions;

pub const MOCO_MTL: HardSharingMethod = HardSharingMethod {
    key: "mocomtl",
    granularity: Granularity::Joint,
    weighting: WeightingKind::MoCo,
    defaults: MethodOptions {
        kd: None,
        low_rank: None,
        moco: Some(MocoConfig::DEFAULT),
        kf: None,
    },
};
