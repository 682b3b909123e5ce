//! Verdicts on hand-made rows: speed relative to the runs' reference, the Avg cell, failed
//! runs, and the refusals.

use super::*;
use crate::store::baseline::RunIdentity;
use crate::store::status::State;

fn row(method: &str, task: &str, seed: u64, split: &str, metric: &str, value: f64) -> MetricRow {
    MetricRow {
        experiment: "nightly".into(),
        run_id: format!("{method}-{task}-{seed}"),
        stage: "decompose".into(),
        method: method.into(),
        pretrain: "medmt".into(),
        downstream: None,
        foundation: None,
        task: task.into(),
        seed,
        epoch: 5,
        split: split.into(),
        metric: metric.into(),
        value,
        profile: "nightly".into(),
        code_version: "0.1.0".into(),
        data_kind: "synthetic".into(),
        device: "cpu".into(),
        threads: 2,
        wall_time_s: 1.0,
        provenance: Default::default(),
    }
}

/// One MTL run per seed on two tasks: accuracies `acc[seed]` (fractions) for both tasks,
/// images/s and reference GFLOP/s as given.
fn mtl(acc: [f64; 3], per_s: [f64; 3], reference: [f64; 3]) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for seed in 0..3u64 {
        let i = seed as usize;
        for task in ["skin", "lung"] {
            rows.push(row("mtl", task, seed, "test", "accuracy", acc[i]));
        }
        let mut r = row("mtl", "skin", seed, "train", "samples_per_s", per_s[i]);
        r.run_id = format!("mtl-{seed}");
        r.task = "all".into();
        let mut t = r.clone();
        t.metric = "epoch_time_s".into();
        t.value = 2.0;
        let mut g = r.clone();
        g.metric = REFERENCE_METRIC.into();
        g.value = reference[i];
        rows.extend([r, t, g]);
    }
    for r in &mut rows {
        if r.split == "test" {
            r.run_id = format!("mtl-{}", r.seed);
        }
    }
    rows
}

fn sweep(rows: Vec<MetricRow>, failed: Option<u64>) -> Sweep {
    let mut runs: Vec<(String, RunState)> = (0..3u64)
        .map(|s| {
            let mine = rows.iter().filter(|r| r.seed == s).cloned().collect();
            (format!("mtl-{s}"), RunState::Done(mine))
        })
        .collect();
    if let Some(seed) = failed {
        runs[seed as usize].1 = RunState::Failed {
            identity: RunIdentity {
                stage: "decompose".into(),
                method: "mtl".into(),
                foundation: None,
                pretrain: "medmt".into(),
                downstream: None,
                tasks: vec!["skin".into(), "lung".into()],
                seed,
            },
            state: State::Diverged,
            error: Some("loss is NaN at epoch 2".into()),
        };
    }
    Sweep {
        experiment: "nightly".into(),
        profile: "nightly".into(),
        runs,
    }
}

fn cell<'a>(c: &'a Comparison, task: &str, q: Quantity) -> &'a Cell {
    c.cells
        .iter()
        .find(|c| c.key.task == task && c.key.quantity == q)
        .unwrap_or_else(|| panic!("no {task} {q:?} cell in {:?}", c.cells))
}

