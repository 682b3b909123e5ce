//! Which stored runs a report should show. The store keeps every run ever executed; when an
//! experiment file changes (more epochs, another learning rate) its runs get new ids and the
//! old folders stay. Reports must not mix both as if they were extra seeds.
//!
//! An experiment's manifest lists exactly the runs of its current plan, so its finished
//! runs are the current ones, and a run no manifest lists any more is not. Runs of stores written before manifests existed fall back to
//! the old rule: for each (experiment, profile, stage, method, data sets, tasks, seed) the
//! most recently finished `done` run counts, with the experiment read from the run's own
//! `spec.json` (older run specs carried it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::manifest::read_manifests;
use super::run_dir::RunDir;
use super::status::State;
use crate::error::Result;

/// Ids of the current finished runs in `results_dir`, sorted.
pub fn current_runs(results_dir: &Path) -> Result<Vec<String>> {
    let listed: BTreeSet<String> = read_manifests(results_dir)?
        .into_iter()
        .flat_map(|m| m.runs)
        .collect();
    let mut current: BTreeSet<String> = BTreeSet::new();
    let mut latest: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(results_dir) else {
        return Ok(Vec::new());
    };
    for e in rd.flatten() {
        let dir = RunDir { path: e.path() };
        let (Ok(Some(status)), Ok(spec)) = (dir.read_status(), dir.read_spec()) else {
            continue;
        };
        if status.state != State::Done {
            continue;
        }
        let bad = super::artefacts::problems(&dir, &status, super::artefacts::Depth::Plan);
        if !bad.is_empty() {
            // Reports never show numbers from a file that is not what the run wrote.
            eprintln!(
                "warning: run {} left out of reports: {}; `harness run` redoes it",
                status.run_id,
                bad.join("; ")
            );
            continue;
        }
        let run_id = spec.run_id();
        if listed.contains(&run_id) {
            current.insert(run_id);
            continue;
        }
        // A run written since manifests exist that no manifest lists was superseded (its
        // experiment file changed); only runs of older stores go by the rule below.
        let Some(legacy) = dir.legacy_experiment() else {
            continue;
        };
        let key = format!(
            "{}|{}|{}|{}|{}|{:?}|{:?}|{}|{}",
            legacy,
            spec.profile,
            spec.stage.as_str(),
            spec.method,
            spec.pretrain,
            spec.downstream,
            spec.foundation,
            spec.tasks.join(","),
            spec.seed
        );
        let finished = status.finished_at.unwrap_or(0.0);
        match latest.get(&key) {
            Some((t, _)) if *t >= finished => {}
            _ => {
                latest.insert(key, (finished, run_id));
            }
        }
    }
    current.extend(latest.into_values().map(|(_, id)| id));
    Ok(current.into_iter().collect())
}
