//! `harness regress`: tonight's sweep against a saved baseline, one verdict per (stage,
//! method, foundation model, data sets, task, metric) cell, seeds as the replicates.
//!
//! Two metrics are judged: test accuracy (in percentage points, higher is better) and
//! training speed (images/s of the last epoch, higher is better). Speed is compared as a
//! ratio, in log space: each run's images/s is divided by the reference throughput the same
//! run measured on the same machine (`reference_gflops`, a fixed matrix product timed at
//! the start of every run) where both sides have it, so that a faster or slower machine
//! does not read as a code change; a baseline without the reference falls back to absolute
//! images/s, with a warning.
//!
//! Refusals (exit 2, [`Error::BadInput`]): cells or seeds present on one side only, runs of
//! the sweep that have not run. Failed or diverged runs are regressions (exit 1).
//! Differences of code version, machine, instruction set or thread count are warnings: the
//! verdicts are still made, and the report says what differed.

mod render;
pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

pub use render::{render_json, render_markdown};
use verdict::{judge, judge_between, welch, Difference, Pooled, Verdict};

use crate::error::{Error, Result};
use crate::store::baseline::{RunState, Sweep};
use crate::store::metrics::MetricRow;

use crate::train::speed_reference::METRIC as REFERENCE_METRIC;

/// Task name of the mean-over-tasks accuracy cells.
pub const AVG_TASK: &str = "Avg";

/// How strict the verdicts are.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    /// Two-sided confidence of the interval (0.95).
    pub confidence: f64,
    /// Smallest accuracy change that counts, in percentage points (1.0).
    pub min_accuracy_points: f64,
    /// Smallest speed change that counts, as a fraction (0.25 = 25 %). Two unchanged nightly
    /// sweeps on one 2-core VM differed by up to −9.9 % and +15.7 % per method (README).
    pub min_speed_fraction: f64,
    /// Which quantities are judged (both by default; a machine shared with other work may
    /// want accuracy only).
    pub accuracy: bool,
    pub speed: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            confidence: 0.95,
            min_accuracy_points: 1.0,
            min_speed_fraction: 0.25,
            accuracy: true,
            speed: true,
        }
    }
}

/// What a cell compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Test accuracy, percent.
    Accuracy,
    /// Images per second divided by the run's reference throughput.
    RelativeSpeed,
    /// Images per second (no reference on one side).
    Speed,
}

impl Quantity {
    pub fn label(self) -> &'static str {
        match self {
            Quantity::Accuracy => "test accuracy (%)",
            Quantity::RelativeSpeed => "speed (img/s ÷ reference)",
            Quantity::Speed => "speed (img/s)",
        }
    }
}

/// Where a cell's numbers come from, without the seed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CellKey {
    pub stage: String,
    pub method: String,
    pub foundation: Option<String>,
    pub pretrain: String,
    pub downstream: Option<String>,
    pub task: String,
    pub quantity: Quantity,
}

impl CellKey {
    /// `decompose lorkd ← resnet50 · medmnist · colon`.
    pub fn label(&self) -> String {
        let model = match (&self.foundation, self.method.as_str()) {
            (Some(f), "foundation") => f.clone(),
            (Some(f), m) => format!("{m} ← {f}"),
            (None, m) => m.to_string(),
        };
        let data = match &self.downstream {
            Some(d) if self.pretrain.is_empty() => format!("→ {d}"),
            Some(d) => format!("{} → {d}", self.pretrain),
            None => self.pretrain.clone(),
        };
        format!("{} {model} · {data} · {}", self.stage, self.task)
    }
}

