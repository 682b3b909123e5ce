//! The PyTorch side of the benchmark: runs `benches/reference/torch_train.py` with the same
//! workload description, thread count and timing rules, and reads its JSON answer. The
//! harness never needs Python; when the interpreter or torch is missing, the benchmark
//! prints our numbers and says why the reference is absent.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::ops::{OpSpec, OpTimes};
use super::workload::Workload;
use super::StepStats;

/// What the script is asked to do (a JSON file whose path is the script's argument).
#[derive(Serialize)]
struct Request<'a> {
    threads: usize,
    warmup: usize,
    min_steps: usize,
    min_secs: f64,
    op_min_secs: f64,
    lr: f64,
    workload: Option<&'a Workload>,
    ops: &'a [OpSpec],
}

/// The script's answer for one workload.
#[derive(Debug, Deserialize)]
pub struct Answer {
    pub torch_version: String,
    pub step: Option<StepStats>,
    pub ops: BTreeMap<String, OpTimes>,
}

pub struct Reference<'a> {
    pub python: &'a str,
    pub script: &'a Path,
}

impl Reference<'_> {
    /// Run the reference for one workload (or none: operations only). `Err` carries a
    /// one-line reason for the report.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        threads: usize,
        warmup: usize,
        min_steps: usize,
        min_secs: f64,
        op_min_secs: f64,
        workload: Option<&Workload>,
        ops: &[OpSpec],
    ) -> Result<Answer, String> {
        if !self.script.is_file() {
            return Err(format!(
                "reference script {} not found",
                self.script.display()
            ));
        }
        let request = Request {
            threads,
            warmup,
            min_steps,
            min_secs,
            op_min_secs,
            lr: super::train_step::LR,
            workload,
            ops,
        };
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        // The request goes through a file, not a pipe: a script that dies before reading
        // its input must not take the harness down with a broken pipe.
        let path =
            std::env::temp_dir().join(format!("kdbench-bench-request-{}.json", std::process::id()));
        std::fs::write(&path, &body).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let out = Command::new(self.python)
            .arg(self.script)
            .arg(&path)
            .env("OMP_NUM_THREADS", threads.to_string())
            .env("MKL_NUM_THREADS", threads.to_string())
            .stdin(Stdio::null())
            .output();
        let _ = std::fs::remove_file(&path);
        let out = out.map_err(|e| format!("cannot start `{}`: {e}", self.python))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("reference script failed ({}): {last}", out.status));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("unreadable answer from the reference script: {e}"))
    }
}
