//! The transfer stage's settings: that the stage and `grid.downstream` go together, the
//! profile's `[profile.P.transfer]` protocol, the experiment's `[expert_for.SET]`
//! overrides of the registry's expert ↔ downstream correspondence (supplement Table 1), and
//! the `[reference]` table of the paper's values.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{TransferSettings, Validator};
use crate::data::registry::{DatasetEntry, Role};
use crate::error::Result;
use crate::spec::catalog::canonical_key;
use crate::spec::file::{ExperimentFile, ProfileTransferFile};
use crate::spec::reference::{Reference, ReferenceRow, AVG, BEST_BASELINE};
use crate::spec::run::{OptimConfig, Stage, TransferMode};
use crate::spec::settings::{finite_positive, non_negative, positive};

/// Fine-tuning starts from trained weights, so its default learning rate is a fifth of the
/// profile's (the profile's own trains a linear probe's head).
pub const FINETUNE_LR_FACTOR: f64 = 0.2;

impl Validator<'_> {
    /// Keys of every downstream task of the registry.
    fn downstream_keys(&self) -> Vec<&str> {
        self.registry
            .datasets
            .iter()
            .filter(|d| d.role == Role::Downstream)
            .flat_map(|d| d.tasks.iter().map(|t| t.key.as_str()))
            .collect()
    }

    /// The transfer stage, `grid.downstream` and the transfer tables come together.
    pub(super) fn transfer_checks(
        &self,
        f: &ExperimentFile,
        stages: &[Stage],
        downstream: &[String],
    ) -> Result<()> {
        let transfer = stages.contains(&Stage::Transfer);
        if transfer && downstream.is_empty() {
            let span = f
                .stages
                .iter()
                .find(|s| *s.get_ref() == Stage::Transfer)
                .map(|s| s.span())
                .unwrap_or_default();
            return self.err(
                span,
                format!(
                    "the transfer stage needs downstream sets: add grid.downstream = [...] (known: {})",
                    self.downstream_keys().join(", ")
                ),
            );
        }
        if transfer {
            return Ok(());
        }
        let why = "applies to the transfer stage; add \"transfer\" to `stages` or remove it";
        if let Some(d) = f.grid.downstream.first() {
            return self.err(d.span(), format!("grid.downstream {why}"));
        }
        if let Some(t) = &f.transfer {
            return self.err(t.span(), format!("[transfer] {why}"));
        }
        if let Some((set, t)) = f.expert_for.iter().next() {
            return self.err(t.span(), format!("[expert_for.{set}] {why}"));
        }
        for (pname, p) in &f.profile {
            if let Some(t) = &p.get_ref().transfer {
                return self.err(t.span(), format!("[profile.{pname}.transfer] {why}"));
            }
        }
        Ok(())
    }

    /// A profile's transfer protocol: `[profile.P.transfer]` over the defaults (the
    /// profile's epochs and optimiser; fine-tuning at a fifth of its learning rate, a
    /// linear probe at it).
    pub(super) fn profile_transfer(
        &self,
        profile: &str,
        t: Option<&Spanned<ProfileTransferFile>>,
        epochs: u32,
        optim: &OptimConfig,
    ) -> Result<TransferSettings> {
        let default = ProfileTransferFile::default();
        let t = t.map_or(&default, |t| t.get_ref());
        let field = |k: &str| format!("profile.{profile}.transfer.{k}");
        let mode = t
            .mode
            .as_ref()
            .map_or(TransferMode::Finetune, |m| *m.get_ref());
        let mut optim = optim.clone();
        if let Some(name) = &t.optimizer {
            optim.name = *name.get_ref();
        }
        optim.lr = match &t.lr {
            Some(lr) => self.located(finite_positive(lr, &field("lr")))?,
            None if mode == TransferMode::Finetune => optim.lr * FINETUNE_LR_FACTOR,
            None => optim.lr,
        };
        if let Some(wd) = &t.weight_decay {
            optim.weight_decay = self.located(non_negative(wd, &field("weight_decay")))?;
        }
        let epochs = match &t.epochs {
            Some(e) => self.located(positive(e, &field("epochs")))?,
            None => epochs,
        };
        Ok(TransferSettings {
            epochs,
            mode,
            optim,
        })
    }

    /// For every pre-training set × downstream set of the grid, the pre-training task whose
    /// expert is fine-tuned: the registry's `expert_for`, with `[expert_for.SET]` over it.
    pub(super) fn expert_for(
        &self,
        f: &ExperimentFile,
        pretrain: &[String],
        downstream: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, Option<String>>>> {
        let known = self.downstream_keys();
        let mut overrides: BTreeMap<&str, BTreeMap<&str, Option<String>>> = BTreeMap::new();
        for (set, table) in &f.expert_for {
            let Some(entry) = pretrain
                .contains(set)
                .then(|| self.registry.dataset(set))
                .flatten()
            else {
                return self.err(
                    table.span(),
                    format!(
                        "[expert_for.{set}]: `{set}` is not a pre-training set of grid.pretrain ({})",
                        pretrain.join(", ")
                    ),
                );
            };
            let row = overrides.entry(set).or_default();
            for (down, v) in table.get_ref() {
                let field = format!("expert_for.{set}.{down}");
                if !known.contains(&down.as_str()) {
                    return self.err(
                        v.span(),
                        format!(
                            "{field}: unknown downstream set `{down}` (known: {})",
                            known.join(", ")
                        ),
                    );
                }
                row.insert(down, self.expert_task(entry, &field, v)?);
            }
        }
        let mut out = BTreeMap::new();
        for set in pretrain {
            let Some(entry) = self.registry.dataset(set) else {
                continue;
            };
            let mut row = BTreeMap::new();
            for d in downstream {
                let registered = entry
                    .expert_for
                    .get(d)
                    .and_then(|id| entry.tasks.iter().find(|t| t.id == *id))
                    .map(|t| t.key.clone());
                let chosen = match overrides.get(set.as_str()).and_then(|o| o.get(d.as_str())) {
                    Some(o) => o.clone(),
                    None => registered,
                };
                row.insert(d.clone(), chosen);
            }
            out.insert(set.clone(), row);
        }
        Ok(out)
    }

    /// One `[expert_for.SET]` value: a task id (`Expert_k` → k), a task key, or `"none"`.
    fn expert_task(
        &self,
        entry: &DatasetEntry,
        field: &str,
        v: &Spanned<toml::Value>,
    ) -> Result<Option<String>> {
        let tasks = || {
            entry
                .tasks
                .iter()
                .map(|t| format!("{} = {}", t.id, t.key))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match v.get_ref() {
            toml::Value::Integer(id) => match entry.tasks.iter().find(|t| t.id as i64 == *id) {
                Some(t) => Ok(Some(t.key.clone())),
                None => self.err(
                    v.span(),
                    format!("{field}: `{}` has no task {id} (its tasks: {})", entry.key, tasks()),
                ),
            },
            toml::Value::String(s) if s == "none" => Ok(None),
            toml::Value::String(s) => match entry.tasks.iter().find(|t| &t.key == s) {
                Some(t) => Ok(Some(t.key.clone())),
                None => self.err(
                    v.span(),
                    format!(
                        "{field}: `{}` has no task `{s}` (its tasks: {}); \"none\" marks no match (†)",
                        entry.key,
                        tasks()
                    ),
                ),
            },
            other => self.err(
                v.span(),
                format!(
                    "{field}: expected a task id, a task key or \"none\", got {}",
                    other.type_str()
                ),
            ),
        }
    }

    /// `[reference]`: rows of known foundation models and methods, values of the table's
    /// columns (the pre-training set's tasks for `decompose`, the grid's downstream sets for
    /// `transfer`, and `avg`) in percent.
    pub(super) fn reference(
        &self,
        f: &ExperimentFile,
        pretrain: &[String],
        downstream: &[String],
        foundation: &[String],
    ) -> Result<Option<Reference>> {
        let Some(r) = &f.reference else {
            return Ok(None);
        };
        let r = r.get_ref();
        let stage = *r.stage.get_ref();
        let columns: Vec<String> = match stage {
            Stage::Decompose => {
                let [set] = pretrain else {
                    return self.err(
                        r.stage.span(),
                        "reference.stage = \"decompose\" needs exactly one pre-training set in grid.pretrain (the table's columns are its tasks)",
                    );
                };
                self.registry
                    .dataset(set)
                    .map(|d| d.tasks.iter().map(|t| t.key.clone()).collect())
                    .unwrap_or_default()
            }
            Stage::Transfer => downstream.to_vec(),
            Stage::Foundation | Stage::Analysis => {
                return self.err(
                    r.stage.span(),
                    "reference.stage must be \"decompose\" (Table 3) or \"transfer\" (Table 4)",
                )
            }
        };
        if r.source.get_ref().trim().is_empty() {
            return self.err(
                r.source.span(),
                "reference.source must name where the numbers are printed",
            );
        }
        let mut rows = Vec::new();
        for row in &r.row {
            let row = row.get_ref();
            if !foundation.contains(row.foundation.get_ref()) {
                return self.err(
                    row.foundation.span(),
                    format!(
                        "reference.row.foundation: `{}` is not in grid.foundation ({})",
                        row.foundation.get_ref(),
                        foundation.join(", ")
                    ),
                );
            }
            let method = match row.method.get_ref().as_str() {
                BEST_BASELINE => BEST_BASELINE.to_string(),
                name => {
                    let key = canonical_key(name);
                    if !self.catalog.known().iter().any(|(k, _)| *k == key) {
                        return self.err(
                            row.method.span(),
                            format!("reference.row.method: unknown method `{name}` (a method key or \"{BEST_BASELINE}\")"),
                        );
                    }
                    key
                }
            };
            let mut values = BTreeMap::new();
            for (k, v) in &row.values {
                if k != AVG && !columns.contains(k) {
                    return self.err(
                        v.span(),
                        format!(
                            "reference.row.values: `{k}` is not a column of this table ({}, {AVG})",
                            columns.join(", ")
                        ),
                    );
                }
                if !(0.0..=100.0).contains(v.get_ref()) {
                    return self.err(
                        v.span(),
                        format!("reference.row.values.{k} must be a percentage (0..=100)"),
                    );
                }
                values.insert(k.clone(), *v.get_ref());
            }
            rows.push(ReferenceRow {
                foundation: row.foundation.get_ref().clone(),
                method,
                values,
            });
        }
        Ok(Some(Reference {
            source: r.source.get_ref().clone(),
            stage,
            rows,
        }))
    }
}