/// One verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub key: CellKey,
    pub verdict: Verdict,
    /// (seed, value) of each side; for speed the ratio's numerator over its denominator.
    pub baseline: Vec<(u64, f64)>,
    pub current: Vec<(u64, f64)>,
    /// Accuracy: points. Speed: ratio current / baseline of the geometric means (and its
    /// interval), 1 = unchanged.
    pub change: f64,
    pub change_low: f64,
    pub change_high: f64,
    pub difference: Difference,
    /// Why a cell failed, or that it has no spread.
    pub note: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub experiment: String,
    pub profile: String,
    pub baseline: PathBuf,
    pub settings: Settings,
    pub data_kinds: Vec<String>,
    /// Regressions first (failed, regressed), then improved, then within noise.
    pub cells: Vec<Cell>,
    pub warnings: Vec<String>,
}

impl Comparison {
    pub fn count(&self, v: Verdict) -> usize {
        self.cells.iter().filter(|c| c.verdict == v).count()
    }

    pub fn regressed(&self) -> bool {
        self.cells.iter().any(|c| c.verdict.is_regression())
    }
}

fn key_of(r: &MetricRow, quantity: Quantity) -> CellKey {
    CellKey {
        stage: r.stage.clone(),
        method: r.method.clone(),
        foundation: r.foundation.clone(),
        pretrain: r.pretrain.clone(),
        downstream: r.downstream.clone(),
        task: r.task.clone(),
        quantity,
    }
}

/// The run a row came from, for matching a speed row with its reference.
fn run_of(r: &MetricRow) -> (String, u64) {
    (r.run_id.clone(), r.seed)
}

/// Per cell, per seed: the value (speed: images/s, and the reference where the run has one).
type Side = BTreeMap<CellKey, BTreeMap<u64, (f64, Option<f64>)>>;

/// A run's images/s, epoch seconds and reference GFLOP/s (each where it logged one).
type RunSpeed = [Option<f64>; 3];

fn side(rows: &[MetricRow]) -> Side {
    let mut out: Side = BTreeMap::new();
    // Per run: images/s, the epoch's seconds and the reference, all of its last epoch.
    let mut runs: BTreeMap<(String, u64), (CellKey, RunSpeed)> = BTreeMap::new();
    for r in rows {
        let slot = match (r.split.as_str(), r.metric.as_str()) {
            ("test", "accuracy") => {
                out.entry(key_of(r, Quantity::Accuracy))
                    .or_default()
                    .insert(r.seed, (100.0 * r.value, None));
                continue;
            }
            ("train", "samples_per_s") => 0,
            ("train", "epoch_time_s") => 1,
            ("train", REFERENCE_METRIC) => 2,
            _ => continue,
        };
        let mut key = key_of(r, Quantity::Speed);
        key.task = "all".into();
        runs.entry(run_of(r)).or_insert_with(|| (key, [None; 3])).1[slot] = Some(r.value);
    }
    // Speed per method and data sets, per seed: all its runs' images over all their seconds
    // (STL's one-task runs together), over their time-weighted reference.
    let mut speed: BTreeMap<CellKey, BTreeMap<u64, [f64; 3]>> = BTreeMap::new();
    let mut lacks_reference: BTreeSet<(CellKey, u64)> = BTreeSet::new();
    for ((_, seed), (key, [per_s, secs, reference])) in runs {
        let Some(per_s) = per_s else { continue };
        let secs = secs.unwrap_or(1.0).max(1e-9);
        if reference.is_none() {
            lacks_reference.insert((key.clone(), seed));
        }
        let acc = speed
            .entry(key)
            .or_default()
            .entry(seed)
            .or_insert([0.0; 3]);
        acc[0] += per_s * secs;
        acc[1] += secs;
        acc[2] += reference.unwrap_or(0.0) * secs;
    }
    for (key, seeds) in speed {
        let values = seeds
            .into_iter()
            .map(|(seed, [images, secs, reference])| {
                let has = !lacks_reference.contains(&(key.clone(), seed));
                (seed, (images / secs, has.then(|| reference / secs)))
            })
            .collect();
        out.insert(key, values);
    }
    // The paper's Avg column: per seed, the mean test accuracy over the tasks of a method
    // (over STL's one-task runs too), where that seed has every task the side has.
    let mut groups: BTreeMap<CellKey, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    let mut tasks: BTreeMap<CellKey, BTreeSet<String>> = BTreeMap::new();
    for (key, seeds) in &out {
        if key.quantity != Quantity::Accuracy {
            continue;
        }
        let avg = CellKey {
            task: AVG_TASK.to_string(),
            ..key.clone()
        };
        tasks
            .entry(avg.clone())
            .or_default()
            .insert(key.task.clone());
        for (seed, (v, _)) in seeds {
            groups
                .entry(avg.clone())
                .or_default()
                .entry(*seed)
                .or_default()
                .push(*v);
        }
    }
    for (avg, seeds) in groups {
        let n = tasks[&avg].len();
        if n < 2 {
            continue;
        }
        let complete = seeds
            .into_iter()
            .filter(|(_, v)| v.len() == n)
            .map(|(s, v)| (s, (v.iter().sum::<f64>() / n as f64, None)));
        out.insert(avg, complete.collect());
    }
    out
}

