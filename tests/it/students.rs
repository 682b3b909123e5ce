//! The ShuffleNetV2 student through the binary: a tiny MTL run trains and writes test
//! accuracies, and a layout ShuffleNetV2 cannot build is refused before anything runs.

use kdbench::store::metrics::read_metrics;

use crate::common::{assert_bad_input, stderr, tiny_experiment, Workspace};

/// The tiny experiment with its ResNet swapped for a ShuffleNetV2 of the given layout.
fn shufflenet_experiment(widths: &str, depths: &str) -> String {
    tiny_experiment("tiny-shufflenet", &["mtl"], &[0])
        .replace("arch = \"resnet\"", "arch = \"shufflenetv2\"")
        .replace("widths = [4, 8]", &format!("widths = {widths}"))
        .replace("depths = [1, 1]", &format!("depths = {depths}"))
}

#[test]
fn shufflenet_student_trains_an_mtl_run() {
    let ws = Workspace::new();
    ws.write(
        "exp.toml",
        &shufflenet_experiment("[8, 16, 32, 64]", "[1, 2]"),
    );
    let o = ws.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 trained"), "{}", stderr(&o));
    let files = ws.metrics_files();
    assert_eq!(files.len(), 1);
    let rows = read_metrics(&files[0]).unwrap();
    let test: Vec<f64> = rows
        .iter()
        .filter(|r| r.split == "test" && r.metric == "accuracy")
        .map(|r| r.value)
        .collect();
    assert_eq!(test.len(), 10, "one test accuracy per task");
    assert!(test.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn shufflenet_layouts_it_cannot_build_are_bad_input() {
    let ws = Workspace::new();
    ws.write(
        "odd.toml",
        &shufflenet_experiment("[8, 15, 32, 64]", "[1, 2]"),
    );
    assert_bad_input(&ws.run(&["run", "odd.toml"]), &["odd.toml", "must be even"]);
    ws.write(
        "short.toml",
        &shufflenet_experiment("[8, 16, 32]", "[1, 2]"),
    );
    assert_bad_input(
        &ws.run(&["run", "short.toml"]),
        &[
            "short.toml",
            "one positive block count per stage",
            "[stem, one per stage…, final]",
        ],
    );
}
