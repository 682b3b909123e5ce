//! `harness run` end to end: training, Parquet output, report, caching, resume after
//! `kill -9`, divergence isolation and CPU determinism.

use std::time::{Duration, Instant};

use kdbench::store::metrics::read_metrics;

use crate::common::{deterministic_metrics, stderr, stdout, tiny_experiment, Workspace};

fn test_accuracies(ws: &Workspace) -> Vec<(String, String, u64, f64)> {
    let mut out = Vec::new();
    for f in ws.metrics_files() {
        for r in read_metrics(&f).expect("readable parquet") {
            if r.split == "test" && r.metric == "accuracy" {
                out.push((r.method.clone(), r.task.clone(), r.seed, r.value));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    out
}

#[test]
fn run_writes_parquet_then_report_renders_and_rerun_is_cached() {
    let ws = Workspace::new();
    ws.write("exp.toml", &tiny_experiment("tiny", &["stl", "mtl"], &[0]));
    let o = ws.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("11 trained, 0 cached"),
        "{}",
        stderr(&o)
    );
    assert_eq!(ws.metrics_files().len(), 11);
    let rows = read_metrics(&ws.metrics_files()[0]).unwrap();
    assert!(rows
        .iter()
        .all(|r| r.data_kind == "synthetic" && r.experiment == "tiny"));
    let acc = test_accuracies(&ws);
    assert_eq!(acc.len(), 20, "10 STL tasks + 10 MTL tasks");
    assert!(acc.iter().all(|a| (0.0..=1.0).contains(&a.3)));

    let rep = ws.run(&["report", "--format", "markdown"]);
    assert!(rep.status.success(), "{}", stderr(&rep));
    let md = stdout(&rep);
    assert!(md.contains("SYNTHETIC DATA"), "{md}");
    let header = md
        .lines()
        .find(|l| l.contains("Colon"))
        .expect("table header");
    for col in [
        "Colon", "Retinal", "OrganC", "Cell", "Breast", "Tissue", "Skin", "OrganA", "OrganS",
        "Chest", "Avg",
    ] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    assert!(
        md.lines()
            .any(|l| l.starts_with("| STL") || l.starts_with("| **STL")),
        "{md}"
    );
    assert!(
        md.lines()
            .any(|l| l.starts_with("| MTL") || l.starts_with("| **MTL")),
        "{md}"
    );
    assert!(ws.path().join("reports/tiny/decomposition.md").exists());

    // Re-running trains nothing.
    let t0 = Instant::now();
    let again = ws.run(&["run", "exp.toml"]);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("0 trained, 11 cached"),
        "{}",
        stderr(&again)
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(test_accuracies(&ws), acc);
}

#[test]
fn same_seed_gives_identical_metrics_on_cpu() {
    let a = Workspace::new();
    let b = Workspace::new();
    for ws in [&a, &b] {
        ws.write("exp.toml", &tiny_experiment("det", &["mtl"], &[3]));
        let o = ws.run(&["run", "exp.toml", "--threads", "2"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let va = deterministic_metrics(&a.metrics_files()[0]);
    let vb = deterministic_metrics(&b.metrics_files()[0]);
    assert!(!va.is_empty());
    assert_eq!(va, vb, "bit-identical metrics expected");
    // A different seed gives different numbers.
    let c = Workspace::new();
    c.write("exp.toml", &tiny_experiment("det", &["mtl"], &[4]));
    assert!(c.run(&["run", "exp.toml"]).status.success());
    let vc = deterministic_metrics(&c.metrics_files()[0]);
    assert_ne!(va, vc);
}

#[test]
fn diverged_run_is_recorded_and_others_continue() {
    let ws = Workspace::new();
    let text = tiny_experiment("div", &["stl", "mtl"], &[0]) + "\n[method.mtl]\nlr = 1e12\n";
    ws.write("exp.toml", &text);
    let o = ws.run(&["run", "exp.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("10 trained") && err.contains("1 diverged"),
        "{err}"
    );
    let status = stdout(&ws.run(&["status"]));
    assert!(status.contains("diverged"), "{status}");
    // The report still renders the runs that finished.
    let rep = ws.run(&["report"]);
    assert!(rep.status.success(), "{}", stderr(&rep));
    assert!(stdout(&rep).contains("STL"));
}

#[test]
fn kill_9_then_rerun_keeps_finished_runs_and_completes_the_rest() {
    let ws = Workspace::new();
    let text = tiny_experiment("kill", &["stl", "mtl"], &[0]).replace("epochs = 2", "epochs = 6");
    ws.write("exp.toml", &text);
    let bin = assert_cmd::cargo::cargo_bin("harness");
    let mut child = std::process::Command::new(bin)
        .args(["run", "exp.toml"])
        .current_dir(ws.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until at least two runs have finished and a third has written a checkpoint.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let statuses: Vec<String> = std::fs::read_dir(ws.path().join("results"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path().join("status.json")).ok())
                    .collect()
            })
            .unwrap_or_default();
        let done = statuses.iter().filter(|s| s.contains("\"done\"")).count();
        if done >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "runs never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = ws.metrics_files().len();
    assert!(before >= 2);
    for f in ws.metrics_files() {
        read_metrics(&f).expect("no corrupt parquet after kill -9");
    }
    let o = ws.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let cached: usize = err
        .lines()
        .find_map(|l| {
            l.split(" cached,")
                .next()
                .and_then(|p| p.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .expect("summary line");
    assert!(cached >= 2, "finished runs must be kept: {err}");
    assert_eq!(ws.metrics_files().len(), 11);
    assert_eq!(test_accuracies(&ws).len(), 20);
    // No temporary files are left behind.
    for e in walk(&ws.path().join("results")) {
        assert!(!e.to_string_lossy().ends_with(".tmp"), "leftover {e:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn every_run_records_the_build_and_the_machine() {
    let version = Workspace::new().run(&["--version"]);
    let text = stdout(&version);
    assert!(
        text.starts_with("harness 0.1.0 (commit ") && text.contains("candle 0.11"),
        "{text}"
    );
    let ws = Workspace::new();
    ws.write("e.toml", &tiny_experiment("prov", &["mtl"], &[0]));
    let o = ws.run(&["run", "e.toml", "--plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = std::fs::read_dir(ws.path().join("results"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("status.json").is_file())
        .expect("a run folder");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    let p = &status["provenance"];
    for key in [
        "git_commit",
        "git_state",
        "candle",
        "polars",
        "host",
        "cpu_model",
    ] {
        assert!(p[key].as_str().is_some_and(|v| !v.is_empty()), "{key}: {p}");
    }
    let isa = p["instruction_set"].as_str().unwrap();
    assert!(
        [
            "AVX-512",
            "AVX2+FMA",
            "x86-64 without AVX2",
            "NEON",
            "scalar"
        ]
        .contains(&isa),
        "{isa}"
    );
}

/// After an experiment file changes (here its learning rate), its report shows the runs of
/// the new plan only: the old runs stay in the store but are no longer the experiment's.
#[test]
fn a_changed_experiment_reports_only_its_current_runs() {
    let ws = Workspace::new();
    let text = tiny_experiment("changed", &["mtl"], &[0]);
    ws.write("exp.toml", &text);
    assert!(ws.run(&["run", "exp.toml"]).status.success());
    ws.write("exp.toml", &text.replace("lr = 0.05", "lr = 0.01"));
    assert!(ws.run(&["run", "exp.toml"]).status.success());
    assert_eq!(ws.metrics_files().len(), 2, "both runs stay in the store");
    let o = ws.run(&["report", "--format", "markdown"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("· 1 runs ·") || out.contains("· 1 run ·"),
        "{out}"
    );
}
