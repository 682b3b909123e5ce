//! LoRKD (Zhou et al., CVPR 2024): one student whose every groups = 1 convolution carries
//! per-task low-rank experts (rank r = 4, α = 16 by default; A Kaiming-uniform, B zero),
//! applied to mixed batches by the task-grouped EKS convolution, with shared W0 and batch
//! norms, per-task heads, and the loss task loss + β · feature KD (β = 1, T = 10).
//!
//! The paper's formula has the KD term; the reference scripts set its weight to 0, which
//! `kd_weight = 0` (or `kd = "none"`, which also needs no foundation model) reproduces.
//! The expert for task t merges W0 + ΔW_t into a plain student plus head_t, with exactly
//! the student's parameter count.

use super::hard_sharing::{HardSharingMethod, WeightingKind};
use super::{Granularity, FEATURE_KD};
use crate::spec::run::{LowRankConfig, MethodOptions};

pub const LORKD: HardSharingMethod = HardSharingMethod {
    key: "lorkd",
    granularity: Granularity::Joint,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: Some(FEATURE_KD),
        low_rank: Some(LowRankConfig {
            rank: 4,
            alpha: 16.0,
        }),
        moco: None,
        kf: None,
    },
};
