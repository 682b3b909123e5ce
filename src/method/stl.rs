//! STL: one independent student per task, trained only on that task; its expert is the
//! whole model.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use crate::spec::catalog::{Granularity, TransferRule};
use crate::spec::options::MethodOptions;

pub const STL: HardSharingMethod = HardSharingMethod {
    key: "stl",
    granularity: Granularity::PerTask,
    transfer: TransferRule::MatchingStudent,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: None,
        low_rank: None,
        moco: None,
        kf: None,
    },
    settings: &[],
};
