//! Baselines: the per-seed results of one experiment's sweep, frozen under
//! `results/baselines/<NAME>.parquet` so that a later sweep can be compared with them
//! (`harness regress`). A baseline keeps the raw rows of every run's last epoch (every
//! task, split, metric and seed, with the provenance of each row), not summaries: the
//! seed-to-seed spread is the noise a verdict needs, and a baseline file alone, copied to
//! another machine, must be enough to compare against.
//!
//! The file has the metrics log's columns ([`super::metrics`]); its `experiment` column is
//! the experiment the baseline was saved for (a run shared by two experiments keeps, in its
//! own log, the experiment that first ran it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::manifest::{manifest_path, read_manifests, Manifest};
use super::metrics::{read_metrics, write_metrics, MetricRow};
use super::run_dir::RunDir;
use super::status::State;
use crate::error::{Error, Result};

/// The folder under the results folder that holds the baselines (no run id looks like it).
pub const BASELINE_DIR: &str = "baselines";

/// Where baseline `name` lives: a name is a file under `<results>/baselines/`; something
/// that looks like a path (has a `/` or ends in `.parquet`) is taken as it is.
pub fn baseline_path(results_dir: &Path, name: &str) -> PathBuf {
    if name.contains('/') || name.ends_with(".parquet") {
        PathBuf::from(name)
    } else {
        results_dir
            .join(BASELINE_DIR)
            .join(format!("{name}.parquet"))
    }
}

/// A baseline name must be a plain file name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "baseline name `{name}`: use letters, digits, `-`, `_` and `.` only (it becomes results/baselines/{name}.parquet)"
        )))
    }
}

/// How one planned run of a sweep stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Finished; its last epoch's rows.
    Done(Vec<MetricRow>),
    /// Failed, diverged, or skipped because a run it depends on did; what its spec says it
    /// is (for naming the cells it lost) and why.
    Failed {
        identity: RunIdentity,
        state: State,
        error: Option<String>,
    },
    /// Never run, still running, or interrupted.
    NotRun,
}

/// What a run is, without its seed and settings: the cells its rows land in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunIdentity {
    pub stage: String,
    pub method: String,
    pub foundation: Option<String>,
    pub pretrain: String,
    pub downstream: Option<String>,
    pub tasks: Vec<String>,
    pub seed: u64,
}

/// The runs of one experiment's current plan under one profile, each with its state.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub experiment: String,
    pub profile: String,
    pub runs: Vec<(String, RunState)>,
}

