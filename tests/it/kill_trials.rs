//! Kill trials: `harness run` (and now and then `harness report`) is SIGKILLed at random
//! moments, then started again, over and over on one results folder, until the sweep is
//! complete. After every kill: every run that was done before it is still done, `harness
//! verify` finds no corrupt file, and every Parquet file left in the store reads. At the
//! end the metrics equal an uninterrupted sweep's bit for bit. One run trial in three
//! checkpoints every 20 ms as well (`--checkpoint-interval`), so kills also land in and
//! resume from checkpoints written inside an epoch.
//!
//! `just kill-trials` runs 24 trials (`KILL_TRIALS`, seed `KILL_SEED`); the test suite (and
//! so `.ci/run`) runs 4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kdbench::util::rng::SplitMix64;

use crate::common::{deterministic_metrics, distill_experiment, stderr, stdout, Workspace};

/// A teacher and four students, long enough (12 epochs each) that kills land in training,
/// in metrics and checkpoint writes, and between runs.
fn experiment() -> String {
    distill_experiment(
        "kills",
        &["mtl", "lorkd"],
        "[\"foundation\", \"decompose\"]",
        "",
    )
    .replace("seeds = [0]", "seeds = [0, 1]")
    .replace("epochs = 2", "epochs = 12")
}

fn harness(ws: &Workspace, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("harness"));
    c.current_dir(ws.path())
        .env_remove("HARNESS_DATA_DIR")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Run id → state of every run folder with a readable status.
fn states(results: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(results).into_iter().flatten().flatten() {
        if let Ok(text) = std::fs::read_to_string(e.path().join("status.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let state = v["state"].as_str().unwrap_or("?").to_string();
                out.insert(e.file_name().to_string_lossy().into_owned(), state);
            }
        }
    }
    out
}

/// Temporary files a kill left behind (it landed during a write).
fn temporaries(results: &Path) -> usize {
    std::fs::read_dir(results)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

/// How many times runs of the store resumed inside an epoch (from their logs).
fn inside_resumes(results: &Path) -> usize {
    std::fs::read_dir(results)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("log.txt")).ok())
        .map(|log| log.matches("resuming inside epoch").count())
        .sum()
}

/// Run id → its deterministic metrics values.
type SweepMetrics = BTreeMap<String, Vec<((u32, String, String, String), u64)>>;

/// Every metrics file of the store, as deterministic values (panics on an unreadable one).
fn all_metrics(results: &Path) -> SweepMetrics {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(results).into_iter().flatten().flatten() {
        let p = e.path().join("metrics.parquet");
        if p.exists() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                deterministic_metrics(&p),
            );
        }
    }
    out
}

