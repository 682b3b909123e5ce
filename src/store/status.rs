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

/// The field of `status.json` that holds its own checksum.
const SEAL: &str = "sha256";

fn seal_of(fields: &serde_json::Value) -> Result<String, String> {
    serde_json::to_vec(fields)
        .map(|bytes| crate::util::hash::sha256_hex(&bytes))
        .map_err(|e| e.to_string())
}

impl Status {
    /// The text of `status.json`: pretty JSON with the checksum as its last field.
    pub fn to_sealed_json(&self) -> Result<String, String> {
        let mut fields = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let seal = seal_of(&fields)?;
        let serde_json::Value::Object(map) = &mut fields else {
            return Err("a status is not a JSON object".into());
        };
        map.insert(SEAL.into(), serde_json::Value::String(seal));
        let mut text = serde_json::to_string_pretty(&fields).map_err(|e| e.to_string())?;
        text.push('\n');
        Ok(text)
    }

    /// Parses `status.json` and checks its checksum where it has one; the error says what
    /// is wrong, the caller adds the path.
    pub fn from_sealed_json(text: &str) -> Result<Status, String> {
        let mut fields: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        if let serde_json::Value::Object(map) = &mut fields {
            if let Some(recorded) = map.remove(SEAL) {
                let got = seal_of(&fields)?;
                if recorded.as_str() != Some(got.as_str()) {
                    return Err(format!(
                        "fails its own checksum (sha256 {}…, recorded {}): the file was changed after it was written",
                        &got[..12],
                        recorded
                    ));
                }
            }
        }
        serde_json::from_value(fields).map_err(|e| format!("malformed status: {e}"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            state: State::Done,
            run_id: "abc".into(),
            label: "decompose mtl".into(),
            started_at: Some(1.0e9 + 0.123_456_789),
            finished_at: Some(1.0e9 + 7.5),
            wall_time_s: Some(7.376_543_211),
            epochs_done: 4,
            epochs_total: 4,
            error: None,
            pid: Some(42),
            device: Some("cpu".into()),
            threads: Some(2),
            code_version: "9".into(),
            provenance: None,
            artefacts: Default::default(),
            writing: false,
        }
    }

    #[test]
    fn the_seal_round_trips_and_catches_a_flip_that_still_parses() {
        let text = status().to_sealed_json().unwrap();
        assert!(text.trim_end().ends_with('}'));
        let back = Status::from_sealed_json(&text).unwrap();
        assert_eq!(back.to_sealed_json().unwrap(), text);
        let flipped = text.replace("\"epochs_done\": 4", "\"epochs_done\": 5");
        assert_ne!(flipped, text);
        let err = Status::from_sealed_json(&flipped).unwrap_err();
        assert!(err.contains("fails its own checksum"), "{err}");
        // Whitespace does not matter; the values do.
        let reflowed = text.replace("\n  ", "\n    ");
        assert!(Status::from_sealed_json(&reflowed).is_ok());
    }

    #[test]
    fn a_status_written_before_the_seal_is_read_as_it_is() {
        let text = serde_json::to_string_pretty(&status()).unwrap();
        assert_eq!(Status::from_sealed_json(&text).unwrap().epochs_done, 4);
        let err = Status::from_sealed_json("{\"state\": \"do").unwrap_err();
        assert!(err.starts_with("malformed JSON"), "{err}");
    }
}
