//! `harness bench`: speed and memory benchmarks that print ratios against PyTorch measured
//! in the same run on the same machine, so targets ("≥ 0.8× PyTorch") do not depend on
//! numbers remembered from another machine or day. Timed unit tests would be flaky on shared
//! machines; these are run on demand.

pub mod ops;
pub mod reference;
pub mod train_step;
pub mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use ops::OpTimes;
use reference::Reference;

/// Timing and memory of repeated training steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepStats {
    pub images_per_s: f64,
    pub step_s_median: f64,
    pub step_s_mean: f64,
    pub steps: usize,
    /// Heap high-water mark of one step above what lives between steps.
    pub peak_step_bytes: Option<usize>,
    /// Bytes live between steps (weights, optimiser state, inputs).
    pub resident_bytes: Option<usize>,
}

impl StepStats {
    pub fn from_times(
        batch: usize,
        times: &[f64],
        peak_step_bytes: Option<usize>,
        resident_bytes: Option<usize>,
    ) -> Self {
        let mut sorted = times.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = sorted[sorted.len() / 2];
        Self {
            images_per_s: batch as f64 / median,
            step_s_median: median,
            step_s_mean: times.iter().sum::<f64>() / times.len() as f64,
            steps: times.len(),
            peak_step_bytes,
            resident_bytes,
        }
    }
}

/// Options of `harness bench train`.
pub struct TrainBenchOptions {
    pub workloads: Vec<String>,
    pub threads: usize,
    pub warmup: usize,
    pub min_steps: usize,
    pub min_secs: f64,
    pub op_min_secs: f64,
    pub ops: bool,
    pub python: String,
    pub script: PathBuf,
    pub reference: bool,
}

/// One workload's results on both sides.
#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    pub workload: workload::Workload,
    pub ours: StepStats,
    pub ops: Vec<(ops::OpSpec, OpTimes)>,
    pub torch: Option<StepStats>,
    pub torch_ops: std::collections::BTreeMap<String, OpTimes>,
    pub torch_version: Option<String>,
    pub reference_error: Option<String>,
}

/// Run the training benchmark; `progress` receives one line per finished measurement.
pub fn train(o: &TrainBenchOptions, mut progress: impl FnMut(&str)) -> Result<Vec<WorkloadResult>> {
    let all = workload::all();
    let chosen: Vec<workload::Workload> = if o.workloads.is_empty() {
        all
    } else {
        o.workloads
            .iter()
            .map(|k| {
                all.iter().find(|w| w.key == k).cloned().ok_or_else(|| {
                    Error::input(format!(
                        "unknown workload `{k}` (known: {})",
                        workload::keys().join(", ")
                    ))
                })
            })
            .collect::<Result<_>>()?
    };
    let reference = Reference {
        python: &o.python,
        script: &o.script,
    };
    let mut out = Vec::new();
    for w in chosen {
        progress(&format!("{}: training steps (harness)…", w.key));
        let ours = train_step::measure(&w, o.warmup, o.min_steps, o.min_secs)?;
        let specs = if o.ops { ops::of(&w) } else { Vec::new() };
        let mut op_times = Vec::new();
        for spec in &specs {
            progress(&format!("{}: {} (harness)…", w.key, spec.key));
            op_times.push((spec.clone(), ops::measure(spec, o.op_min_secs)?));
        }
        let mut result = WorkloadResult {
            workload: w.clone(),
            ours,
            ops: op_times,
            torch: None,
            torch_ops: Default::default(),
            torch_version: None,
            reference_error: None,
        };
        if o.reference {
            progress(&format!("{}: PyTorch reference…", w.key));
            match reference.run(
                o.threads,
                o.warmup,
                o.min_steps,
                o.min_secs,
                o.op_min_secs,
                &w,
                &specs,
            ) {
                Ok(a) => {
                    result.torch = Some(a.step);
                    result.torch_ops = a.ops;
                    result.torch_version = Some(a.torch_version);
                }
                Err(e) => result.reference_error = Some(e),
            }
        } else {
            result.reference_error = Some("not requested (--no-reference)".into());
        }
        out.push(result);
    }
    Ok(out)
}

fn mib(b: Option<usize>) -> String {
    b.map(|b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "—".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// The human-readable report: one summary table, then per-op tables.
pub fn render_text(results: &[WorkloadResult], threads: usize) -> String {
    let mut s = String::new();
    let version = results
        .iter()
        .find_map(|r| r.torch_version.clone())
        .map(|v| format!("PyTorch {v}"))
        .unwrap_or_else(|| "PyTorch unavailable".into());
    let _ = writeln!(
        s,
        "training step, f32, CPU, {threads} threads; reference: {version}"
    );
    let _ = writeln!(
        s,
        "{:<16} {:>11} {:>14} {:>7}   {:>14} {:>17} {:>7}",
        "workload",
        "ours img/s",
        "PyTorch img/s",
        "speed",
        "ours peak MiB",
        "PyTorch peak MiB",
        "memory"
    );
    for r in results {
        let t = r.torch.as_ref();
        let _ = writeln!(
            s,
            "{:<16} {:>11.1} {:>14} {:>7}   {:>14} {:>17} {:>7}",
            r.workload.key,
            r.ours.images_per_s,
            t.map(|t| format!("{:.1}", t.images_per_s))
                .unwrap_or_else(|| "—".into()),
            ratio(Some(r.ours.images_per_s), t.map(|t| t.images_per_s)),
            mib(r.ours.peak_step_bytes),
            mib(t.and_then(|t| t.peak_step_bytes)),
            ratio(
                r.ours.peak_step_bytes.map(|b| b as f64),
                t.and_then(|t| t.peak_step_bytes).map(|b| b as f64)
            ),
        );
    }
    let _ = writeln!(
        s,
        "speed = ours/PyTorch images per second (higher is better); memory = ours/PyTorch heap peak of one step above the weights and optimiser state (lower is better)"
    );
    for r in results {
        if let Some(e) = &r.reference_error {
            let _ = writeln!(s, "{}: no PyTorch reference: {e}", r.workload.key);
        }
    }
    for r in results.iter().filter(|r| !r.ops.is_empty()) {
        let _ = writeln!(
            s,
            "\n{} ({}), per op, median ms:",
            r.workload.key, r.workload.description
        );
        let _ = writeln!(
            s,
            "{:<26} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
            "op", "ours fwd", "torch fwd", "speed", "ours f+b", "torch f+b", "speed"
        );
        for (spec, ours) in &r.ops {
            let t = r.torch_ops.get(&spec.key);
            let ms = |v: Option<f64>| {
                v.map(|v| format!("{:.2}", v * 1e3))
                    .unwrap_or_else(|| "—".into())
            };
            let _ = writeln!(
                s,
                "{:<26} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
                spec.key,
                ms(Some(ours.forward_s)),
                ms(t.map(|t| t.forward_s)),
                ratio(t.map(|t| t.forward_s), Some(ours.forward_s)),
                ms(Some(ours.forward_backward_s)),
                ms(t.map(|t| t.forward_backward_s)),
                ratio(
                    t.map(|t| t.forward_backward_s),
                    Some(ours.forward_backward_s)
                ),
            );
        }
    }
    s
}
