//! Which stored runs a report should show. The store keeps every run ever executed; when an
//! experiment file changes (more epochs, another learning rate) its runs get new ids and the
//! old folders stay. Reports must not mix both as if they were extra seeds, so for each
//! (experiment, profile, stage, method, data set, tasks, seed) only the most recently
//! finished `done` run counts.

use std::collections::BTreeMap;
use std::path::Path;

use super::run_dir::RunDir;
use super::status::State;
use crate::error::Result;

/// Ids of the current finished runs in `results_dir`, sorted.
pub fn current_runs(results_dir: &Path) -> Result<Vec<String>> {
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
        let key = format!(
            "{}|{}|{}|{}|{}|{:?}|{:?}|{}|{}",
            spec.experiment,
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
        let run_id = spec.run_id();
        match latest.get(&key) {
            Some((t, _)) if *t >= finished => {}
            _ => {
                latest.insert(key, (finished, run_id));
            }
        }
    }
    let mut ids: Vec<String> = latest.into_values().map(|(_, id)| id).collect();
    ids.sort();
    Ok(ids)
}
