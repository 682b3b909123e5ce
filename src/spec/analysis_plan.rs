//! The analysis runs of a plan: one per (pre-training set, method, foundation model, seed)
//! of the decomposition runs, comparing that decomposition's experts with each other (CKA,
//! supplement Figure 5). An STL-style method trains one run per task, so its analysis run
//! gathers the T runs of one seed; a joint method's T experts all live in one run. The
//! analysis run names its sources' run ids, so it depends on them in the plan DAG and is
//! cached like every run.

use std::collections::BTreeMap;

use super::catalog::{Granularity, MethodCatalog};
use super::run::{AnalysisRef, CkaProtocol, RunSpec, Stage, TrainConfig};
use super::validate::Profile;
use crate::error::{Error, Result};
use crate::CODE_VERSION;

/// The analysis runs of the decomposition runs among `runs`, in their order.
pub fn analysis_specs(
    profile: &Profile,
    catalog: &dyn MethodCatalog,
    protocols: &[CkaProtocol],
    runs: &[RunSpec],
) -> Result<Vec<RunSpec>> {
    // (pretrain, method, foundation, seed) → the decomposition runs, in plan order.
    let mut groups: BTreeMap<(String, String, Option<String>, u64), Vec<&RunSpec>> =
        BTreeMap::new();
    let mut order = Vec::new();
    for r in runs.iter().filter(|r| r.stage == Stage::Decompose) {
        let key = (
            r.pretrain.clone(),
            r.method.clone(),
            r.foundation.clone(),
            r.seed,
        );
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(r);
    }
    let mut out = Vec::new();
    for key in order {
        let members = &groups[&key];
        let first = members[0];
        let (tasks, sources) = match catalog.require(&first.method)?.granularity() {
            Granularity::Joint => (first.tasks.clone(), vec![first.run_id(); first.tasks.len()]),
            Granularity::PerTask => {
                let tasks: Vec<String> = members.iter().flat_map(|r| r.tasks.clone()).collect();
                (tasks, members.iter().map(|r| r.run_id()).collect())
            }
        };
        if tasks.len() < 2 {
            return Err(Error::input(format!(
                "the analysis of {} has {} task; CKA compares two experts or more",
                first.label(),
                tasks.len()
            )));
        }
        let settings = &profile.analysis;
        out.push(RunSpec {
            profile: first.profile.clone(),
            stage: Stage::Analysis,
            method: first.method.clone(),
            pretrain: first.pretrain.clone(),
            downstream: None,
            foundation: first.foundation.clone(),
            tasks,
            seed: first.seed,
            data: first.data.clone(),
            model: first.model.clone(),
            // Nothing is trained: no epochs; the batch sizes are the evaluation's.
            train: TrainConfig {
                epochs: 0,
                ..first.train.clone()
            },
            options: first.options,
            teacher: first.teacher.clone(),
            weights: None,
            transfer: None,
            analysis: Some(AnalysisRef {
                sources,
                protocols: protocols.to_vec(),
                samples: settings.samples,
                estimator: settings.estimator,
                batch: settings.batch,
            }),
            code_version: CODE_VERSION.to_string(),
        });
    }
    Ok(out)
}