#[test]
fn a_slower_machine_is_not_a_slower_commit_but_a_slower_commit_is() {
    let base = mtl(
        [0.70, 0.72, 0.71],
        [1000.0, 1010.0, 990.0],
        [50.0, 50.5, 49.5],
    );
    // Tonight's machine is half as fast: images/s and the reference both halve.
    let slow_machine = mtl(
        [0.70, 0.72, 0.71],
        [500.0, 505.0, 495.0],
        [25.0, 25.25, 24.75],
    );
    let cmp = compare(
        "b".into(),
        &base,
        &sweep(slow_machine, None),
        Settings::default(),
    )
    .unwrap();
    let speed = cell(&cmp, "all", Quantity::RelativeSpeed);
    assert_eq!(speed.verdict, Verdict::WithinNoise);
    assert!((speed.change - 1.0).abs() < 1e-12, "{speed:?}");
    assert!(!cmp.regressed());
    // The same machine, code 30 % slower.
    let slow_code = mtl(
        [0.70, 0.72, 0.71],
        [700.0, 707.0, 693.0],
        [50.0, 50.5, 49.5],
    );
    let cmp = compare(
        "b".into(),
        &base,
        &sweep(slow_code, None),
        Settings::default(),
    )
    .unwrap();
    let speed = cell(&cmp, "all", Quantity::RelativeSpeed);
    assert_eq!(speed.verdict, Verdict::Regressed);
    assert!((speed.change - 0.7).abs() < 1e-9, "{speed:?}");
    // 20 % slower is certain but under the default 25 %; with --min-speed-change 20 it
    // counts (a drop of exactly m: ratio 0.8 ≤ 1 − 0.2).
    let slower = mtl(
        [0.70, 0.72, 0.71],
        [800.0, 808.0, 792.0],
        [50.0, 50.5, 49.5],
    );
    let judged = |fraction: f64| {
        let settings = Settings {
            min_speed_fraction: fraction,
            ..Settings::default()
        };
        let cmp = compare("b".into(), &base, &sweep(slower.clone(), None), settings).unwrap();
        cell(&cmp, "all", Quantity::RelativeSpeed).verdict
    };
    assert_eq!(judged(0.25), Verdict::WithinNoise);
    assert_eq!(judged(0.199_999), Verdict::Regressed);
    assert_eq!(
        cmp.cells[0].verdict,
        Verdict::Regressed,
        "regressions first"
    );
    // Without a reference in the baseline, absolute images/s, with a warning.
    let no_ref: Vec<MetricRow> = base
        .iter()
        .filter(|r| r.metric != REFERENCE_METRIC)
        .cloned()
        .collect();
    let cmp = compare(
        "b".into(),
        &no_ref,
        &sweep(base.clone(), None),
        Settings::default(),
    )
    .unwrap();
    assert_eq!(
        cell(&cmp, "all", Quantity::Speed).verdict,
        Verdict::WithinNoise
    );
    assert!(
        cmp.warnings.iter().any(|w| w.contains("absolute images/s")),
        "{:?}",
        cmp.warnings
    );
}

#[test]
fn accuracy_per_task_and_on_average() {
    let base = mtl([0.70, 0.72, 0.71], [1000.0; 3], [50.0; 3]);
    let worse = mtl([0.60, 0.61, 0.62], [1000.0; 3], [50.0; 3]);
    let cmp = compare("b".into(), &base, &sweep(worse, None), Settings::default()).unwrap();
    for task in [AVG_TASK, "skin", "lung"] {
        let c = cell(&cmp, task, Quantity::Accuracy);
        assert_eq!(c.verdict, Verdict::Regressed, "{c:?}");
        assert!((c.change + 10.0).abs() < 1e-9, "{c:?}");
    }
    // A change smaller than the minimum effect is within noise even when it is certain.
    let slightly = mtl([0.695, 0.715, 0.705], [1000.0; 3], [50.0; 3]);
    let cmp = compare(
        "b".into(),
        &base,
        &sweep(slightly, None),
        Settings::default(),
    )
    .unwrap();
    assert_eq!(
        cell(&cmp, AVG_TASK, Quantity::Accuracy).verdict,
        Verdict::WithinNoise
    );
}

#[test]
fn a_diverged_run_fails_its_cells_and_a_missing_seed_is_refused() {
    let base = mtl([0.70, 0.72, 0.71], [1000.0; 3], [50.0; 3]);
    let tonight: Vec<MetricRow> = base.iter().filter(|r| r.seed != 1).cloned().collect();
    let cmp = compare(
        "b".into(),
        &base,
        &sweep(tonight.clone(), Some(1)),
        Settings::default(),
    )
    .unwrap();
    assert!(cmp.regressed());
    let failed: Vec<&str> = cmp
        .cells
        .iter()
        .filter(|c| c.verdict == Verdict::Failed)
        .map(|c| c.key.task.as_str())
        .collect();
    assert_eq!(failed, [AVG_TASK, "all", "lung", "skin"]);
    assert!(cmp.cells[0]
        .note
        .as_deref()
        .unwrap()
        .contains("seed 1 diverged (run mtl-1: loss is NaN"));
    // The same rows with the run simply absent: the two sides do not hold the same runs.
    let mut absent = sweep(tonight, None);
    absent.runs.remove(1);
    let err = compare("b".into(), &base, &absent, Settings::default()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("decompose mtl · medmt · skin seed 1: in the baseline, not in this sweep"),
        "{msg}"
    );
    assert!(msg.contains("harness baseline save"), "{msg}");
    // A run planned but never run is refused too.
    let mut pending = sweep(base.clone(), None);
    pending.runs[2].1 = RunState::NotRun;
    let err = compare("b".into(), &base, &pending, Settings::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("1 of the 3 runs of experiment `nightly`"),
        "{err}"
    );
}
