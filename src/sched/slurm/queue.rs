//! Asking Slurm about submitted array tasks, and cancelling them. No accounting database is
//! assumed: `squeue` knows queued and running tasks, `scontrol show job` also finished ones
//! for `MinJobAge` seconds (300 by default) after they end; older ones are forgotten, and
//! the store says how they ended.

use std::collections::BTreeMap;
use std::process::Command;

use crate::error::{Error, Result};

/// What Slurm says about one array task (`1234_5`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, …
    pub state: String,
    /// Why it pends (`Dependency`, `Resources`), where it runs (the node), or how it ended
    /// (`exit 1:0`).
    pub detail: String,
}

impl TaskState {
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        )
    }
}

/// The states of every task of the array jobs `ids`, keyed `<array job>_<index>`.
pub fn query(ids: &[String]) -> Result<BTreeMap<String, TaskState>> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list = ids.join(",");
    // Exit status 1 when every id is unknown to Slurm (purged): nothing to report then.
    if let Some(text) = run("squeue", &["--array", "-h", "-j", &list, "-o", "%i|%T|%R"])? {
        out.extend(parse_squeue(&text));
    }
    for id in ids {
        if let Some(text) = run("scontrol", &["-o", "show", "job", id])? {
            for (task, st) in parse_scontrol(&text) {
                out.entry(task).or_insert(st);
            }
        }
    }
    Ok(out)
}

/// Cancel the array jobs `ids` (every task of each).
pub fn cancel(ids: &[String]) -> Result<()> {
    let args: Vec<&str> = ids.iter().map(String::as_str).collect();
    match run("scancel", &args)? {
        Some(_) => Ok(()),
        None => Err(Error::Failed(format!("scancel {} failed", ids.join(" ")))),
    }
}

/// Output of a Slurm client command; `None` when it exits non-zero.
fn run(cmd: &str, args: &[&str]) -> Result<Option<String>> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(format!(
                "`{cmd}` is not on PATH: Slurm's client commands are needed to ask Slurm about submitted runs"
            ))
        } else {
            Error::Failed(format!("cannot run {cmd}: {e}"))
        }
    })?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// `1234_5|RUNNING|node-a` lines; an unsplit pending array (`1234_[0-3]`) stands for each
/// of its tasks.
pub fn parse_squeue(text: &str) -> BTreeMap<String, TaskState> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.trim().splitn(3, '|');
        let (Some(id), Some(state), Some(reason)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let detail = reason.trim_start_matches('(').trim_end_matches(')');
        let Some((job, tasks)) = id.split_once('_') else {
            continue;
        };
        for t in expand_tasks(tasks) {
            out.insert(
                format!("{job}_{t}"),
                TaskState {
                    state: state.to_string(),
                    detail: detail.to_string(),
                },
            );
        }
    }
    out
}

/// `scontrol -o show job` lines (`Key=Value` words) of array tasks.
pub fn parse_scontrol(text: &str) -> BTreeMap<String, TaskState> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        };
        let (Some(job), Some(tasks), Some(state)) =
            (field("ArrayJobId"), field("ArrayTaskId"), field("JobState"))
        else {
            continue;
        };
        let reason = field("Reason").filter(|r| *r != "None");
        let detail = match state {
            "PENDING" => reason.unwrap_or_default().to_string(),
            "RUNNING" => field("NodeList").unwrap_or_default().to_string(),
            _ => {
                let code = field("ExitCode").map(|c| format!("exit {c}"));
                [code, reason.map(str::to_string)]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        for t in expand_tasks(tasks) {
            out.insert(
                format!("{job}_{t}"),
                TaskState {
                    state: state.to_string(),
                    detail: detail.clone(),
                },
            );
        }
    }
    out
}

/// `5`, `[0-3]`, `0-3,7`, `[0-9%2]` → the task indices.
fn expand_tasks(spec: &str) -> Vec<u32> {
    let spec = spec.trim_start_matches('[').trim_end_matches(']');
    let spec = spec.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_of_pending_running_and_unsplit_tasks() {
        // As printed by Slurm 22.05 (`squeue --array -h -j 1,5 -o '%i|%T|%R'`).
        let s =
            parse_squeue("1_0|RUNNING|vm\n1_2|PENDING|(Resources)\n5_[0-2]|PENDING|(Dependency)\n");
        assert_eq!(s.len(), 5);
        assert_eq!(s["1_0"].detail, "vm");
        assert_eq!(s["1_2"].detail, "Resources");
        assert_eq!(s["5_2"].state, "PENDING");
        assert!(s["5_1"].is_active());
    }

    #[test]
    fn scontrol_lines_of_finished_tasks() {
        let text = "JobId=4 JobName=w ArrayJobId=1 ArrayTaskId=1 JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 RunTime=00:00:01\n\
                    JobId=7 ArrayJobId=5 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0\n\
                    JobId=9 ArrayJobId=8 ArrayTaskId=0-2 JobState=PENDING Reason=Dependency ExitCode=0:0\n\
                    JobId=6 JobState=CANCELLED Reason=None ExitCode=0:15\n";
        let s = parse_scontrol(text);
        assert_eq!(s["1_1"].state, "COMPLETED");
        assert_eq!(s["5_1"].detail, "exit 3:0, NonZeroExitCode");
        assert_eq!(s["1_1"].detail, "exit 0:0");
        assert!(!s["5_1"].is_active());
        assert_eq!(s["8_2"].detail, "Dependency");
        // Not an array task: not ours to report.
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn task_ranges() {
        assert_eq!(expand_tasks("[0-3]"), [0, 1, 2, 3]);
        assert_eq!(expand_tasks("0-1,7"), [0, 1, 7]);
        assert_eq!(expand_tasks("[0-9%2]").len(), 10);
        assert_eq!(expand_tasks("4"), [4]);
    }
}
