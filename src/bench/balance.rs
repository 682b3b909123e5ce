//! `harness bench balance`: the training step of MTL (equal weighting: one backward pass)
//! against MoCo-MTL and Aligned-MTL (one backward pass per task, then the combination of
//! the per-task gradients of the shared parameters) on a mixed batch, with the ShuffleNetV2
//! student (1.0× by default, 32 px, stride-1 stem) and a head per task. It prints the
//! median step times and their ratio to MTL's (expected: about the number of tasks, since
//! each task needs its own backward pass), and the heap high-water mark of one step above
//! what lives between steps, also in copies of the shared parameters.
//! The three run interleaved, round by round, so machine noise hits them alike.

use std::fmt::Write as _;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::Serialize;

use super::{median, timed_repeats};
use crate::data::batch::{task_groups, Batch, SplitName};
use crate::error::{Error, Result};
use crate::method::weighting::StepContext;
use crate::method::{self, mtl, BuildContext, Method};
use crate::model::init::SeededInit;
use crate::model::layers::conv_bn::keeping_saved_outputs_if;
use crate::model::nets::shufflenet::REFERENCE_1X;
use crate::spec::run::{Arch, ModelConfig, OptimConfig, OptimizerKind, Schedule, Stem};
use crate::train::optim::{params_of, Optimizer};
use crate::util::alloc;
use crate::util::rng::SplitMix64;

