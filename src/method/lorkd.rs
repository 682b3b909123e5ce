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
use super::kd_settings::KD_SETTINGS;
use super::FEATURE_KD;
use crate::spec::catalog::{Granularity, SettingGroup, TransferRule};
use crate::spec::options::{LowRankConfig, MethodOptions};
use crate::spec::settings::{finite_positive, positive, SettingError, SettingsTable};

/// The paper's experts: rank 4, ΔW = (16/4)·BA.
pub const LOW_RANK_DEFAULT: LowRankConfig = LowRankConfig {
    rank: 4,
    alpha: 16.0,
};

pub const LORKD: HardSharingMethod = HardSharingMethod {
    key: "lorkd",
    granularity: Granularity::Joint,
    transfer: TransferRule::ExpertOrShared,
    weighting: WeightingKind::Equal,
    defaults: MethodOptions {
        kd: Some(FEATURE_KD),
        low_rank: Some(LOW_RANK_DEFAULT),
        moco: None,
        kf: None,
    },
    settings: &[KD_SETTINGS, LOW_RANK_SETTINGS],
};

/// `rank` (r) and `lora_alpha` (α) of the low-rank experts.
pub const LOW_RANK_SETTINGS: SettingGroup = SettingGroup {
    what: "low-rank expert settings",
    keys: &["rank", "lora_alpha"],
    read: read_low_rank,
};

fn read_low_rank(t: &SettingsTable, base: MethodOptions) -> Result<MethodOptions, SettingError> {
    let d = base.low_rank.unwrap_or(LOW_RANK_DEFAULT);
    let low_rank = LowRankConfig {
        rank: t.number("rank", positive::<usize>)?.unwrap_or(d.rank),
        alpha: t.number("lora_alpha", finite_positive)?.unwrap_or(d.alpha),
    };
    Ok(MethodOptions {
        low_rank: Some(low_rank),
        ..base
    })
}
