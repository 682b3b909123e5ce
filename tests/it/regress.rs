//! Nightly regression checks end to end: a sweep saved as a baseline, an unchanged re-run on
//! "another machine" (a fresh results folder holding only the baseline file, whose rows say
//! they came from another host, CPU and instruction set) within noise with warnings, and a
//! copy with a learning rate ten times too high caught as a regression naming its cells.

use kdbench::store::metrics::{read_metrics, write_metrics};

use crate::common::{assert_bad_input, stderr, stdout, Workspace};

/// A miniature of experiments/nightly.toml: STL and MTL on the synthetic Med-MT stand-in,
/// three seeds, big enough (192 images a task, 5 epochs) that a learning rate ten times too
/// high costs STL about 7 accuracy points on average, well outside the seeds' spread.
/// Runs the mini nightly as `just nightly` runs the real one: one worker on 2 threads, the
/// layout its baseline was made with.
const NIGHTLY_RUN: &[&str] = &[
    "run",
    "nightly.toml",
    "--threads",
    "2",
    "--jobs",
    "1",
    "--plain",
];

fn mini_nightly(lr: f64) -> String {
    format!(
        r#"name = "mini_nightly"
seeds = [0, 1, 2]
stages = ["decompose"]

[grid]
method = ["mtl", "stl"]
pretrain = ["medmt"]

[profile.smoke]
data = "synthetic"
image_size = 16
epochs = 5
batch_size = 32
max_train_per_task = 192
max_val_per_task = 8
max_test_per_task = 64
difficulty = 0.3

[profile.smoke.model]
arch = "resnet"
widths = [8, 16, 32]
depths = [1, 1, 1]

[profile.smoke.optim]
name = "sgd"
lr = {lr}
momentum = 0.9
weight_decay = 1e-4
schedule = "cosine"
"#
    )
}

