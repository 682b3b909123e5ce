//! The folder of one run, `results/<run_id>/`, and the rules for reading and writing it.

use std::path::{Path, PathBuf};

use super::claim::process_alive;
use super::status::{pid_alive, State, Status};
use crate::error::{Error, Result};
use crate::spec::run::RunSpec;
use crate::util::fs::{read_json, temporary_writer, write_atomic, write_json_atomic, TMP_SUFFIX};

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(results_dir: &Path, run_id: &str) -> Self {
        Self {
            path: results_dir.join(run_id),
        }
    }

    pub fn spec_path(&self) -> PathBuf {
        self.path.join("spec.json")
    }
    pub fn status_path(&self) -> PathBuf {
        self.path.join("status.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.parquet")
    }
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }
    /// Per-step task weights of gradient-balancing methods.
    pub fn task_weights_path(&self) -> PathBuf {
        self.path.join("task_weights.parquet")
    }
    /// Task-similarity matrices of analysis runs.
    pub fn cka_path(&self) -> PathBuf {
        self.path.join("cka.parquet")
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join("log.txt")
    }

    /// Write `spec.json` (before anything else of the run).
    pub fn write_spec(&self, spec: &RunSpec) -> Result<()> {
        write_json_atomic(&self.spec_path(), spec)
    }

    pub fn read_spec(&self) -> Result<RunSpec> {
        read_json(&self.spec_path())
    }

    /// The experiment named in `spec.json` by stores written before run ids left the
    /// experiment out (and manifests said which runs an experiment has).
    pub fn legacy_experiment(&self) -> Option<String> {
        let v: serde_json::Value = read_json(&self.spec_path()).ok()?;
        v.get("experiment")?.as_str().map(str::to_owned)
    }

    pub fn read_status(&self) -> Result<Option<Status>> {
        let p = self.status_path();
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        Status::from_sealed_json(&text)
            .map(Some)
            .map_err(|e| Error::input(format!("{}: {e}", p.display())))
    }

    pub fn write_status(&self, status: &Status) -> Result<()> {
        let p = self.status_path();
        let text = status
            .to_sealed_json()
            .map_err(|e| Error::Failed(format!("cannot serialise {}: {e}", p.display())))?;
        write_atomic(&p, text.as_bytes())
    }

    /// The state the scheduler should act on: `running` with a dead owner counts as
    /// interrupted (reported as `pending`), so it is resumed.
    pub fn effective_state(&self) -> Result<Option<State>> {
        Ok(self.read_status()?.map(|s| match (s.state, s.pid) {
            (State::Running, Some(pid)) if !pid_alive(pid) || pid == std::process::id() => {
                State::Pending
            }
            (st, _) => st,
        }))
    }

    /// Remove temporary files a killed process left behind (atomic writes that never got
    /// renamed). Called by the holder of the run's claim before it (re)starts the run; a
    /// temporary file whose writer (the pid in its name) still runs on this host is left
    /// alone, whoever it is (a submission writing the run's spec, say).
    pub fn clean_temporaries(&self) -> Result<()> {
        let Ok(rd) = std::fs::read_dir(&self.path) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let writer = temporary_writer(&name);
            if writer.is_some_and(|pid| pid != std::process::id() && process_alive(pid, None)) {
                continue;
            }
            if name.ends_with(TMP_SUFFIX) {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
        Ok(())
    }

    /// Append a line to the run's log (read-modify-rename so the log is never torn).
    pub fn log(&self, line: &str) -> Result<()> {
        let p = self.log_path();
        let mut text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&p, e)),
        };
        text.push_str(line);
        text.push('\n');
        write_atomic(&p, text.as_bytes())
    }
}
