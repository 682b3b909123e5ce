//! MoCo-MTL and Aligned-MTL through the binary: both train on the tiny experiment, log a
//! weight per task and step to `task_weights.parquet`, and their settings are checked.

use kdbench::store::task_weights::read_task_weights;

use crate::common::{assert_bad_input, stderr, tiny_experiment, Workspace};

#[test]
fn gradient_balancing_methods_train_and_log_task_weights() {
    let ws = Workspace::new();
    ws.write(
        "exp.toml",
        &(tiny_experiment("balance", &["mocomtl", "alignedmtl"], &[0])
            + "\n[method.mocomtl]\nlambda_update = \"simplex\"\nstep_decay = \"epoch\"\n"),
    );
    let o = ws.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 trained"), "{}", stderr(&o));
    let mut files = Vec::new();
    for e in std::fs::read_dir(ws.path().join("results"))
        .unwrap()
        .flatten()
    {
        let p = e.path().join("task_weights.parquet");
        if p.exists() {
            let spec = std::fs::read_to_string(e.path().join("spec.json")).unwrap();
            files.push((spec, read_task_weights(&p).unwrap()));
        }
    }
    assert_eq!(files.len(), 2);
    for (spec, rows) in files {
        assert!(!rows.is_empty());
        // 2 epochs, every row of a step a present task of that step.
        assert_eq!(rows.iter().map(|r| r.epoch).max(), Some(2));
        if spec.contains("\"mocomtl\"") {
            assert!(
                spec.contains("\"simplex\"") && spec.contains("\"epoch\""),
                "{spec}"
            );
            // λ lies on the simplex: weights in [0, 1].
            assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.weight)));
        } else {
            assert!(rows.iter().all(|r| r.weight.is_finite()));
        }
    }
}

#[test]
fn balancing_settings_belong_to_moco() {
    let ws = Workspace::new();
    ws.write(
        "a.toml",
        &(tiny_experiment("a", &["mtl"], &[0]) + "\n[method.mtl]\nlambda_update = \"simplex\"\n"),
    );
    assert_bad_input(&ws.run(&["run", "a.toml"]), &["a.toml:", "only MoCo-MTL"]);
    ws.write(
        "b.toml",
        &(tiny_experiment("b", &["mocomtl"], &[0])
            + "\n[method.mocomtl]\nstep_decay = \"batch\"\n"),
    );
    assert_bad_input(
        &ws.run(&["run", "b.toml"]),
        &["b.toml:", "not a step decay"],
    );
}

#[test]
fn balance_bench_prints_times_memory_and_ratios() {
    let ws = Workspace::new();
    let o = ws.run(&[
        "bench",
        "balance",
        "--tasks",
        "2",
        "--batch",
        "8",
        "--rounds",
        "1",
        "--min-time",
        "0",
        "--json",
        "b.json",
    ]);
    let out = crate::common::stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for needle in [
        "equal (MTL)",
        "MoCo-MTL",
        "Aligned-MTL",
        "× MTL",
        "state copies",
    ] {
        assert!(out.contains(needle), "{out}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join("b.json")).unwrap()).unwrap();
    assert_eq!(json[1]["results"].as_array().unwrap().len(), 3);
    assert_bad_input(&ws.run(&["bench", "balance", "--tasks", "1"]), &["--tasks"]);
}
