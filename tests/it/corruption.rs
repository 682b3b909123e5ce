//! Corrupt run files are detected, reported with their path and redone, never used: a
//! bit flip or truncation of metrics, checkpoints or the status, found by `harness run`
//! (which redoes the run), `harness report` (which leaves it out), `harness verify` (which
//! lists it, exit 1; `--repair` sets it aside) and the loaders of checkpoints.

use std::path::{Path, PathBuf};

use crate::common::{deterministic_metrics, distill_experiment, stderr, stdout, Workspace};

fn experiment() -> String {
    distill_experiment(
        "corrupt",
        &["mtl", "lorkd"],
        "[\"foundation\", \"decompose\"]",
        "",
    )
}

/// The run folder whose spec has `method`.
fn run_dir(ws: &Workspace, method: &str) -> PathBuf {
    std::fs::read_dir(ws.path().join("results"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p.join("spec.json"))
                .is_ok_and(|t| t.contains(&format!("\"method\": \"{method}\"")))
        })
        .unwrap_or_else(|| panic!("no run of {method}"))
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

fn id(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn corrupt_files_are_found_reported_and_redone() {
    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let run = |args: &[&str]| ws.run(args);
    let o = run(&["run", "exp.toml", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (teacher, mtl, lorkd) = (
        run_dir(&ws, "foundation"),
        run_dir(&ws, "mtl"),
        run_dir(&ws, "lorkd"),
    );
    let before = |d: &Path| deterministic_metrics(&d.join("metrics.parquet"));
    let (mtl_before, lorkd_before) = (before(&mtl), before(&lorkd));
    let o = run(&["verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("3 run folders checked: 0 corrupt"),
        "{}",
        stdout(&o)
    );

    // A bit flip in metrics (same size) and a truncated checkpoint.
    flip_a_byte(&mtl.join("metrics.parquet"));
    truncate(&lorkd.join("checkpoint.safetensors"));
    let o = run(&["verify"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let mtl_id = id(&mtl);
    assert!(
        out.contains(&format!(
            "{mtl_id}  CORRUPT  results/{mtl_id}/metrics.parquet fails its checksum (sha256 "
        )),
        "{out}"
    );
    assert!(out.contains("fails its checksum (sha256 "), "{out}");
    assert!(out.contains("checkpoint.safetensors has "), "{out}");
    assert!(out.contains("3 run folders checked: 2 corrupt"), "{out}");
    let o = run(&["report"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("warning: run {} left out of reports:", id(&mtl))),
        "{}",
        stderr(&o)
    );
    // `harness run` redoes exactly those two, from scratch, to the same numbers.
    let o = run(&["run", "exp.toml", "--threads", "1"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("warning: run {} (decompose mtl", id(&mtl))),
        "{err}"
    );
    assert!(err.contains("2 trained, 1 cached"), "{err}");
    assert_eq!(before(&mtl), mtl_before);
    assert_eq!(before(&lorkd), lorkd_before);
    let aside: Vec<_> = std::fs::read_dir(&mtl)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(
        aside[0].path().join("metrics.parquet").exists(),
        "the corrupt file is kept"
    );
    let log = std::fs::read_to_string(mtl.join("log.txt")).unwrap();
    assert!(log.starts_with("set the run's files aside into"), "{log}");

    // A same-size bit flip in a checkpoint: the plan's size check misses it, whoever loads
    // it does not, and verify --repair sets it aside to be redone.
    flip_a_byte(&teacher.join("checkpoint.safetensors"));
    flip_a_byte(&lorkd.join("checkpoint.safetensors"));
    let o = run(&[
        "export",
        &id(&lorkd),
        "--task",
        "colon",
        "--out",
        "x.safetensors",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("checkpoint.safetensors fails its checksum"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("harness verify --repair"),
        "{}",
        stderr(&o)
    );
    let o = run(&["verify", "--repair"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("3 run folders checked: 2 corrupt, 2 set aside"),
        "{out}"
    );
    let o = run(&["run", "exp.toml", "--threads", "1"]);
    assert!(stderr(&o).contains("2 trained, 1 cached"), "{}", stderr(&o));
    assert_eq!(before(&lorkd), lorkd_before);

    // An unreadable status is a corrupt run too.
    std::fs::write(mtl.join("status.json"), "{\"state\": \"do").unwrap();
    let o = run(&["run", "exp.toml", "--threads", "1"]);
    let err = stderr(&o);
    assert!(err.contains("status.json is unreadable"), "{err}");
    assert!(err.contains("1 trained, 2 cached"), "{err}");

    // A bit flip that still parses (one digit of the epoch count) fails the status's own
    // checksum.
    let status_path = mtl.join("status.json");
    let text = std::fs::read_to_string(&status_path).unwrap();
    let key = "\"epochs_done\": ";
    let at = text.find(key).expect("status has epochs_done") + key.len();
    let digit = text.as_bytes()[at];
    assert!(digit.is_ascii_digit(), "{text}");
    let mut flipped = text.clone().into_bytes();
    flipped[at] = if digit == b'9' { b'8' } else { digit + 1 };
    let flipped = String::from_utf8(flipped).unwrap();
    std::fs::write(&status_path, flipped).unwrap();
    let o = run(&["verify"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("fails its own checksum"), "{out}");
    let o = run(&["run", "exp.toml", "--threads", "1"]);
    let err = stderr(&o);
    assert!(err.contains("fails its own checksum"), "{err}");
    assert!(err.contains("1 trained, 2 cached"), "{err}");
    let o = run(&["verify"]);
    assert!(
        stdout(&o).contains("3 run folders checked: 0 corrupt"),
        "{}",
        stdout(&o)
    );
}
