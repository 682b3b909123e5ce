//! `status.json`: the life cycle of a run (pending → running → done | failed | diverged; or
//! skipped, when a run it depends on did not succeed),
//! with the error, timings and where it ran. A `running` status whose process is gone means
//! the run was interrupted; the scheduler resumes it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Running,
    Done,
    Failed,
    Diverged,
    /// Not started because a run it depends on failed, diverged or was skipped.
    Skipped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Diverged => "diverged",
            State::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    pub run_id: String,
    pub label: String,
    /// Unix seconds.
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub wall_time_s: Option<f64>,
    /// Epochs whose results and checkpoint are on disk.
    pub epochs_done: u32,
    pub epochs_total: u32,
    pub error: Option<String>,
    /// Process that owns a `running` run.
    pub pid: Option<u32>,
    pub device: Option<String>,
    pub threads: Option<u32>,
    pub code_version: String,
    /// The build and the machine that ran it; absent in runs recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::util::provenance::Provenance>,
    /// Size and sha256 of each artefact as last written (`super::artefacts`); absent in runs
    /// recorded before checksums existed, which are trusted as they are.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub artefacts: std::collections::BTreeMap<String, Artefact>,
    /// Set while an epoch's files are being replaced: each is then (renames are atomic) the
    /// complete file of the epoch before or of this one, and only the latter has no
    /// checksum here yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writing: bool,
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whether a process with this pid is alive (Linux: `/proc/<pid>` exists). Used to tell an
/// interrupted run from one that another harness process is still executing.
pub fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Size and sha256 of one file of a run as written (`super::artefacts` computes and checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artefact {
    pub bytes: u64,
    pub sha256: String,
}
