//! Experiment manifests, `results/experiments/<experiment>/<profile>.json`: which runs an
//! experiment file planned under a profile, and what its reports need besides the runs'
//! metrics (the paper's values, the expert ↔ downstream correspondence). Run ids do not
//! depend on the experiment, so several experiments can share a run; the manifest is what
//! says a run belongs to an experiment. `harness run` writes it before training, so the
//! reports of a half-finished sweep show what is done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::reference::Reference;
use crate::util::fs::{read_json, write_json_atomic};

/// The folder under the results folder that holds the manifests (no run id looks like it).
pub const MANIFEST_DIR: &str = "experiments";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub experiment: String,
    pub profile: String,
    /// The experiment file as it was given to `harness run`.
    pub file: String,
    #[serde(default)]
    pub description: String,
    /// Every run of the plan, in plan order.
    pub runs: Vec<String>,
    /// The grid's downstream sets, in file order (the transfer tables' columns).
    #[serde(default)]
    pub downstream: Vec<String>,
    /// Pre-training set → downstream set → the pre-training task whose expert is
    /// fine-tuned (`None`: †).
    #[serde(default)]
    pub expert_for: BTreeMap<String, BTreeMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

/// Where the manifest of (experiment, profile) lives.
pub fn manifest_path(results_dir: &Path, experiment: &str, profile: &str) -> PathBuf {
    results_dir
        .join(MANIFEST_DIR)
        .join(experiment)
        .join(format!("{profile}.json"))
}

/// Write (or replace) a manifest atomically.
pub fn write_manifest(results_dir: &Path, m: &Manifest) -> Result<()> {
    write_json_atomic(&manifest_path(results_dir, &m.experiment, &m.profile), m)
}

/// Every manifest of the store, sorted by (experiment, profile). A manifest that cannot be
/// read is an error naming its path (delete it, or re-run its experiment to rewrite it).
pub fn read_manifests(results_dir: &Path) -> Result<Vec<Manifest>> {
    let root = results_dir.join(MANIFEST_DIR);
    let Ok(experiments) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in experiments.flatten() {
        let Ok(profiles) = std::fs::read_dir(e.path()) else {
            continue;
        };
        for p in profiles.flatten() {
            let path = p.path();
            if path.extension().is_some_and(|x| x == "json") {
                let m: Manifest = read_json(&path).map_err(|err| {
                    Error::input(format!(
                        "{err} (an experiment manifest: re-run its experiment to rewrite it, or delete it)"
                    ))
                })?;
                out.push(m);
            }
        }
    }
    out.sort_by(|a, b| (&a.experiment, &a.profile).cmp(&(&b.experiment, &b.profile)));
    Ok(out)
}

/// (experiment, run id) for every run a manifest lists.
pub fn membership(manifests: &[Manifest]) -> Vec<(String, String)> {
    manifests
        .iter()
        .flat_map(|m| m.runs.iter().map(|r| (m.experiment.clone(), r.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_list_their_runs() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            experiment: "table4".into(),
            profile: "smoke".into(),
            file: "experiments/table4.toml".into(),
            description: String::new(),
            runs: vec!["a".into(), "b".into()],
            downstream: vec!["covid".into()],
            expert_for: BTreeMap::new(),
            reference: None,
        };
        write_manifest(dir.path(), &m).unwrap();
        assert!(manifest_path(dir.path(), "table4", "smoke").is_file());
        assert_eq!(read_manifests(dir.path()).unwrap(), vec![m.clone()]);
        assert_eq!(
            membership(&[m]),
            vec![
                ("table4".to_string(), "a".to_string()),
                ("table4".into(), "b".into())
            ]
        );
        std::fs::write(manifest_path(dir.path(), "table4", "paper"), "{oops").unwrap();
        let err = read_manifests(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("paper.json") && err.contains("re-run"),
            "{err}"
        );
    }
}
