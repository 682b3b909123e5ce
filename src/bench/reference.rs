//! The PyTorch side of the benchmark: runs `benches/reference/torch_train.py` with the same
//! workload description, thread count and timing rules, and reads its JSON answer. The
//! harness never needs Python; when the interpreter or torch is missing, the benchmark
//! prints our numbers and says why the reference is absent.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::ops::{OpSpec, OpTimes};
use super::workload::Workload;
use super::{OpResult, StepStats, TrainBenchOptions};

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

/// PyTorch's instruction-set cap: the user's `ATEN_CPU_CAPABILITY` if set, else the one
/// matching ours (`HARNESS_SIMD`), so both sides run the same vector width.
fn aten_capability() -> String {
    std::env::var("ATEN_CPU_CAPABILITY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| crate::util::cpu::simd().aten_capability().to_string())
}

impl Answer {
    /// `2.15.0 (AVX2)`: the version and the instruction set PyTorch ran with.
    pub fn described_version(&self) -> String {
        match &self.torch_capability {
            Some(c) => format!("{} ({c})", self.torch_version),
            None => self.torch_version.clone(),
        }
    }
}

/// PyTorch's convolutions run in oneDNN and its matrix products may run in MKL, which
/// ignore `ATEN_CPU_CAPABILITY` and have caps of their own: set them too when ours is below
/// what the CPU has (a cap the user set wins).
fn onednn_caps() -> Vec<(&'static str, &'static str)> {
    use crate::util::cpu::{detected, simd, Simd};
    let (onednn, mkl) = match simd() {
        level if level == detected() => return Vec::new(),
        Simd::Avx2 => ("AVX2", "AVX2"),
        _ => ("SSE41", "SSE4_2"),
    };
    [
        ("ONEDNN_MAX_CPU_ISA", onednn),
        ("MKL_ENABLE_INSTRUCTIONS", mkl),
    ]
    .into_iter()
    .filter(|(k, _)| std::env::var_os(k).is_none())
    .collect()
}

/// The script's answer for one workload.
#[derive(Debug, Deserialize)]
pub struct Answer {
    pub torch_version: String,
    /// PyTorch's vector instruction set in use (`torch.backends.cpu.get_cpu_capability()`).
    #[serde(default)]
    pub torch_capability: Option<String>,
    /// The training step; for a LoRKD workload, in the reference code's form (per-sample
    /// weights, one grouped convolution with groups = batch).
    pub step: Option<StepStats>,
    /// A LoRKD workload's step with one convolution per present task instead.
    #[serde(default)]
    pub step_task_grouped: Option<StepStats>,
    pub ops: BTreeMap<String, OpTimes>,
}

impl Answer {
    /// Put PyTorch's time of every operation it timed next to ours.
    pub fn attach_op_times(&self, ops: &mut [OpResult]) {
        for r in ops {
            if let Some(t) = self.ops.get(&r.spec.key) {
                r.torch = Some(*t);
            }
        }
    }
}

/// Run the reference for one workload (or none: operations only). `Err` carries a
/// one-line reason for the report.
pub fn run(
    o: &TrainBenchOptions,
    workload: Option<&Workload>,
    ops: &[OpSpec],
) -> Result<Answer, String> {
    if !o.script.is_file() {
        return Err(format!("reference script {} not found", o.script.display()));
    }
    let request = Request {
        threads: o.threads,
        warmup: o.warmup,
        min_steps: o.min_steps,
        min_secs: o.min_secs,
        op_min_secs: o.op_min_secs,
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
    let out = Command::new(&o.python)
        .arg(&o.script)
        .arg(&path)
        .env("OMP_NUM_THREADS", o.threads.to_string())
        .env("MKL_NUM_THREADS", o.threads.to_string())
        .env("ATEN_CPU_CAPABILITY", aten_capability())
        .envs(onednn_caps())
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.map_err(|e| format!("cannot start `{}`: {e}", o.python))?;
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
