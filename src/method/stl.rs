//! STL: one independent student per task, trained only on that task; its expert is the
//! whole model.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use super::Granularity;
use crate::spec::run::MethodOptions;

pub const STL: HardSharingMethod = HardSharingMethod {
    key: "stl",
    granularity: Granularity::PerTask,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: None,
        low_rank: None,
        moco: None,
        kf: None,
    },
};
