//! Shared fixtures: a temp workspace with the repository's dataset registry and tiny
//! experiment files, and a helper to run the binary in it.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A tiny smoke profile: 16 px, a 2-stage ResNet of width 4/8, a dozen images per task.
pub const TINY_PROFILE: &str = r#"
[profile.smoke]
data = "synthetic"
image_size = 16
epochs = 2
batch_size = 16
max_train_per_task = 24
max_val_per_task = 8
max_test_per_task = 16
difficulty = 0.5

[profile.smoke.model]
arch = "resnet"
widths = [4, 8]
depths = [1, 1]

[profile.smoke.optim]
name = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4
schedule = "cosine"
"#;

/// An experiment over `methods` on the synthetic MedMNIST stand-in.
pub fn tiny_experiment(name: &str, methods: &[&str], seeds: &[u64]) -> String {
    let methods: Vec<String> = methods.iter().map(|m| format!("\"{m}\"")).collect();
    let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    format!(
        "name = \"{name}\"\nseeds = [{}]\nstages = [\"decompose\"]\n\n[grid]\nmethod = [{}]\npretrain = [\"medmnist\"]\n{TINY_PROFILE}",
        seeds.join(", "),
        methods.join(", ")
    )
}

/// The tiny experiment with a foundation stage and teacher `teacher` (a 2-stage bottleneck
/// ResNet), and `extra` appended (method or foundation settings).
pub fn distill_experiment(name: &str, methods: &[&str], stages: &str, extra: &str) -> String {
    tiny_experiment(name, methods, &[0])
        .replace("stages = [\"decompose\"]", &format!("stages = {stages}"))
        .replace(
            "pretrain = [\"medmnist\"]",
            "pretrain = [\"medmnist\"]\nfoundation = [\"teacher\"]",
        )
        + "\n[profile.smoke.foundation.teacher.model]\narch = \"resnet_bottleneck\"\nwidths = [4, 8]\ndepths = [1, 1]\n"
        + extra
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(repo_file("datasets.toml"), dir.path().join("datasets.toml"))
            .expect("copy registry");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("harness").expect("binary built");
        c.current_dir(self.path())
            .env_remove("HARNESS_DATA_DIR")
            .env("RAYON_NUM_THREADS", "2");
        c
    }

    /// Run the binary with `args`; returns the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run harness")
    }

    /// Every `metrics.parquet` under `results/`.
    pub fn metrics_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.path().join("results")) {
            for e in rd.flatten() {
                let p = e.path().join("metrics.parquet");
                if p.exists() {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert a bad-input failure (exit 2) whose stderr contains every needle.
pub fn assert_bad_input(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`:\n{err}");
    }
    assert!(!err.contains("panicked"), "panic:\n{err}");
}

/// The metrics of a run that do not depend on timing, as (epoch, split, task, metric) and
/// the value's bits: what two runs of the same seed, threads and code must share exactly.
pub fn deterministic_metrics(path: &Path) -> Vec<((u32, String, String, String), u64)> {
    kdbench::store::metrics::read_metrics(path)
        .unwrap()
        .iter()
        .filter(|r| {
            !["samples_per_s", "epoch_time_s", "reference_gflops"].contains(&r.metric.as_str())
        })
        .map(|r| {
            (
                (r.epoch, r.split.clone(), r.task.clone(), r.metric.clone()),
                r.value.to_bits(),
            )
        })
        .collect()
}