/// The provenance values of one side, for the warnings.
fn provenance_of(rows: &[MetricRow]) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut m: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        let p = &r.provenance;
        let commit = format!("{} ({})", short(&p.git_commit), p.git_state);
        m.entry("code version")
            .or_default()
            .insert(format!("{} · commit {commit}", r.code_version));
        m.entry("machine")
            .or_default()
            .insert(format!("{} · {}", p.host, p.cpu_model));
        m.entry("instruction set")
            .or_default()
            .insert(p.instruction_set.clone());
        m.entry("threads")
            .or_default()
            .insert(r.threads.to_string());
        m.entry("device").or_default().insert(r.device.clone());
        m.entry("candle/polars")
            .or_default()
            .insert(format!("candle {} · polars {}", p.candle, p.polars));
    }
    m
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn warnings(baseline: &[MetricRow], current: &[MetricRow]) -> Vec<String> {
    let (b, c) = (provenance_of(baseline), provenance_of(current));
    let mut out = Vec::new();
    for (what, bv) in &b {
        let cv = c.get(what).cloned().unwrap_or_default();
        if *bv != cv {
            let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            let why = match *what {
                "instruction set" => " (the last bits of float sums differ between instruction sets: accuracy can move by a sample or two without any code change)",
                "machine" | "threads" => " (speed is compared relative to each run's reference throughput; absolute times are not comparable)",
                _ => "",
            };
            out.push(format!(
                "{what} differs: baseline {}; this sweep {}{why}",
                list(bv),
                list(&cv)
            ));
        }
    }
    out
}

