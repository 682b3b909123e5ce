//! MoCo-MTL and Aligned-MTL through the binary: both train on the tiny experiment, log a
//! weight per task and step to `task_weights.parquet`, and their settings are checked.

use kdbench::store::task_weights::read_task_weights;

use crate::common::{
    assert_bad_input, deterministic_metrics, stderr, stdout, tiny_experiment, Workspace,
};

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
        assert_eq!(rows.iter().map(|r| r.epoch).max(), Some(2));
        let tasks: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.task.as_str()).collect();
        let steps: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.step).collect();
        if spec.contains("\"mocomtl\"") {
            assert!(
                spec.contains("\"simplex\"") && spec.contains("\"epoch\""),
                "{spec}"
            );
            // λ lies on the simplex: weights in [0, 1], every task's at every step (MoCo's
            // update uses all rows of Y), summing to 1.
            assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.weight)));
            assert_eq!(rows.len(), tasks.len() * steps.len());
            for s in &steps {
                let total: f64 = rows.iter().filter(|r| r.step == *s).map(|r| r.weight).sum();
                assert!((total - 1.0).abs() < 1e-9, "step {s}: {total}");
            }
        } else {
            assert!(rows.iter().all(|r| r.weight.is_finite()));
        }
    }

    // The report shows how each method weighted the tasks; λ on the simplex sums to 1.
    let o = ws.run(&["report", "--format", "markdown"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let at = text
        .find("## balance · task weights (mean over the last epoch's steps)")
        .unwrap_or_else(|| panic!("{text}"));
    let weights = &text[at..];
    let moco = weights
        .lines()
        .find(|l| l.starts_with("| MoCo-MTL |"))
        .unwrap_or_else(|| panic!("{weights}"));
    assert!(moco.ends_with("| 1.000 |"), "{moco}");
    assert!(weights.contains("| Aligned-MTL |"), "{weights}");
    assert!(ws.path().join("reports/balance/task_weights.md").exists());
    assert!(stderr(&o).contains("task_weights.md"), "{}", stderr(&o));
    // The same weights over the steps, one plot per method, and the training curves.
    let svg = std::fs::read_to_string(ws.path().join("reports/balance/task_weights_medmnist.svg"))
        .unwrap();
    assert!(
        svg.contains("MoCo-MTL") && svg.contains("Aligned-MTL"),
        "panel titles"
    );
    assert!(svg.contains("SYNTHETIC DATA"), "banner");
    assert!(ws
        .path()
        .join("reports/balance/task_weights_medmnist.png")
        .is_file());
    let curves =
        std::fs::read_to_string(ws.path().join("reports/balance/curves_medmnist.svg")).unwrap();
    assert!(curves.contains("validation accuracy"), "curves");
}

#[test]
fn balancing_settings_belong_to_moco() {
    let ws = Workspace::new();
    ws.write(
        "a.toml",
        &(tiny_experiment("a", &["mtl"], &[0]) + "\n[method.mtl]\nlambda_update = \"simplex\"\n"),
    );
    assert_bad_input(
        &ws.run(&["run", "a.toml"]),
        &[
            "a.toml:",
            "mtl has no MoCo-MTL settings (`lambda_update` applies to mocomtl)",
        ],
    );
    ws.write(
        "b.toml",
        &(tiny_experiment("b", &["mocomtl"], &[0])
            + "\n[method.mocomtl]\nstep_decay = \"batch\"\n"),
    );
    assert_bad_input(
        &ws.run(&["run", "b.toml"]),
        &[
            "b.toml:",
            "method.mocomtl.step_decay: unknown variant `batch`, expected `iteration` or `epoch`",
        ],
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
    let results = json[1]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    // The memory bound: per-task gradients for T tasks hold at most T + 1 copies
    // of the shared parameters (within the step plus between steps) beyond MTL's step with
    // the graph kept for repeated backward passes, as theirs must be.
    let copy = 4.0 * json[1]["shared_params"].as_f64().unwrap();
    let mtl_peak = json[1]["kept_graph_peak_bytes"].as_f64().unwrap();
    assert!(mtl_peak >= results[0]["peak_step_bytes"].as_f64().unwrap());
    for r in &results[1..] {
        let extra = (r["peak_step_bytes"].as_f64().unwrap() - mtl_peak).max(0.0)
            + r["state_bytes"].as_f64().unwrap();
        assert!(
            extra / copy <= 3.0,
            "{}: {} copies",
            r["weighting"],
            extra / copy
        );
    }
    assert_bad_input(&ws.run(&["bench", "balance", "--tasks", "1"]), &["--tasks"]);
}

/// MoCo-MTL carries Y and λ from step to step: killed after an epoch and resumed, a run must
/// give bit for bit the metrics and task weights of a run that never stopped (the state
/// travels in the checkpoint).
#[test]
fn moco_resumed_after_kill_matches_an_uninterrupted_run() {
    let text = tiny_experiment("resume", &["mocomtl"], &[0])
        .replace("epochs = 2", "epochs = 5")
        .replace("max_train_per_task = 24", "max_train_per_task = 48");
    let whole = Workspace::new();
    whole.write("exp.toml", &text);
    let o = whole.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let resumed = Workspace::new();
    resumed.write("exp.toml", &text);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("harness"))
        .args(["run", "exp.toml"])
        .current_dir(resumed.path())
        .env_remove("HARNESS_DATA_DIR")
        .env("RAYON_NUM_THREADS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let run_dir = loop {
        let found = std::fs::read_dir(resumed.path().join("results"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("checkpoint.safetensors").exists());
        if let Some(dir) = found {
            break dir;
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL, after the first epoch's checkpoint
    child.wait().unwrap();
    let o = resumed.run(&["status"]);
    assert!(
        stdout(&o).contains("interrupted") && stderr(&o).contains("1 interrupted"),
        "a killed run is not shown as running:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = resumed.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert!(log.contains("resuming after epoch"), "{log}");

    let values = |ws: &Workspace| -> Vec<(u32, String, String, String, u64)> {
        let rows = kdbench::store::metrics::read_metrics(&ws.metrics_files()[0]).unwrap();
        rows.into_iter()
            .filter(|r| {
                !["samples_per_s", "epoch_time_s", "reference_gflops"].contains(&r.metric.as_str())
            })
            .map(|r| (r.epoch, r.split, r.task, r.metric, r.value.to_bits()))
            .collect()
    };
    let (a, b) = (values(&whole), values(&resumed));
    assert_eq!(a.iter().map(|r| r.0).max(), Some(5));
    assert_eq!(
        a, b,
        "a resumed MoCo-MTL run must match an uninterrupted one"
    );
    let weights = |ws: &Workspace| {
        let dir = ws.metrics_files()[0].parent().unwrap().to_path_buf();
        read_task_weights(&dir.join("task_weights.parquet")).unwrap()
    };
    assert_eq!(weights(&whole), weights(&resumed));
}

/// `--checkpoint-interval` checkpoints between the steps of an epoch: a MoCo-MTL run that dies
/// while writing one, in its second epoch, resumes inside that epoch and ends with the
/// metrics and task weights of a run that never stopped and never checkpointed inside an
/// epoch, bit for bit (the epoch's running tallies and MoCo's state travel in the
/// checkpoint, and the weights of the steps done are kept).
#[test]
fn moco_resumed_inside_an_epoch_matches_an_uninterrupted_run() {
    let text = tiny_experiment("inside", &["mocomtl"], &[0])
        .replace("epochs = 2", "epochs = 3")
        .replace("max_train_per_task = 24", "max_train_per_task = 48");
    let whole = Workspace::new();
    whole.write("exp.toml", &text);
    let o = whole.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole_dir = whole.metrics_files()[0].parent().unwrap().to_path_buf();
    let whole_log = std::fs::read_to_string(whole_dir.join("log.txt")).unwrap();
    assert!(!whole_log.contains("checkpoint inside"), "{whole_log}");

    let resumed = Workspace::new();
    resumed.write("exp.toml", &text);
    // A checkpoint after every step (each takes well over a millisecond): epoch 1's 30 steps
    // write 30, and the 35th write, after step 5 of epoch 2, dies before its rename.
    let interval = ["--checkpoint-interval", "0.001"];
    let o = resumed
        .cmd()
        .env(
            "HARNESS_FAULT",
            "die-before-rename:checkpoint.safetensors:35",
        )
        .args(interval)
        .args(["run", "exp.toml"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("dying before renaming checkpoint.safetensors"),
        "{}",
        stderr(&o)
    );
    let o = resumed
        .cmd()
        .args(interval)
        .args(["run", "exp.toml"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = resumed.metrics_files()[0].parent().unwrap().to_path_buf();
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    let resume = log
        .lines()
        .find(|l| l.contains("resuming"))
        .unwrap_or_else(|| panic!("no resume in\n{log}"));
    assert!(
        resume.contains("resuming inside epoch 2 after step"),
        "{log}"
    );

    assert_eq!(
        deterministic_metrics(&whole.metrics_files()[0]),
        deterministic_metrics(&resumed.metrics_files()[0]),
        "a run resumed inside an epoch must match an uninterrupted one"
    );
    let weights =
        |dir: &std::path::Path| read_task_weights(&dir.join("task_weights.parquet")).unwrap();
    assert_eq!(weights(&whole_dir), weights(&dir));
}
