//! The analysis stage's settings: `[analysis] protocols`, `[profile.P.analysis]` sizes, and
//! that both come with the stage, whose CKA matrices need pre-training sets of two tasks or
//! more and methods that leave one expert per task.

use toml::Spanned;

use super::{AnalysisSettings, Validator};
use crate::error::Result;
use crate::spec::file::{ExperimentFile, ProfileAnalysisFile};
use crate::spec::run::{CkaEstimator, CkaProtocol, Stage};

/// Test images per task when a profile does not say (capped by the least test split).
pub const DEFAULT_SAMPLES: usize = 500;
/// Rows per minibatch of the minibatch estimator when a profile does not say.
pub const DEFAULT_BATCH: usize = 256;
/// The unbiased HSIC estimator needs four samples per batch.
const LEAST_ROWS: usize = 4;

impl Validator<'_> {
    /// `[analysis]` and `[profile.P.analysis]` need the analysis stage; the stage needs
    /// multi-task pre-training sets. Gives the protocols to compute (default `cross-task`).
    pub(super) fn analysis_checks(
        &self,
        f: &ExperimentFile,
        stages: &[Stage],
        pretrain: &[String],
    ) -> Result<Vec<CkaProtocol>> {
        if !stages.contains(&Stage::Analysis) {
            let why = "applies to the analysis stage; add \"analysis\" to `stages` or remove it";
            if let Some(a) = &f.analysis {
                return self.err(a.span(), format!("[analysis] {why}"));
            }
            for (pname, p) in &f.profile {
                if let Some(a) = &p.get_ref().analysis {
                    return self.err(a.span(), format!("[profile.{pname}.analysis] {why}"));
                }
            }
            return Ok(Vec::new());
        }
        let span = f
            .stages
            .iter()
            .find(|s| *s.get_ref() == Stage::Analysis)
            .map(|s| s.span())
            .unwrap_or_default();
        for set in pretrain {
            let tasks = self.registry.dataset(set).map_or(0, |d| d.tasks.len());
            if tasks < 2 {
                return self.err(
                    span,
                    format!(
                        "the analysis stage compares the experts of a pre-training set's tasks, and `{set}` has {tasks}; use a set with two tasks or more"
                    ),
                );
            }
        }
        let mut protocols = Vec::new();
        for p in f.analysis.iter().flat_map(|a| &a.get_ref().protocols) {
            if protocols.contains(p.get_ref()) {
                return self.err(
                    p.span(),
                    format!("protocol `{}` is listed twice", p.get_ref().as_str()),
                );
            }
            protocols.push(*p.get_ref());
        }
        if protocols.is_empty() {
            protocols.push(CkaProtocol::CrossTask);
        }
        protocols.sort();
        Ok(protocols)
    }

    /// A profile's analysis size: `[profile.P.analysis]` over the defaults.
    pub(super) fn profile_analysis(
        &self,
        profile: &str,
        a: Option<&Spanned<ProfileAnalysisFile>>,
    ) -> Result<AnalysisSettings> {
        let default = ProfileAnalysisFile::default();
        let a = a.map_or(&default, |a| a.get_ref());
        let least = |v: &Option<Spanned<usize>>, key: &str, default: usize| {
            match v {
            Some(v) if *v.get_ref() < LEAST_ROWS => self.err(
                v.span(),
                format!(
                    "profile.{profile}.analysis.{key} must be at least {LEAST_ROWS} (the unbiased HSIC estimator needs four samples), got {}",
                    v.get_ref()
                ),
            ),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
        };
        Ok(AnalysisSettings {
            samples: least(&a.samples, "samples", DEFAULT_SAMPLES)?,
            estimator: a
                .estimator
                .as_ref()
                .map_or(CkaEstimator::Linear, |e| *e.get_ref()),
            batch: least(&a.batch, "batch", DEFAULT_BATCH)?,
        })
    }
}