/// Compares `sweep` (tonight) with baseline rows.
pub fn compare(
    baseline_path: PathBuf,
    baseline_rows: &[MetricRow],
    sweep: &Sweep,
    settings: Settings,
) -> Result<Comparison> {
    let not_run: Vec<&str> = sweep
        .runs
        .iter()
        .filter(|(_, s)| matches!(s, RunState::NotRun))
        .map(|(id, _)| id.as_str())
        .collect();
    if !not_run.is_empty() {
        return Err(Error::input(format!(
            "{} of the {} runs of experiment `{}` (profile {}) have not run (first: {}); run the experiment (`harness run FILE` resumes it) before comparing",
            not_run.len(),
            sweep.runs.len(),
            sweep.experiment,
            sweep.profile,
            not_run[..not_run.len().min(5)].join(", ")
        )));
    }
    let current_rows = sweep.rows();
    let judged = |k: &CellKey| match k.quantity {
        Quantity::Accuracy => settings.accuracy,
        _ => settings.speed,
    };
    let mut base = side(baseline_rows);
    let mut cur = side(&current_rows);
    base.retain(|k, _| judged(k));
    cur.retain(|k, _| judged(k));
    let failed: Vec<_> = sweep
        .runs
        .iter()
        .filter_map(|(id, s)| match s {
            RunState::Failed {
                identity,
                state,
                error,
            } => Some((id, identity, state, error)),
            _ => None,
        })
        .collect();
    // A failed run of this sweep loses the cells of its tasks (and its run-level speed cell).
    let failure_of = |key: &CellKey, seed: u64| {
        failed.iter().find(|(_, i, _, _)| {
            i.seed == seed
                && i.stage == key.stage
                && i.method == key.method
                && i.foundation == key.foundation
                && i.pretrain == key.pretrain
                && i.downstream == key.downstream
                && (key.task == "all"
                    || key.task == AVG_TASK
                    || i.tasks.contains(&key.task)
                    || i.downstream.is_some())
        })
    };

    let pooled = pool(&base, &cur);
    let mut missing = Vec::new();
    let mut cells = Vec::new();
    let all_keys: BTreeSet<&CellKey> = base.keys().chain(cur.keys()).collect();
    for key in all_keys {
        let empty = BTreeMap::new();
        let b = base.get(key).unwrap_or(&empty);
        let c = cur.get(key).unwrap_or(&empty);
        let mut failures = Vec::new();
        for seed in b.keys().filter(|s| !c.contains_key(s)) {
            match failure_of(key, *seed) {
                Some((id, _, state, error)) => failures.push(format!(
                    "seed {seed} {} (run {id}{})",
                    state.as_str(),
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                )),
                None => missing.push(format!(
                    "{} seed {seed}: in the baseline, not in this sweep",
                    key.label()
                )),
            }
        }
        for seed in c.keys().filter(|s| !b.contains_key(s)) {
            missing.push(format!(
                "{} seed {seed}: in this sweep, not in the baseline",
                key.label()
            ));
        }
        let seeds: Vec<u64> = b.keys().filter(|s| c.contains_key(s)).copied().collect();
        if !failures.is_empty() {
            cells.push(failed_cell(key, b, c, failures));
            continue;
        }
        if seeds.is_empty() {
            continue;
        }
        let pooled = pooled.get(&pool_kind(key)).copied();
        cells.push(judged_cell(key, b, c, settings, pooled));
    }
    if !missing.is_empty() {
        let n = missing.len();
        missing.truncate(12);
        return Err(Error::input(format!(
            "the baseline and experiment `{}` do not hold the same runs ({n} cell·seeds on one side only):\n  {}{}\nre-run the experiment file the baseline was saved from, or save a new baseline (`harness baseline save NAME --experiment {}`)",
            sweep.experiment,
            missing.join("\n  "),
            if n > 12 { format!("\n  … and {} more", n - 12) } else { String::new() },
            sweep.experiment
        )));
    }
    cells.sort_by(|a, b| (a.verdict, &a.key).cmp(&(b.verdict, &b.key)));
    let mut kinds: BTreeSet<String> = baseline_rows.iter().map(|r| r.data_kind.clone()).collect();
    kinds.extend(current_rows.iter().map(|r| r.data_kind.clone()));
    let mut warn = warnings(baseline_rows, &current_rows);
    if cells
        .iter()
        .any(|c| c.key.quantity == Quantity::Speed && c.verdict != Verdict::Failed)
    {
        warn.push("the baseline (or this sweep) has no per-run reference throughput: speed is compared in absolute images/s, which differs between machines".into());
    }
    Ok(Comparison {
        experiment: sweep.experiment.clone(),
        profile: sweep.profile.clone(),
        baseline: baseline_path,
        settings,
        data_kinds: kinds.into_iter().collect(),
        cells,
        warnings: warn,
    })
}

type Values = BTreeMap<u64, (f64, Option<f64>)>;

fn failed_cell(key: &CellKey, b: &Values, c: &Values, failures: Vec<String>) -> Cell {
    Cell {
        key: key.clone(),
        verdict: Verdict::Failed,
        baseline: b.iter().map(|(s, v)| (*s, v.0)).collect(),
        current: c.iter().map(|(s, v)| (*s, v.0)).collect(),
        change: f64::NAN,
        change_low: f64::NAN,
        change_high: f64::NAN,
        difference: Difference {
            diff: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
            df: f64::NAN,
            spread: verdict::Spread::None,
        },
        note: Some(failures.join("; ")),
    }
}