#[derive(Debug, Clone, Serialize)]
pub struct BalanceBenchOptions {
    pub tasks: usize,
    pub batch: usize,
    pub classes: usize,
    pub threads: usize,
    pub min_secs: f64,
    pub rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BalanceResult {
    pub weighting: String,
    pub median_step_s: f64,
    /// Heap high-water mark of one step above the live heap before it.
    pub peak_step_bytes: Option<usize>,
    /// Heap the weighting keeps between steps (MoCo's running estimate).
    pub state_bytes: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BalanceReport {
    pub shared_params: usize,
    pub results: Vec<BalanceResult>,
    /// MTL's step peak with its graph's saved outputs kept across backward passes, as a
    /// graph differentiated once per task must (MTL's own step frees them as its backward
    /// pass proceeds): the base the "copies" columns count the weightings' extra memory from.
    pub kept_graph_peak_bytes: Option<usize>,
}

/// (row label, method key): each method's own weighting, with its default settings.
const KINDS: [(&str, &str); 3] = [
    ("equal (MTL)", "mtl"),
    ("MoCo-MTL", "mocomtl"),
    ("Aligned-MTL", "alignedmtl"),
];

/// A mixed batch: sample i of task (i·7 + i/T) mod T, random pixels and labels.
fn mixed_batch(o: &BalanceBenchOptions, dev: &Device) -> Result<Batch> {
    let mut rng = SplitMix64::new(11);
    let items: Vec<(usize, usize)> = (0..o.batch)
        .map(|i| ((i * 7 + i / o.tasks) % o.tasks, i))
        .collect();
    let x = Tensor::randn(0f32, 1.0, (o.batch, 3, 32, 32), dev)?;
    let labels: Vec<u32> = (0..o.batch)
        .map(|_| rng.below(o.classes as u64) as u32)
        .collect();
    let groups = task_groups(&items, o.tasks, |_, i| labels[i], dev)?;
    Ok(Batch {
        x,
        groups,
        size: o.batch,
        items,
        split: SplitName::Train,
    })
}

pub fn run(o: &BalanceBenchOptions, mut progress: impl FnMut(&str)) -> Result<BalanceReport> {
    let dev = Device::Cpu;
    let (w, d) = REFERENCE_1X;
    let model = ModelConfig::conv(Arch::ShuffleNetV2, &w, &d, Stem::Cifar);
    let heads: Vec<(String, usize)> = (0..o.tasks).map(|t| (format!("t{t}"), o.classes)).collect();
    let options = Default::default();
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 0, &dev);
    let net = mtl::MTL.build(
        &BuildContext {
            model: &model,
            tasks: &heads,
            options: &options,
            teacher: None,
            seed: 0,
            frozen_backbone: false,
        },
        vb,
    )?;
    let params = params_of(&map);
    let all: Vec<_> = params.iter().map(|p| p.var.clone()).collect();
    let shared: Vec<_> = params
        .iter()
        .filter(|p| p.name.starts_with("backbone."))
        .map(|p| p.var.clone())
        .collect();
    let shared_params = shared.iter().map(|v| v.elem_count()).sum();
    let cfg = OptimConfig {
        name: OptimizerKind::Sgd,
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
        schedule: Schedule::Constant,
        warmup_epochs: 0,
    };
    let mut optim = Optimizer::new(&cfg, params);
    let batch = mixed_batch(o, &dev)?;
    let mut weightings = KINDS
        .iter()
        .map(|(_, key)| {
            let m = method::lookup(key)
                .ok_or_else(|| Error::Failed(format!("method `{key}` is not built in")))?;
            Ok(m.weighting(&m.default_options(), o.tasks))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut step_no = 0u64;
    // `keep`: build the graph keeping saved outputs even for a weighting that does not
    // need it (the base of the copies columns).
    let mut step = |i: usize, keep: bool| -> Result<()> {
        step_no += 1;
        // As in training (`train::fit`).
        let repeated = keep || weightings[i].differentiates_each_loss();
        let terms = keeping_saved_outputs_if(repeated, || net.task_losses(&batch, true))?;
        let shares = terms.shares(batch.size);
        let ctx = StepContext {
            tasks: &terms.tasks,
            shares: &shares,
            num_tasks: o.tasks,
            shared: &shared,
            params: &all,
            step: step_no,
            epoch: 1,
        };
        let (grads, _) = weightings[i].backward(&terms.losses, &ctx)?;
        optim.step(&grads, 0.01)?;
        Ok(())
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut peaks: Vec<Option<usize>> = vec![None; KINDS.len()];
    let mut state: Vec<Option<usize>> = vec![None; KINDS.len()];
    // The optimiser's momentum buffers are created by the first step of any weighting.
    step(0, false)?;
    let base = alloc::reset_peak();
    step(0, true)?;
    let kept_graph_peak_bytes = alloc::counting().then(|| alloc::peak_bytes().saturating_sub(base));
    for round in 0..o.rounds {
        for (i, (name, _)) in KINDS.iter().enumerate() {
            progress(&format!(
                "balance round {}/{}: {name}…",
                round + 1,
                o.rounds
            ));
            let before = alloc::live_bytes();
            step(i, false)?;
            if round == 0 {
                state[i] = alloc::counting().then(|| alloc::live_bytes().saturating_sub(before));
                let base = alloc::reset_peak();
                step(i, false)?;
                peaks[i] = alloc::counting().then(|| alloc::peak_bytes().saturating_sub(base));
            }
            times[i].extend(timed_repeats(1, o.min_secs, || step(i, false))?);
        }
    }
    Ok(BalanceReport {
        shared_params,
        results: KINDS
            .iter()
            .zip(times)
            .zip(peaks)
            .zip(state)
            .map(|((((name, _), t), p), st)| BalanceResult {
                weighting: name.to_string(),
                median_step_s: median(t).unwrap_or(f64::NAN),
                peak_step_bytes: p,
                state_bytes: st,
            })
            .collect(),
        kept_graph_peak_bytes,
    })
}

pub fn render_text(o: &BalanceBenchOptions, r: &BalanceReport) -> String {
    let mut s = String::new();
    let model_bytes = 4.0 * r.shared_params as f64;
    let _ = writeln!(
        s,
        "Training step with per-task gradients, ShuffleNetV2 1.0× (32 px), batch {} over {} tasks, {} threads; shared parameters {} ({:.1} MiB):",
        o.batch,
        o.tasks,
        o.threads,
        r.shared_params,
        model_bytes / (1 << 20) as f64
    );
    let _ = writeln!(
        s,
        "{:<14} {:>10} {:>9} {:>14} {:>9} {:>13} {:>13}",
        "weighting", "step ms", "× MTL", "peak step MiB", "× MTL", "step copies", "state copies"
    );
    let base = &r.results[0];
    for res in &r.results {
        let peak = res.peak_step_bytes.map(|b| b as f64);
        let base_peak = base.peak_step_bytes.map(|b| b as f64);
        let kept_peak = r.kept_graph_peak_bytes.map(|b| b as f64);
        let fmt =
            |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            s,
            "{:<14} {:>10.1} {:>8.2}× {:>14} {:>9} {:>13} {:>13}",
            res.weighting,
            1e3 * res.median_step_s,
            res.median_step_s / base.median_step_s,
            fmt(peak, &|p| format!("{:.1}", p / (1 << 20) as f64)),
            fmt(peak.zip(base_peak).map(|(p, b)| p / b), &|x| format!(
                "{x:.2}×"
            )),
            fmt(
                // A peak a few bytes under MTL's is no extra copy (and not "-0.0").
                peak.zip(kept_peak)
                    .map(|(p, b)| ((p - b) / model_bytes).max(0.0)),
                &|x| format!("{x:.1}")
            ),
            fmt(
                res.state_bytes.map(|b| b as f64 / model_bytes),
                &|x| format!("{x:.1}")
            ),
        );
    }
    let _ = writeln!(
        s,
        "MoCo-MTL and Aligned-MTL run one backward pass per task present in the batch. Copies are in units of the shared parameters' size: step = high-water mark within a step beyond MTL's step with its graph's saved outputs kept ({}; MTL's own step frees them during its backward pass, a graph differentiated per task must keep them), state = heap the weighting keeps between steps (MoCo's running estimate Y).",
        r.kept_graph_peak_bytes
            .map(|b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "n/a".into())
    );
    s
}
