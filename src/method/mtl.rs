//! MTL: one shared student with a head per task, trained on mixed batches of all tasks with
//! equal task weighting. The expert for task t is the shared backbone plus head_t.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use crate::spec::catalog::{Granularity, TransferRule};
use crate::spec::options::MethodOptions;

pub const MTL: HardSharingMethod = HardSharingMethod {
    key: "mtl",
    granularity: Granularity::Joint,
    transfer: TransferRule::SharedEncoder,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: None,
        low_rank: None,
        moco: None,
        kf: None,
    },
    settings: &[],
};