/// Which cells share a pooled spread: per-task accuracies, Avg accuracies, speeds.
fn pool_kind(key: &CellKey) -> u8 {
    match key.quantity {
        Quantity::Accuracy if key.task == AVG_TASK => 1,
        Quantity::Accuracy => 0,
        _ => 2,
    }
}

/// The values a cell's test runs on: accuracy in points; speed as ln(images/s ÷
/// reference), or ln(images/s) where a side lacks the reference. Also whether relative.
fn transformed(key: &CellKey, b: &Values, c: &Values) -> (Vec<f64>, Vec<f64>, bool) {
    let relative = key.quantity != Quantity::Accuracy
        && b.values()
            .chain(c.values())
            .all(|(_, r)| r.is_some_and(|r| r > 0.0));
    let value = |(v, r): &(f64, Option<f64>)| match key.quantity {
        Quantity::Accuracy => *v,
        _ if relative => (v / r.unwrap_or(1.0)).max(f64::MIN_POSITIVE).ln(),
        _ => v.max(f64::MIN_POSITIVE).ln(),
    };
    (
        b.values().map(value).collect(),
        c.values().map(value).collect(),
        relative,
    )
}

/// The spread of each pool kind over the cells that have one of their own (two or more
/// seeds on a side), for the cells that do not.
fn pool(base: &Side, cur: &Side) -> BTreeMap<u8, Pooled> {
    let mut groups: BTreeMap<u8, Vec<Vec<f64>>> = BTreeMap::new();
    for (key, b) in base {
        let Some(c) = cur.get(key) else { continue };
        let (bx, cx, _) = transformed(key, b, c);
        let g = groups.entry(pool_kind(key)).or_default();
        g.extend([bx, cx].into_iter().filter(|x| x.len() > 1));
    }
    groups
        .into_iter()
        .filter_map(|(k, g)| Pooled::of(g.iter().map(Vec::as_slice)).map(|p| (k, p)))
        .collect()
}

fn judged_cell(
    key: &CellKey,
    b: &Values,
    c: &Values,
    settings: Settings,
    pooled: Option<Pooled>,
) -> Cell {
    let mut key = key.clone();
    let (bx, cx, relative) = transformed(&key, b, c);
    let d = welch(&bx, &cx, settings.confidence, pooled);
    let (verdict, change, low, high) = if key.quantity == Quantity::Accuracy {
        (
            judge(&d, settings.min_accuracy_points),
            d.diff,
            d.low,
            d.high,
        )
    } else {
        key.quantity = if relative {
            Quantity::RelativeSpeed
        } else {
            Quantity::Speed
        };
        // In log space: m slower is ln(1 − m), m faster ln(1 + m).
        let m = settings.min_speed_fraction;
        let verdict = judge_between(&d, (1.0 - m).max(f64::MIN_POSITIVE).ln(), (1.0 + m).ln());
        (verdict, d.diff.exp(), d.low.exp(), d.high.exp())
    };
    let note = match d.spread {
        verdict::Spread::Both => None,
        verdict::Spread::Borrowed => {
            Some("one value on a side: the other side's spread stands for both".into())
        }
        verdict::Spread::Pooled => Some(format!(
            "one seed a side: the spread of the sweep's other cells of this quantity ({:.0} df)",
            d.df
        )),
        verdict::Spread::None => {
            Some("one seed a side: no spread, only the minimum effect decides".into())
        }
    };
    let shown = |v: &Values| -> Vec<(u64, f64)> {
        v.iter()
            .map(|(s, (x, r))| {
                let y = match (key.quantity, r) {
                    (Quantity::RelativeSpeed, Some(r)) => x / r,
                    _ => *x,
                };
                (*s, y)
            })
            .collect()
    };
    Cell {
        baseline: shown(b),
        current: shown(c),
        key,
        verdict,
        change,
        change_low: low,
        change_high: high,
        difference: d,
        note,
    }
}

#[cfg(test)]
mod tests;
