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
