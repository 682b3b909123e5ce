//! `harness plan`: the expanded runs, with run ids and cache state, without running.

use crate::common::{stdout, tiny_experiment, Workspace};

#[test]
fn plan_lists_one_stl_run_per_task_and_one_mtl_run_per_seed() {
    let ws = Workspace::new();
    ws.write("exp.toml", &tiny_experiment("e", &["stl", "mtl"], &[0, 1]));
    let o = ws.run(&["plan", "exp.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    // MedMNIST has 10 tasks: STL 10 runs × 2 seeds, MTL 1 run × 2 seeds.
    assert!(out.contains("22 runs"), "{out}");
    assert!(out.contains("synthetic"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.split_whitespace().take(2).eq(["decompose", "stl"]))
            .count(),
        20,
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.split_whitespace().take(2).eq(["decompose", "mtl"]))
            .count(),
        2,
        "{out}"
    );
    assert!(out.contains("22 to run, 0 cached"), "{out}");
    assert!(
        !ws.path().join("results").exists(),
        "plan must not write results"
    );
    // Run ids are stable across invocations.
    let again = stdout(&ws.run(&["plan", "exp.toml"]));
    assert_eq!(out, again);
}

/// Every experiment file of the repository plans under its smoke profile, and under its
/// paper profile refuses with the list of missing data sets and weights (exit 2), nothing
/// being there.
#[test]
fn every_experiment_file_plans_smoke_and_lists_what_paper_needs() {
    let ws = Workspace::new();
    let dir = crate::common::repo_file("experiments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        ws.write(&format!("experiments/{name}"), &text);
        let file = format!("experiments/{name}");
        let smoke = ws.run(&["plan", &file, "--profile", "smoke"]);
        assert!(
            smoke.status.success(),
            "{name} smoke: {}",
            String::from_utf8_lossy(&smoke.stderr)
        );
        assert!(stdout(&smoke).contains("to run"), "{name}");
        // The nightly sweep is synthetic by design; every other file has the paper's scale.
        if name == "nightly.toml" {
            assert!(!text.contains("[profile.paper]"), "{name}");
            continue;
        }
        let paper = ws.run(&["plan", &file, "--profile", "paper"]);
        let err = String::from_utf8_lossy(&paper.stderr).into_owned();
        assert_eq!(paper.status.code(), Some(2), "{name} paper: {err}");
        assert!(
            err.contains("inputs are missing") && err.contains("data   "),
            "{name}: {err}"
        );
        assert!(err.contains("--profile smoke"), "{name}: {err}");
        if text.contains("\nweights = ") {
            assert!(err.contains("weights "), "{name} names no weights: {err}");
        }
    }
}