impl Sweep {
    /// Rows of the finished runs (last epoch each).
    pub fn rows(&self) -> Vec<MetricRow> {
        self.runs
            .iter()
            .filter_map(|(_, s)| match s {
                RunState::Done(rows) => Some(rows.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// (done, failed, not run) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for (_, s) in &self.runs {
            match s {
                RunState::Done(_) => c.0 += 1,
                RunState::Failed { .. } => c.1 += 1,
                RunState::NotRun => c.2 += 1,
            }
        }
        c
    }
}

/// The manifest of `experiment` (under `profile`, or its only profile).
pub fn find_manifest(
    results_dir: &Path,
    experiment: &str,
    profile: Option<&str>,
) -> Result<Manifest> {
    let all = read_manifests(results_dir)?;
    let known: BTreeSet<&str> = all.iter().map(|m| m.experiment.as_str()).collect();
    let mine: Vec<&Manifest> = all.iter().filter(|m| m.experiment == experiment).collect();
    if mine.is_empty() {
        let listed = if known.is_empty() {
            "none".to_string()
        } else {
            known.into_iter().collect::<Vec<_>>().join(", ")
        };
        return Err(Error::input(format!(
            "no runs of experiment `{experiment}` in {} (experiments there: {listed}); run its file with `harness run` first",
            results_dir.display()
        )));
    }
    match profile {
        Some(p) => mine
            .iter()
            .find(|m| m.profile == p)
            .map(|m| (*m).clone())
            .ok_or_else(|| {
                Error::input(format!(
                    "experiment `{experiment}` has no runs under profile `{p}` in {} ({} missing; profiles there: {})",
                    results_dir.display(),
                    manifest_path(results_dir, experiment, p).display(),
                    mine.iter().map(|m| m.profile.as_str()).collect::<Vec<_>>().join(", ")
                ))
            }),
        None if mine.len() == 1 => Ok(mine[0].clone()),
        None => Err(Error::input(format!(
            "experiment `{experiment}` was run under several profiles ({}); choose one with --profile",
            mine.iter().map(|m| m.profile.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The only experiment of the store, for commands whose `--experiment` is optional.
pub fn only_experiment(results_dir: &Path) -> Result<String> {
    let names: BTreeSet<String> = read_manifests(results_dir)?
        .into_iter()
        .map(|m| m.experiment)
        .collect();
    match names.len() {
        1 => Ok(names.into_iter().next().unwrap_or_default()),
        0 => Err(Error::input(format!(
            "no experiments in {}; run one with `harness run FILE` first",
            results_dir.display()
        ))),
        _ => Err(Error::input(format!(
            "{} holds several experiments ({}); choose one with --experiment",
            results_dir.display(),
            names.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Reads the state and last-epoch rows of every run a manifest lists. Analysis runs (no
/// metrics log) are left out: they have nothing a verdict could compare.
pub fn read_sweep(results_dir: &Path, manifest: &Manifest) -> Result<Sweep> {
    let mut runs = Vec::new();
    for id in &manifest.runs {
        let dir = RunDir::new(results_dir, id);
        let state = match dir.effective_state()? {
            Some(State::Done) => {
                if !dir.metrics_path().is_file() {
                    continue;
                }
                let mut rows = last_epoch(read_metrics(&dir.metrics_path())?);
                for r in &mut rows {
                    r.experiment = manifest.experiment.clone();
                }
                RunState::Done(rows)
            }
            Some(state @ (State::Failed | State::Diverged | State::Skipped)) => {
                let spec = dir.read_spec()?;
                if spec.analysis.is_some() {
                    continue;
                }
                let status = dir.read_status()?;
                RunState::Failed {
                    identity: RunIdentity {
                        stage: spec.stage.as_str().to_string(),
                        method: spec.method.clone(),
                        foundation: spec.foundation.clone(),
                        pretrain: spec.pretrain.clone(),
                        downstream: spec.downstream.clone(),
                        tasks: spec.tasks.clone(),
                        seed: spec.seed,
                    },
                    state,
                    error: status.and_then(|s| s.error),
                }
            }
            _ => {
                let analysis = dir.read_spec().ok().is_some_and(|s| s.analysis.is_some());
                if analysis {
                    continue;
                }
                RunState::NotRun
            }
        };
        runs.push((id.clone(), state));
    }
    Ok(Sweep {
        experiment: manifest.experiment.clone(),
        profile: manifest.profile.clone(),
        runs,
    })
}

/// The rows of a run's last epoch.
fn last_epoch(rows: Vec<MetricRow>) -> Vec<MetricRow> {
    let last = rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    rows.into_iter().filter(|r| r.epoch == last).collect()
}

/// What `save` wrote.
#[derive(Debug)]
pub struct Saved {
    pub path: PathBuf,
    pub runs: usize,
    pub rows: usize,
    pub data_kinds: Vec<String>,
    /// Runs left out (with `--force`): not finished, failed or diverged.
    pub left_out: usize,
}

/// Promotes the finished runs of `sweep` to baseline `name`. An incomplete sweep or one
/// mixing real and synthetic data is refused unless `force`.
pub fn save(results_dir: &Path, name: &str, sweep: &Sweep, force: bool) -> Result<Saved> {
    check_name(name)?;
    let (done, failed, not_run) = sweep.counts();
    if done == 0 {
        return Err(Error::input(format!(
            "experiment `{}` (profile {}) has no finished runs to save; run it first",
            sweep.experiment, sweep.profile
        )));
    }
    if (failed > 0 || not_run > 0) && !force {
        return Err(Error::input(format!(
            "experiment `{}` (profile {}) is incomplete: {done} of {} runs done, {failed} failed or diverged, {not_run} not run; finish it (`harness run FILE` resumes) or pass --force to save the finished runs only",
            sweep.experiment,
            sweep.profile,
            sweep.runs.len()
        )));
    }
    let rows = sweep.rows();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *kinds.entry(r.data_kind.clone()).or_default() += 1;
    }
    if kinds.len() > 1 && !force {
        return Err(Error::input(format!(
            "experiment `{}` mixes data kinds ({}); a baseline of real and synthetic numbers together is refused unless --force",
            sweep.experiment,
            kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n} rows"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let path = baseline_path(results_dir, name);
    write_metrics(&path, &rows)?;
    Ok(Saved {
        path,
        runs: done,
        rows: rows.len(),
        data_kinds: kinds.into_keys().collect(),
        left_out: failed + not_run,
    })
}

/// Reads baseline `name`; a missing file is bad input that says how to make one.
pub fn load(results_dir: &Path, name: &str) -> Result<(PathBuf, Vec<MetricRow>)> {
    let path = baseline_path(results_dir, name);
    if !path.is_file() {
        return Err(Error::input(format!(
            "no baseline `{name}`: {} does not exist; save one with `harness baseline save {name} --experiment E` after a complete sweep",
            path.display()
        )));
    }
    let rows = read_metrics(&path)?;
    if rows.is_empty() {
        return Err(Error::input(format!(
            "baseline {} holds no rows; save it again from a finished sweep",
            path.display()
        )));
    }
    Ok((path, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_files_under_baselines_and_paths_stay_paths() {
        let r = Path::new("res");
        assert_eq!(
            baseline_path(r, "nightly"),
            PathBuf::from("res/baselines/nightly.parquet")
        );
        assert_eq!(
            baseline_path(r, "other/b.parquet"),
            PathBuf::from("other/b.parquet")
        );
        assert!(check_name("nightly-2026.12").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert_eq!(check_name(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn a_missing_baseline_is_bad_input_saying_how_to_save_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), "nightly").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("harness baseline save nightly"),
            "{err}"
        );
    }
}