/// The Markdown section `### Title (n)` of a regression report, up to the next section.
fn section<'a>(report: &'a str, title: &str) -> &'a str {
    let Some(start) = report.find(&format!("### {title} (")) else {
        return "";
    };
    let rest = &report[start..];
    let end = rest[4..].find("### ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

#[test]
fn a_ten_times_too_high_learning_rate_is_caught_and_an_unchanged_rerun_is_not() {
    let here = Workspace::new();
    here.write("nightly.toml", &mini_nightly(0.05));
    let o = here.run(NIGHTLY_RUN);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = here.run(&["baseline", "save", "mini"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("27 runs"), "{}", stdout(&o));
    let saved = here.path().join("results/baselines/mini.parquet");

    // Bad input is refused with exit 2 and says what to do.
    assert_bad_input(
        &here.run(&["regress", "--baseline", "nope"]),
        &["no baseline `nope`", "harness baseline save nope"],
    );
    assert_bad_input(
        &here.run(&["regress", "--baseline", "mini", "--experiment", "table3"]),
        &["is of experiment `mini_nightly`, not `table3`"],
    );

    // Another machine: a fresh results folder with the baseline file only, whose rows say
    // another host, CPU, instruction set and thread count produced them.
    let there = Workspace::new();
    let mut rows = read_metrics(&saved).unwrap();
    for r in &mut rows {
        r.provenance.host = "node-b".into();
        r.provenance.cpu_model = "Some Other CPU".into();
        r.provenance.instruction_set = "AVX2+FMA".into();
        r.threads = 8;
    }
    write_metrics(&there.path().join("results/baselines/mini.parquet"), &rows).unwrap();
    assert_bad_input(
        &there.run(&["regress", "--baseline", "mini"]),
        &["no runs of experiment `mini_nightly`", "harness run"],
    );
    there.write("nightly.toml", &mini_nightly(0.05));
    let o = there.run(NIGHTLY_RUN);
    assert!(o.status.success(), "{}", stderr(&o));
    // Accuracy only: the other tests running beside this one make speed a measure of them.
    let o = there.run(&["regress", "--baseline", "mini", "--only", "accuracy"]);
    let report = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{report}\n{}", stderr(&o));
    assert!(
        report.contains("Verdict: no regression · 0 failed · 0 regressed · 0 improved"),
        "{report}"
    );
    assert!(report.contains("**SYNTHETIC DATA**"), "{report}");
    let warnings = stderr(&o);
    for w in [
        "instruction set differs: baseline AVX2+FMA",
        "machine differs: baseline node-b · Some Other CPU",
        "threads differs: baseline 8; this sweep 2",
    ] {
        assert!(warnings.contains(w), "stderr lacks `{w}`:\n{warnings}");
        assert!(report.contains(w), "report lacks `{w}`:\n{report}");
    }
    // Same code, seeds and threads on this machine: every accuracy is bit for bit the
    // baseline's, so every accuracy change is exactly zero (the interval is the seeds'
    // spread, centred on it).
    let within = section(&report, "Within noise");
    assert!(
        within.contains("decompose stl · medmt · Avg | test accuracy (%)"),
        "{report}"
    );
    for line in within.lines().filter(|l| l.contains("test accuracy")) {
        assert!(line.contains("| +0.00 pt ["), "{line}");
    }
    assert!(there
        .path()
        .join("reports/mini_nightly/regress.md")
        .is_file());

    // The same experiment with the learning rate ten times too high.
    there.write("nightly.toml", &mini_nightly(0.5));
    let o = there.run(NIGHTLY_RUN);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = there.run(&["regress", "--baseline", "mini", "--only", "accuracy"]);
    let report = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{report}\n{}", stderr(&o));
    assert!(report.contains("Verdict: **REGRESSION**"), "{report}");
    let regressed = section(&report, "Regressed");
    assert!(
        regressed.contains("| decompose stl · medmt · Avg | test accuracy (%) |"),
        "{report}"
    );
    // Regressions come first.
    assert!(
        report.find("### Regressed") < report.find("### Within noise"),
        "{report}"
    );

    // JSON for tools, speed judged too (one cell per method, relative to the reference the
    // runs measured): the accuracy regression stands whatever speed says.
    let o = there.run(&["regress", "--baseline", "mini", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert!(
        cells[0]["verdict"] == "regressed" || cells[0]["verdict"] == "failed",
        "{}",
        cells[0]
    );
    let speed: Vec<_> = cells
        .iter()
        .filter(|c| c["key"]["quantity"] == "relative_speed")
        .collect();
    assert_eq!(speed.len(), 2, "{cells:?}");
    assert!(speed
        .iter()
        .all(|c| c["key"]["task"] == "all" && c["baseline"].as_array().unwrap().len() == 3));
    assert!(cells.iter().any(|c| c["verdict"] == "regressed"
        && c["key"]["task"] == "Avg"
        && c["key"]["method"] == "stl"));
}

#[test]
fn baselines_refuse_incomplete_sweeps_unless_forced() {
    let ws = Workspace::new();
    let mut text = mini_nightly(0.05);
    text = text.replace("seeds = [0, 1, 2]", "seeds = [0]");
    text = text.replace("method = [\"mtl\", \"stl\"]", "method = [\"mtl\"]");
    ws.write("nightly.toml", &text);
    assert_bad_input(
        &ws.run(&["baseline", "save", "mini"]),
        &["no experiments in results", "harness run FILE"],
    );
    // Planned but not run: the manifest lists a run that has not trained.
    let o = ws.run(NIGHTLY_RUN);
    assert!(o.status.success(), "{}", stderr(&o));
    // A manifest that lists a run that never trained, as a killed sweep leaves it.
    let manifest = ws
        .path()
        .join("results/experiments/mini_nightly/smoke.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["runs"]
        .as_array_mut()
        .unwrap()
        .push("00000000deadbeef".into());
    std::fs::write(&manifest, m.to_string()).unwrap();
    assert_bad_input(
        &ws.run(&["baseline", "save", "mini"]),
        &["is incomplete: 1 of 2 runs done", "1 not run", "--force"],
    );
    assert_bad_input(
        &ws.run(&["baseline", "save", "../evil"]),
        &["baseline name `../evil`"],
    );
    let o = ws.run(&["baseline", "save", "mini", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 runs that are not done were left out"),
        "{}",
        stderr(&o)
    );
    // A sweep that has not finished cannot be judged either.
    assert_bad_input(
        &ws.run(&["regress", "--baseline", "mini"]),
        &[
            "1 of the 2 runs of experiment `mini_nightly`",
            "have not run",
            "00000000deadbeef",
        ],
    );
}
