//! What the experiment layer needs to know of the decomposition methods, as an interface the
//! methods implement ([`MethodSettings`]) and a catalogue of them ([`MethodCatalog`]) that
//! the caller hands to validation and expansion. The methods live above this layer
//! (`crate::method`), so `spec` names none of them: a new method, or a new setting of one,
//! touches only the method's own file.

use super::options::MethodOptions;
use super::settings::{SettingError, SettingsTable};
use crate::error::Error;

/// How a method splits a pre-training set into runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One independent run per task (STL family).
    PerTask,
    /// One run over the union of all tasks (MTL family).
    Joint,
}

/// What a method's runs offer a downstream set (supplement section C, Table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRule {
    /// Independent per-task students (STL, STL-KD): only the student whose pre-training
    /// task matches the downstream set is fine-tuned; no match, no run (the paper's "–").
    MatchingStudent,
    /// One shared encoder and no task experts (MTL, MoCo-MTL, Aligned-MTL, MTL-KD): the
    /// encoder is fine-tuned on every set.
    SharedEncoder,
    /// Task experts on a shared network (KF, LoRKD): the matching expert, else the shared
    /// network (the paper's †).
    ExpertOrShared,
}

/// One group of related settings a method accepts in its `[method.NAME]` table (KD,
/// low-rank experts, MoCo-MTL's, KF's): the keys it reads, and how it reads them over the
/// options resolved so far. Methods share a group by listing the same value.
#[derive(Clone, Copy)]
pub struct SettingGroup {
    /// What the settings are, for messages: "KD settings".
    pub what: &'static str,
    pub keys: &'static [&'static str],
    pub read: fn(&SettingsTable, MethodOptions) -> Result<MethodOptions, SettingError>,
}

/// A method as the experiment layer sees it.
pub trait MethodSettings: Send + Sync {
    /// Registry key: `stl`, `mocomtl`, ...
    fn key(&self) -> &'static str;
    fn granularity(&self) -> Granularity;
    /// What the transfer stage fine-tunes of the method's runs.
    fn transfer_rule(&self) -> TransferRule;
    /// The method's settings before the experiment file's `[method.KEY]` tables.
    fn default_options(&self) -> MethodOptions {
        MethodOptions::default()
    }
    /// The settings the method reads from its table, besides the training overrides every
    /// method takes (`lr`, `weight_decay`, `epochs`).
    fn setting_groups(&self) -> &'static [SettingGroup] {
        &[]
    }
    /// The hook: read one `[method.KEY]` table (only keys of [`Self::setting_groups`] reach
    /// it) over `base`, into typed options or an error at the offending value.
    fn read_settings(
        &self,
        table: &SettingsTable,
        base: MethodOptions,
    ) -> Result<MethodOptions, SettingError> {
        self.setting_groups()
            .iter()
            .try_fold(base, |options, group| (group.read)(table, options))
    }
    /// Resolved settings the method cannot run with, as the fix to print.
    fn check_options(&self, _options: &MethodOptions) -> Result<(), String> {
        Ok(())
    }
}

/// The methods a build knows.
pub trait MethodCatalog {
    /// Every method of the paper, in its table order: (key, display name). Some may not be
    /// implemented in a build.
    fn known(&self) -> &[(&'static str, &'static str)];
    /// An implemented method by key.
    fn lookup(&self, key: &str) -> Option<&dyn MethodSettings>;

    /// Keys of the implemented methods, in paper order.
    fn implemented(&self) -> Vec<&'static str> {
        self.known()
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.lookup(k).is_some())
            .collect()
    }

    /// The implemented method `key`, or the error every caller gives for one that is not.
    fn require(&self, key: &str) -> crate::Result<&dyn MethodSettings> {
        self.lookup(key)
            .ok_or_else(|| not_implemented(key, &self.implemented()))
    }
}

/// The one message for a method this build cannot run (a run spec from another build, or a
/// paper method still to come).
pub fn not_implemented(key: &str, available: &[&str]) -> Error {
    Error::input(format!(
        "method `{key}` is not implemented in this build (available: {})",
        available.join(", ")
    ))
}

/// Canonical key of a method name as users write it: `MoCo-MTL`, `moco_mtl` → `mocomtl`.
pub fn canonical_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Keys of the methods of `catalog` that accept setting `key`, and the group's description.
pub fn owners_of(
    catalog: &dyn MethodCatalog,
    key: &str,
) -> (Vec<&'static str>, Option<&'static str>) {
    let mut owners = Vec::new();
    let mut what = None;
    for k in catalog.implemented() {
        if let Some(m) = catalog.lookup(k) {
            if let Some(g) = m.setting_groups().iter().find(|g| g.keys.contains(&key)) {
                owners.push(k);
                what = Some(g.what);
            }
        }
    }
    (owners, what)
}
