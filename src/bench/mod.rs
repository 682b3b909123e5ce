//! `harness bench`: speed and memory benchmarks that print ratios against PyTorch measured
//! in the same run on the same machine, so targets ("≥ 0.8× PyTorch") do not depend on
//! numbers remembered from another machine or day. Timed unit tests would be flaky on shared
//! machines; these are run on demand.

pub mod balance;
pub mod eks;
pub mod ops;
pub mod reference;
pub mod train_step;
pub mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use ops::OpTimes;

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
    /// A LoRKD network's EKS layers: which form each took (ours only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks_forms: Option<String>,
}

/// The middle value (upper middle for an even count), `None` for no values.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// Seconds of each call of `f`, called until there are at least `min_reps` calls and
/// `min_secs` have passed.
pub(crate) fn timed_repeats<E>(
    min_reps: usize,
    min_secs: f64,
    mut f: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<Vec<f64>, E> {
    let started = std::time::Instant::now();
    let mut times = Vec::new();
    while times.len() < min_reps.max(1) || started.elapsed().as_secs_f64() < min_secs {
        let t = std::time::Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(times)
}

impl StepStats {
    pub fn from_times(
        batch: usize,
        times: &[f64],
        peak_step_bytes: Option<usize>,
        resident_bytes: Option<usize>,
    ) -> Self {
        let median = median(times.to_vec()).expect("at least one timed step");
        Self {
            images_per_s: batch as f64 / median,
            step_s_median: median,
            step_s_mean: times.iter().sum::<f64>() / times.len() as f64,
            steps: times.len(),
            peak_step_bytes,
            resident_bytes,
            eks_forms: None,
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
    pub rounds: usize,
    pub ops: bool,
    pub python: String,
    pub script: PathBuf,
    pub reference: bool,
}

/// One measurement of both sides, taken back to back.
#[derive(Debug, Serialize)]
pub struct Round {
    pub ours: StepStats,
    /// PyTorch's step (a LoRKD workload's in the reference code's form).
    pub torch: Option<StepStats>,
    /// A LoRKD workload's PyTorch step in the task-grouped form.
    pub torch_task_grouped: Option<StepStats>,
}

/// One operation timed on both sides.
#[derive(Debug, Serialize)]
pub struct OpResult {
    pub spec: ops::OpSpec,
    pub ours: OpTimes,
    pub torch: Option<OpTimes>,
}

/// One workload's results.
#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    pub workload: workload::Workload,
    pub rounds: Vec<Round>,
    pub ops: Vec<OpResult>,
    pub reference_error: Option<String>,
}

/// Everything `harness bench train` measured.
#[derive(Debug, Serialize)]
pub struct TrainBenchReport {
    pub threads: usize,
    /// CPU model and the instruction set our kernels used (`HARNESS_SIMD` caps it).
    pub machine: String,
    pub torch_version: Option<String>,
    pub workloads: Vec<WorkloadResult>,
    /// Depthwise convolutions (no workload uses them yet).
    pub depthwise_ops: Vec<OpResult>,
    pub depthwise_reference_error: Option<String>,
}

impl WorkloadResult {
    /// Median images per second over rounds: (ours, PyTorch).
    pub fn images_per_s(&self) -> (f64, Option<f64>) {
        let ours = median(self.rounds.iter().map(|r| r.ours.images_per_s).collect()).unwrap_or(0.0);
        let torch = median(
            self.rounds
                .iter()
                .filter_map(|r| r.torch.as_ref())
                .map(|t| t.images_per_s)
                .collect(),
        );
        (ours, torch)
    }

    /// ours/PyTorch speed of each round (measured back to back, so drifts of a shared
    /// machine cancel as far as possible).
    pub fn round_ratios(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|r| {
                r.torch
                    .as_ref()
                    .map(|t| r.ours.images_per_s / t.images_per_s)
            })
            .collect()
    }
}

fn time_ops(
    specs: &[ops::OpSpec],
    o: &TrainBenchOptions,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<OpResult>> {
    specs
        .iter()
        .map(|spec| {
            progress(&format!("op {} (harness)…", spec.key));
            Ok(OpResult {
                spec: spec.clone(),
                ours: ops::measure(spec, o.op_min_secs)?,
                torch: None,
            })
        })
        .collect()
}

/// Run the training benchmark; `progress` receives one line per measurement.
pub fn train(o: &TrainBenchOptions, mut progress: impl FnMut(&str)) -> Result<TrainBenchReport> {
    let known: Vec<workload::Workload> = workload::all()
        .into_iter()
        .chain(workload::on_request())
        .collect();
    let find = |k: &str| {
        known.iter().find(|w| w.key == k).cloned().ok_or_else(|| {
            Error::input(format!(
                "unknown workload `{k}` (known: {})",
                workload::keys().join(", ")
            ))
        })
    };
    let mut chosen: Vec<workload::Workload> = if o.workloads.is_empty() {
        workload::all()
    } else {
        o.workloads.iter().map(|k| find(k)).collect::<Result<_>>()?
    };
    // A LoRKD workload's plain counterpart runs first, for the experts' cost.
    for i in (0..chosen.len()).rev() {
        if let Some(plain) = chosen[i].lorkd.as_ref().map(|l| l.plain) {
            if !chosen.iter().any(|w| w.key == plain) {
                chosen.insert(i, find(plain)?);
            }
        }
    }
    let mut report = TrainBenchReport {
        threads: o.threads,
        machine: format!(
            "{} · ours {}",
            crate::util::provenance::cpu_model(),
            crate::util::cpu::instruction_set_detail()
        ),
        torch_version: None,
        workloads: Vec::new(),
        depthwise_ops: Vec::new(),
        depthwise_reference_error: None,
    };
    let not_requested = || Some("not requested (--no-reference)".to_string());
    for w in chosen {
        let specs = if o.ops { ops::of(&w) } else { Vec::new() };
        let mut result = WorkloadResult {
            workload: w.clone(),
            rounds: Vec::new(),
            ops: time_ops(&specs, o, &mut progress)?,
            reference_error: None,
        };
        for round in 0..o.rounds {
            progress(&format!(
                "{}: training steps, round {}/{} (harness)…",
                w.key,
                round + 1,
                o.rounds
            ));
            let ours = train_step::measure(&w, o.warmup, o.min_steps, o.min_secs)?;
            let (mut torch, mut torch_task_grouped) = (None, None);
            if !o.reference {
                result.reference_error = not_requested();
            } else if result.reference_error.is_none() {
                progress(&format!(
                    "{}: round {}/{} (PyTorch)…",
                    w.key,
                    round + 1,
                    o.rounds
                ));
                // Per-op timings once, with the first round.
                let op_specs = if round == 0 { &specs[..] } else { &[] };
                match reference::run(o, Some(&w), op_specs) {
                    Ok(a) => {
                        a.attach_op_times(&mut result.ops);
                        report.torch_version = Some(a.described_version());
                        torch = a.step;
                        torch_task_grouped = a.step_task_grouped;
                    }
                    Err(e) => result.reference_error = Some(e),
                }
            }
            result.rounds.push(Round {
                ours,
                torch,
                torch_task_grouped,
            });
        }
        report.workloads.push(result);
    }
    if o.ops {
        let specs = ops::depthwise();
        report.depthwise_ops = time_ops(&specs, o, &mut progress)?;
        if o.reference {
            progress("depthwise ops (PyTorch)…");
            match reference::run(o, None, &specs) {
                Ok(a) => {
                    a.attach_op_times(&mut report.depthwise_ops);
                    report.torch_version.get_or_insert(a.described_version());
                }
                Err(e) => report.depthwise_reference_error = Some(e),
            }
        } else {
            report.depthwise_reference_error = not_requested();
        }
    }
    Ok(report)
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

fn render_ops(s: &mut String, title: &str, ops: &[OpResult]) {
    let _ = writeln!(s, "\n{title}, per op, median ms:");
    let _ = writeln!(
        s,
        "{:<26} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
        "op", "ours fwd", "torch fwd", "speed", "ours f+b", "torch f+b", "speed"
    );
    let ms = |v: Option<f64>| {
        v.map(|v| format!("{:.2}", v * 1e3))
            .unwrap_or_else(|| "—".into())
    };
    for r in ops {
        let t = r.torch.as_ref();
        let _ = writeln!(
            s,
            "{:<26} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
            r.spec.key,
            ms(Some(r.ours.forward_s)),
            ms(t.map(|t| t.forward_s)),
            ratio(t.map(|t| t.forward_s), Some(r.ours.forward_s)),
            ms(Some(r.ours.forward_backward_s)),
            ms(t.map(|t| t.forward_backward_s)),
            ratio(
                t.map(|t| t.forward_backward_s),
                Some(r.ours.forward_backward_s)
            ),
        );
    }
}

/// What a LoRKD workload's step costs against its plain student's (step time ratio, the
/// median over rounds), ours and PyTorch's two forms.
fn render_lorkd_cost(
    s: &mut String,
    w: &WorkloadResult,
    l: &workload::LorkdExperts,
    plain: Option<&WorkloadResult>,
) {
    let Some(plain) = plain else {
        return;
    };
    let speed = |r: &WorkloadResult, side: fn(&Round) -> Option<&StepStats>| {
        median(
            r.rounds
                .iter()
                .filter_map(side)
                .map(|t| t.images_per_s)
                .collect(),
        )
    };
    let cost = |side: fn(&Round) -> Option<&StepStats>,
                lorkd_side: fn(&Round) -> Option<&StepStats>| {
        match (speed(plain, side), speed(w, lorkd_side)) {
            (Some(p), Some(e)) if e > 0.0 => format!("{:.2}×", p / e),
            _ => "—".into(),
        }
    };
    if let Some(forms) = w.rounds.first().and_then(|r| r.ours.eks_forms.as_ref()) {
        let _ = writeln!(s, "{}: our EKS layers: {forms}", w.workload.key);
    }
    let _ = writeln!(
        s,
        "{}: LoRKD step / plain step ({} tasks, rank {}, α {}): ours {} · PyTorch, reference form (per-sample weights, groups = batch) {} · PyTorch, task-grouped {}",
        w.workload.key,
        l.tasks,
        l.rank,
        l.alpha,
        cost(|r| Some(&r.ours), |r| Some(&r.ours)),
        cost(|r| r.torch.as_ref(), |r| r.torch.as_ref()),
        cost(|r| r.torch.as_ref(), |r| r.torch_task_grouped.as_ref()),
    );
}

/// The human-readable report: one summary table, then per-op tables.
pub fn render_text(r: &TrainBenchReport) -> String {
    let mut s = String::new();
    let version = r
        .torch_version
        .as_ref()
        .map(|v| format!("PyTorch {v}"))
        .unwrap_or_else(|| "PyTorch unavailable".into());
    let rounds = r.workloads.first().map(|w| w.rounds.len()).unwrap_or(0);
    let _ = writeln!(
        s,
        "training step, f32, CPU, {} threads, {rounds} round(s) per workload; reference: {version}",
        r.threads
    );
    let _ = writeln!(s, "machine: {}", r.machine);
    let _ = writeln!(
        s,
        "{:<16} {:>11} {:>14} {:>7}  {:<18} {:>14} {:>17} {:>7}",
        "workload",
        "ours img/s",
        "PyTorch img/s",
        "speed",
        "rounds",
        "ours peak MiB",
        "PyTorch peak MiB",
        "memory"
    );
    for w in &r.workloads {
        let (ours, torch) = w.images_per_s();
        let ratios = w.round_ratios();
        let speed = median(ratios.clone())
            .map(|v| format!("{v:.2}×"))
            .unwrap_or_else(|| "—".into());
        let per_round = ratios
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" ");
        let first = w.rounds.first();
        let ours_peak = first.and_then(|f| f.ours.peak_step_bytes);
        let torch_peak = first
            .and_then(|f| f.torch.as_ref())
            .and_then(|t| t.peak_step_bytes);
        let _ = writeln!(
            s,
            "{:<16} {:>11.1} {:>14} {:>7}  {:<18} {:>14} {:>17} {:>7}",
            w.workload.key,
            ours,
            torch
                .map(|t| format!("{t:.1}"))
                .unwrap_or_else(|| "—".into()),
            speed,
            if per_round.is_empty() {
                "—".to_string()
            } else {
                per_round
            },
            mib(ours_peak),
            mib(torch_peak),
            ratio(ours_peak.map(|b| b as f64), torch_peak.map(|b| b as f64)),
        );
    }
    let _ = writeln!(
        s,
        "speed = median over rounds of ours/PyTorch images per second, each round measured back to back (higher is better);\n\
         memory = ours/PyTorch heap peak of one step above the weights and optimiser state (lower is better)"
    );
    for w in &r.workloads {
        if let Some(l) = &w.workload.lorkd {
            render_lorkd_cost(
                &mut s,
                w,
                l,
                r.workloads.iter().find(|p| p.workload.key == l.plain),
            );
        }
    }
    for w in &r.workloads {
        if let Some(e) = &w.reference_error {
            let _ = writeln!(s, "{}: no PyTorch reference: {e}", w.workload.key);
        }
    }
    for w in r.workloads.iter().filter(|w| !w.ops.is_empty()) {
        render_ops(
            &mut s,
            &format!("{} ({})", w.workload.key, w.workload.description),
            &w.ops,
        );
    }
    if !r.depthwise_ops.is_empty() {
        render_ops(
            &mut s,
            "depthwise 3×3 convolutions at ShuffleNetV2 1.0× shapes (32 px, batch 64)",
            &r.depthwise_ops,
        );
        if let Some(e) = &r.depthwise_reference_error {
            let _ = writeln!(s, "depthwise ops: no PyTorch reference: {e}");
        }
    }
    s
}
