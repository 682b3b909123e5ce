//! Submitting the waves with sbatch, and the record of what was submitted,
//! `results/slurm/<experiment>/submissions.json`: which array job holds which runs, so that
//! `harness status FILE` can ask Slurm about them and `harness cancel FILE` can cancel
//! them. Scripts and task logs live beside it, one folder per submission.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::arrays::{dependency_args, script, ExecPaths, SlurmOptions, Wave};
use crate::error::{Error, Result};
use crate::store::claim::utc_timestamp;
use crate::store::status::now;
use crate::util::fs::{read_json, write_atomic, write_json_atomic};

/// The folder under the results folder for Slurm submissions (no run id looks like it).
pub const SLURM_DIR: &str = "slurm";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Unix seconds.
    pub submitted_at: f64,
    pub profile: String,
    /// Scripts and task logs of this submission.
    pub folder: PathBuf,
    pub arrays: Vec<ArrayJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayJob {
    /// The array's job id, as `sbatch --parsable` printed it.
    pub job_id: String,
    pub stages: String,
    pub script: PathBuf,
    /// Run id of each array index.
    pub runs: Vec<String>,
    /// The array jobs it waited for (afterok).
    #[serde(default)]
    pub after: Vec<String>,
}

pub fn submissions_path(results_dir: &Path, experiment: &str) -> PathBuf {
    results_dir
        .join(SLURM_DIR)
        .join(experiment)
        .join("submissions.json")
}

/// Every submission of `experiment`, oldest first (none yet: empty).
pub fn read_submissions(results_dir: &Path, experiment: &str) -> Result<Vec<Submission>> {
    let p = submissions_path(results_dir, experiment);
    if !p.exists() {
        return Ok(Vec::new());
    }
    read_json(&p)
}

fn record(results_dir: &Path, experiment: &str, all: &[Submission]) -> Result<()> {
    write_json_atomic(&submissions_path(results_dir, experiment), &all)
}

/// What a submission does, for `--dry-run` and for the log: each script and its sbatch line.
pub struct Prepared {
    pub folder: PathBuf,
    pub scripts: Vec<(PathBuf, String)>,
}

pub fn prepare(
    experiment: &str,
    waves: &[Wave],
    opts: &SlurmOptions,
    paths: &ExecPaths,
) -> Prepared {
    // A folder per submission, named by its time (UTC, no colons: some file systems refuse them).
    let stamp = utc_timestamp(now()).replace(':', "");
    let folder = paths
        .results_dir
        .join(SLURM_DIR)
        .join(experiment)
        .join(stamp);
    let logs = folder.join("logs");
    let scripts = waves
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let path = folder.join(format!("{k}-{}.sbatch", w.stages));
            (path, script(experiment, k, w, opts, paths, &logs))
        })
        .collect();
    Prepared { folder, scripts }
}

/// The sbatch command line of a wave, for showing (`$JOB_<k>`: the job id of wave k).
pub fn sbatch_line(wave: &Wave, script: &Path) -> String {
    let after: Vec<String> = wave.after.iter().map(|k| format!("$JOB_{k}")).collect();
    let mut words = vec!["sbatch".to_string(), "--parsable".into()];
    words.extend(dependency_args(&after));
    words.push(script.display().to_string());
    words.join(" ")
}

/// Write the scripts and submit them in order, each after the previous; the record is
/// saved after every array, so a failure half-way still leaves the submitted ones known.
pub fn submit(
    results_dir: &Path,
    experiment: &str,
    profile: &str,
    waves: &[Wave],
    prepared: &Prepared,
) -> Result<Submission> {
    std::fs::create_dir_all(prepared.folder.join("logs"))
        .map_err(|e| Error::io(prepared.folder.join("logs"), e))?;
    let mut all = read_submissions(results_dir, experiment)?;
    let mut sub = Submission {
        submitted_at: now(),
        profile: profile.to_string(),
        folder: prepared.folder.clone(),
        arrays: Vec::new(),
    };
    all.push(sub.clone());
    for (wave, (path, text)) in waves.iter().zip(&prepared.scripts) {
        write_atomic(path, text.as_bytes())?;
        let after: Vec<String> = wave
            .after
            .iter()
            .map(|&k| sub.arrays[k].job_id.clone())
            .collect();
        let mut args = vec!["--parsable".to_string()];
        args.extend(dependency_args(&after));
        args.push(path.display().to_string());
        let job_id = sbatch(&args)?;
        sub.arrays.push(ArrayJob {
            job_id: job_id.clone(),
            stages: wave.stages.clone(),
            script: path.clone(),
            runs: wave.run_ids.clone(),
            after: after.clone(),
        });
        *all.last_mut().expect("pushed above") = sub.clone();
        record(results_dir, experiment, &all)?;
    }
    Ok(sub)
}

/// Run sbatch; the job id it prints (`1234`, or `1234;cluster` on federated setups).
fn sbatch(args: &[String]) -> Result<String> {
    let out = Command::new("sbatch").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(
                "--executor slurm: `sbatch` is not on PATH; run on a machine with the Slurm client commands, or pass --dry-run to see the scripts",
            )
        } else {
            Error::Failed(format!("cannot run sbatch: {e}"))
        }
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Failed(format!(
            "`sbatch {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            text.trim()
        )));
    }
    Ok(id)
}
