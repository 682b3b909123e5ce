//! The KD settings of the distilling methods (STL-KD, MTL-KD, KF, LoRKD) in `[method.NAME]`:
//! `kd = "feature" | "logit" | "none"`, `kd_weight` (feature KD's β), `kd_temperature` and
//! `kd_alpha` (logit KD's α). A setting that does not go with the chosen kind is refused.
//! Defaults: feature KD β = 1, T = 10 (METHODS.md, LoRKD's); logit KD α = 0.9, T = 4
//! (Hinton's common values), each unless the method's own defaults say otherwise.

use serde::Deserialize;

use crate::spec::catalog::SettingGroup;
use crate::spec::options::{KdConfig, MethodOptions};
use crate::spec::settings::{
    finite_positive, non_negative, unit_interval, SettingError, SettingsTable,
};

/// The group every distilling method lists.
pub const KD_SETTINGS: SettingGroup = SettingGroup {
    what: "KD settings",
    keys: &["kd", "kd_weight", "kd_temperature", "kd_alpha"],
    read: read_kd,
};

/// `kd = …` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KdKind {
    /// LoRKD's feature KD.
    Feature,
    /// Hinton's logit KD.
    Logit,
    /// No distillation (and no foundation model needed).
    None,
}

fn read_kd(t: &SettingsTable, base: MethodOptions) -> Result<MethodOptions, SettingError> {
    let temperature = t.number("kd_temperature", finite_positive)?;
    let kind = match t.get::<KdKind>("kd")? {
        Some(k) => *k.get_ref(),
        None => match base.kd {
            Some(KdConfig::Feature { .. }) => KdKind::Feature,
            Some(KdConfig::Logit { .. }) => KdKind::Logit,
            None => KdKind::None,
        },
    };
    let misplaced =
        |keys: &[&str], why: &str| t.refuse(keys, |k| format!("{}: {why}; remove it", t.field(k)));
    let kd = match kind {
        KdKind::None => {
            misplaced(
                &["kd_weight", "kd_temperature", "kd_alpha"],
                "KD is off (kd = \"none\")",
            )?;
            None
        }
        KdKind::Feature => {
            misplaced(&["kd_alpha"], "kd_alpha belongs to logit KD")?;
            let weight = t.number("kd_weight", non_negative)?;
            let (dw, dt) = match base.kd {
                Some(KdConfig::Feature {
                    weight,
                    temperature,
                }) => (weight, temperature),
                _ => (1.0, 10.0),
            };
            Some(KdConfig::Feature {
                weight: weight.unwrap_or(dw),
                temperature: temperature.unwrap_or(dt),
            })
        }
        KdKind::Logit => {
            misplaced(&["kd_weight"], "logit KD weighs its terms with kd_alpha")?;
            let (da, dt) = match base.kd {
                Some(KdConfig::Logit { alpha, temperature }) => (alpha, temperature),
                _ => (0.9, 4.0),
            };
            let alpha = t.number("kd_alpha", unit_interval)?.unwrap_or(da);
            Some(KdConfig::Logit {
                temperature: temperature.unwrap_or(dt),
                alpha,
            })
        }
    };
    Ok(MethodOptions { kd, ..base })
}