/// Complete the sweep in `ws` and check it against the uninterrupted one.
fn finish_sweep(ws: &Workspace, want: &SweepMetrics) {
    let o = ws.run(&["run", "exp.toml", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = all_metrics(&ws.path().join("results"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (id, rows) in want {
        assert_eq!(
            &got[id], rows,
            "run {id} differs from the uninterrupted sweep"
        );
    }
    let v = ws.run(&["verify"]);
    assert!(
        stdout(&v).contains("5 run folders checked: 0 corrupt"),
        "{}",
        stdout(&v)
    );
}

#[derive(Default)]
struct Tally {
    kills: usize,
    faults: usize,
    in_reports: usize,
    in_writes: usize,
    finished_first: usize,
    lost: usize,
    sweeps: usize,
    with_interval: usize,
    inside_resumes: usize,
}

fn trials(n: usize, seed: u64) {
    let reference = Workspace::new();
    reference.write("exp.toml", &experiment());
    let t0 = Instant::now();
    let o = reference.run(&["run", "exp.toml", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sweep = t0.elapsed();
    let want = all_metrics(&reference.path().join("results"));
    assert_eq!(want.len(), 5);

    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let results = ws.path().join("results");
    let mut rng = SplitMix64::new(seed);
    let mut t = Tally::default();
    for trial in 0..n {
        // A complete sweep is checked against the reference and the next trials start a
        // fresh one, so that kills keep landing in training.
        if states(&results).values().filter(|s| *s == "done").count() == 5 {
            finish_sweep(&ws, &want);
            t.sweeps += 1;
            t.inside_resumes += inside_resumes(&results);
            std::fs::remove_dir_all(&results).unwrap();
        }
        let done_before: BTreeSet<String> = states(&results)
            .into_iter()
            .filter(|(_, s)| s == "done")
            .map(|(id, _)| id)
            .collect();
        // One trial in five kills a report instead, once there is something to report.
        let report = !done_before.is_empty() && rng.next_u64().is_multiple_of(5);
        let interval = !report && rng.next_u64().is_multiple_of(3);
        t.with_interval += usize::from(interval);
        let args: &[&str] = if report {
            &["report", "--format", "html"]
        } else if interval {
            &[
                "--checkpoint-interval",
                "0.02",
                "run",
                "exp.toml",
                "--threads",
                "1",
                "--plain",
            ]
        } else {
            &["run", "exp.toml", "--threads", "1", "--plain"]
        };
        // Every other trial dies at the worst moment of a write instead: the temporary
        // file complete, the rename not done (`HARNESS_FAULT`, see src/util/fault.rs).
        let fault = (trial % 2 == 1).then(|| {
            let files: &[&str] = if report {
                &["report.html"]
            } else {
                &["metrics.parquet", "checkpoint.safetensors", "status.json"]
            };
            let file = files[(rng.next_u64() % files.len() as u64) as usize];
            let n = if report { 1 } else { 1 + rng.next_u64() % 12 };
            (file, n)
        });
        let tmp_before = temporaries(&results);
        let mut cmd = harness(&ws, args);
        if let Some((file, n)) = fault {
            cmd.env("HARNESS_FAULT", format!("die-before-rename:{file}:{n}"));
        }
        let mut child = cmd.spawn().unwrap();
        // Uniform over what is left of the sweep (by runs done; a report is far shorter).
        let left = (5 - done_before.len()) as f64 / 5.0;
        let span = if report {
            Duration::from_millis(150)
        } else {
            sweep.mul_f64(0.9 * left)
        };
        let wait = span.mul_f64((rng.next_u64() % 10_000) as f64 / 10_000.0);
        let how = if let Some((file, n)) = fault {
            // Its own death, or the end of what was left to do.
            if child.wait().unwrap().success() {
                t.finished_first += 1;
                "finished before the fault".to_string()
            } else {
                t.faults += 1;
                t.in_reports += usize::from(report);
                format!("died before renaming {file} (write {n})")
            }
        } else {
            std::thread::sleep(wait);
            if child.try_wait().unwrap().is_some() {
                t.finished_first += 1;
                format!("finished before {:.2} s", wait.as_secs_f64())
            } else {
                child.kill().unwrap(); // SIGKILL
                t.kills += 1;
                t.in_reports += usize::from(report);
                format!("SIGKILL after {:.2} s", wait.as_secs_f64())
            }
        };
        child.wait().unwrap();
        let tmp_after = temporaries(&results);
        if tmp_after > tmp_before {
            t.in_writes += 1;
        }
        let now = states(&results);
        let gone: Vec<&String> = done_before
            .iter()
            .filter(|id| now.get(*id).map(String::as_str) != Some("done"))
            .collect();
        t.lost += gone.len();
        assert!(gone.is_empty(), "trial {trial}: done runs lost: {gone:?}");
        let v = ws.run(&["verify"]);
        assert!(
            v.status.success() && stdout(&v).contains(" 0 corrupt"),
            "trial {trial}: {}",
            stdout(&v)
        );
        all_metrics(&results); // every Parquet file reads
        eprintln!(
            "trial {trial:>2}: {} {how}; {} of 5 runs done",
            if report {
                "report"
            } else if interval {
                "run (checkpoints every 20 ms)"
            } else {
                "run"
            },
            now.values().filter(|s| *s == "done").count()
        );
    }
    finish_sweep(&ws, &want);
    t.sweeps += 1;
    t.inside_resumes += inside_resumes(&results);
    eprintln!(
        "kill trials (seed {seed}): {n} trials over {} sweeps: {} SIGKILLs at random moments and {} deaths between writing a file and renaming it ({} of these in `harness report`), {} trials finished first; {} left a temporary file behind (cleaned by the next run); {} run trials checkpointed every 20 ms, {} resumes inside an epoch; {} completed runs lost, 0 corrupt files, every sweep's metrics (5 runs) equal to the uninterrupted sweep's (uninterrupted: {:.1} s)",
        t.sweeps, t.kills, t.faults, t.in_reports, t.finished_first, t.in_writes,
        t.with_interval, t.inside_resumes, t.lost,
        sweep.as_secs_f64()
    );
}

#[test]
fn a_few_kills_lose_nothing() {
    trials(4, 7);
}

#[test]
#[ignore = "long: `just kill-trials`"]
fn kill_trials() {
    let n = std::env::var("KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2026);
    trials(n, seed);
}

#[test]
fn checkpoints_every_n_epochs_resume_from_the_last_one() {
    let text =
        crate::common::tiny_experiment("ckpt", &["mtl"], &[0]).replace("epochs = 2", "epochs = 7");
    let whole = Workspace::new();
    whole.write("exp.toml", &text);
    assert!(whole
        .run(&["run", "exp.toml", "--threads", "1"])
        .status
        .success());

    let ws = Workspace::new();
    ws.write("exp.toml", &text);
    // Dies while writing epoch 5's metrics: the checkpoint on disk is epoch 3's.
    let o = ws
        .cmd()
        .env("HARNESS_FAULT", "die-before-rename:metrics.parquet:5")
        .args([
            "--checkpoint-every",
            "3",
            "run",
            "exp.toml",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("HARNESS_FAULT: dying before renaming metrics.parquet"));
    let dir = ws.metrics_files()[0].parent().unwrap().to_path_buf();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["epochs_done"], 3, "{status}");
    let o = ws.run(&[
        "--checkpoint-every",
        "3",
        "run",
        "exp.toml",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(log.contains("resuming after epoch 3"), "{log}");
    assert_eq!(
        deterministic_metrics(&ws.metrics_files()[0]),
        deterministic_metrics(&whole.metrics_files()[0])
    );
    let o = ws.run(&["--checkpoint-interval=-1", "run", "exp.toml"]);
    crate::common::assert_bad_input(
        &o,
        &["--checkpoint-interval -1: expected a positive number"],
    );
    let o = ws.run(&["--checkpoint-every", "0", "run", "exp.toml"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A full disk mid-sweep: every failed write is reported with its path and the fix, no file
/// is left half-written or corrupt, and the runs finish once there is room. Needs a
/// size-limited folder: a 120 KiB tmpfs, where the machine lets the test mount one (root);
/// elsewhere it says so and checks nothing.
#[test]
fn a_full_disk_corrupts_nothing_and_says_so() {
    let ws = Workspace::new();
    let full = ws.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=120k", "tmpfs"])
        .arg(&full)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let text = crate::common::tiny_experiment("full", &["mtl"], &[0, 1, 2, 3, 4]);
    ws.write("exp.toml", &text);
    let results = full.join("results");
    let r = results.to_string_lossy().into_owned();
    let o = ws.run(&["--results-dir", &r, "run", "exp.toml", "--threads", "1"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("the disk is full: free space"), "{err}");
    let v = ws.run(&["--results-dir", &r, "verify"]);
    assert!(stdout(&v).contains(" 0 corrupt"), "{}", stdout(&v));
    assert_eq!(temporaries(&results), 0, "half-written files left");
    let done_on_full = states(&results).values().filter(|s| *s == "done").count();
    // Room again: the same command finishes the sweep.
    Command::new("mount")
        .args(["-o", "remount,size=4m"])
        .arg(&full)
        .status()
        .unwrap();
    let o = ws.run(&["--results-dir", &r, "run", "exp.toml", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        states(&results).values().filter(|s| *s == "done").count(),
        5
    );
    let _ = Command::new("umount").arg(&full).status();
    eprintln!(
        "full disk: {done_on_full} of 5 runs done before it filled; the rest after a remount"
    );
}
