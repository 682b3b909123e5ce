//! Several processes on one results folder: two `harness run` of the same experiment started
//! together train every run exactly once between them and give the table one process gives;
//! a run held by a live process is waited for (its temporary files left alone) and taken
//! over once the holder is gone; `--jobs` runs independent runs at once with the threads
//! divided.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{deterministic_metrics, distill_experiment, stderr, stdout, Workspace};

/// Foundation teacher → MTL, MTL-KD and LoRKD students, 2 seeds: 7 runs, the students wait
/// for the teacher.
fn experiment() -> String {
    distill_experiment(
        "shared",
        &["mtl", "mtlkd", "lorkd"],
        "[\"foundation\", \"decompose\"]",
        "",
    )
    .replace("seeds = [0]", "seeds = [0, 1]")
}

/// How many times each run of `results` was started (lines `start …` in its log).
fn starts(results: &Path) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(results).unwrap().flatten() {
        if let Ok(log) = std::fs::read_to_string(e.path().join("log.txt")) {
            let n = log.lines().filter(|l| l.starts_with("start ")).count();
            out.push((e.file_name().to_string_lossy().into_owned(), n));
        }
    }
    out.sort();
    out
}

fn harness(ws: &Workspace) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("harness"));
    c.current_dir(ws.path())
        .env_remove("HARNESS_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn table(ws: &Workspace) -> String {
    let o = ws.run(&["report", "--format", "markdown"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn two_processes_on_one_store_train_each_run_once_and_agree_with_one_process() {
    let shared = Workspace::new();
    shared.write("exp.toml", &experiment());
    let args = ["run", "exp.toml", "--threads", "1", "--plain"];
    let a = harness(&shared).args(args).spawn().unwrap();
    let b = harness(&shared).args(args).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (stderr(&a), stderr(&b));
    assert!(a.status.success(), "process A:\n{ea}\nprocess B:\n{eb}");
    assert!(b.status.success(), "process B:\n{eb}\nprocess A:\n{ea}");
    let results = shared.path().join("results");
    let claims = std::fs::read_to_string(results.join("claims.log")).unwrap();
    eprintln!("claim log:\n{claims}\nprocess A:\n{ea}\nprocess B:\n{eb}");
    let started = starts(&results);
    assert_eq!(started.len(), 7, "{started:?}");
    assert!(
        started.iter().all(|(_, n)| *n == 1),
        "a run was started twice: {started:?}\n{claims}"
    );
    // Between them the two summaries account for every run once as trained here.
    let trained = |e: &str| -> usize {
        let line = e.lines().rev().find(|l| l.contains(" trained, ")).unwrap();
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(trained(&ea) + trained(&eb), 7, "A:\n{ea}\nB:\n{eb}");
    assert!(!claims.contains("took over"), "{claims}");
    for e in [&ea, &eb] {
        assert!(!e.contains("FAILED") && !e.contains("I/O error"), "{e}");
    }

    let alone = Workspace::new();
    alone.write("exp.toml", &experiment());
    let o = alone.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(table(&shared), table(&alone));
    let (mut ms, mut ma) = (shared.metrics_files(), alone.metrics_files());
    ms.sort();
    ma.sort();
    assert_eq!(ms.len(), 7);
    for (s, a) in ms.iter().zip(&ma) {
        assert_eq!(
            s.parent().unwrap().file_name(),
            a.parent().unwrap().file_name()
        );
        assert_eq!(deterministic_metrics(s), deterministic_metrics(a), "{s:?}");
    }
}

/// The run id of the foundation run of `ws`'s plan.
fn foundation_run(ws: &Workspace) -> String {
    let o = ws.run(&["plan", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("foundation"))
        .unwrap_or_else(|| panic!("no foundation run in\n{out}"));
    line.split_whitespace()
        .find(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap()
        .to_string()
}

#[test]
fn a_run_held_by_a_live_process_is_waited_for_then_taken_over() {
    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let run_id = foundation_run(&ws);
    let run_dir = ws.path().join("results").join(&run_id);
    std::fs::create_dir_all(&run_dir).unwrap();
    // A live process on this host holds the teacher's claim, mid-write of its spec.
    let mut holder = Command::new("sleep").arg("30").spawn().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        run_dir.join("claim.lock"),
        serde_json::json!({
            "host": host.trim(), "pid": holder.id(), "pid_start": null,
            "claimed_at": 0.0, "token": "held-by-sleep", "slurm_job": "77_1",
        })
        .to_string(),
    )
    .unwrap();
    let tmp = run_dir.join(format!(".spec.json.{}.0.tmp", holder.id()));
    std::fs::write(&tmp, "{\"half\": ").unwrap();
    let run = harness(&ws)
        .args(["run", "exp.toml", "--threads", "1", "--plain"])
        .spawn()
        .unwrap();
    // While the holder lives, nothing of its run is touched and nothing depending on it starts.
    std::thread::sleep(Duration::from_secs(4));
    assert!(tmp.exists(), "a live claim's temporary file was removed");
    assert!(!run_dir.join("status.json").exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let t0 = Instant::now();
    let o = run.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "WAITING foundation teacher medmnist[10 tasks] seed 0: claimed by pid {} on {} (Slurm job 77_1)",
            holder.id(),
            host.trim()
        )),
        "{err}"
    );
    assert!(err.contains("7 trained, 0 cached, 0 failed"), "{err}");
    assert!(!tmp.exists(), "the dead holder's temporary file stays");
    let claims = std::fs::read_to_string(ws.path().join("results/claims.log")).unwrap();
    let took: Vec<&str> = claims.lines().filter(|l| l.contains("took over")).collect();
    assert_eq!(took.len(), 1, "{claims}");
    assert!(
        took[0].contains(&format!("{run_id} foundation teacher")) && took[0].contains("is gone"),
        "{claims}"
    );
    let log = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert!(log.starts_with("took over the claim from pid"), "{log}");
    assert!(t0.elapsed() < Duration::from_secs(120));
    // Every claim was released.
    for e in std::fs::read_dir(ws.path().join("results"))
        .unwrap()
        .flatten()
    {
        assert!(!e.path().join("claim.lock").exists(), "{:?}", e.path());
    }
}

#[test]
fn cpu_jobs_run_runs_at_once_with_the_threads_divided() {
    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let o = ws.run(&[
        "run",
        "exp.toml",
        "--threads",
        "2",
        "--jobs",
        "2",
        "--plain",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("workers cpu,cpu · 1 thread per CPU worker"),
        "{err}"
    );
    assert!(err.contains("7 trained"), "{err}");
    // Each run records the thread count it computed with, and equals a 1-thread run.
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.metrics_files()[0].with_file_name("status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["threads"], 1);
    let alone = Workspace::new();
    alone.write("exp.toml", &experiment());
    assert!(alone
        .run(&["run", "exp.toml", "--threads", "1"])
        .status
        .success());
    for (a, b) in ws.metrics_files().iter().zip(&alone.metrics_files()) {
        assert_eq!(deterministic_metrics(a), deterministic_metrics(b), "{a:?}");
    }
    let o = ws.run(&["run", "exp.toml", "--threads", "2", "--jobs", "3"]);
    crate::common::assert_bad_input(&o, &["3 CPU workers", "--threads 3"]);
}

#[test]
fn auto_jobs_train_a_lone_foundation_on_every_thread_then_the_students_side_by_side() {
    // A foundation the MTL-KD student waits for, and STL students nobody waits for.
    let exp = distill_experiment(
        "auto",
        &["stl", "mtlkd"],
        "[\"foundation\", \"decompose\"]",
        "",
    );
    let ws = Workspace::new();
    ws.write("exp.toml", &exp);
    let o = ws.run(&["run", "exp.toml", "--threads", "2", "--plain"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("workers cpu,cpu · 1 thread per CPU worker, 2 for a run alone"),
        "{err}"
    );
    // The foundation starts first although the STL students are ready too, and nothing
    // starts until it is done.
    let events: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("] start ") || l.contains("] done "))
        .collect();
    assert!(events.len() >= 6, "{err}");
    assert!(events[0].contains("start foundation"), "{err}");
    assert!(events[1].contains("done   foundation"), "{err}");
    // It computed on both threads, each student on one.
    let mut threads: Vec<(String, u64)> = Vec::new();
    for m in ws.metrics_files() {
        let status: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(m.with_file_name("status.json")).unwrap(),
        )
        .unwrap();
        let label = status["label"].as_str().unwrap_or_default().to_string();
        threads.push((label, status["threads"].as_u64().unwrap()));
    }
    for (label, t) in &threads {
        let want = if label.starts_with("foundation") {
            2
        } else {
            1
        };
        assert_eq!(*t, want, "{label}: {threads:?}");
    }
    // The schedule changes no result: a single worker on one thread gives the same bits.
    let alone = Workspace::new();
    alone.write("exp.toml", &exp);
    let one = alone.run(&["run", "exp.toml", "--threads", "1", "--jobs", "1"]);
    assert!(one.status.success(), "{}", stderr(&one));
    let (a, b) = (ws.metrics_files(), alone.metrics_files());
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(deterministic_metrics(a), deterministic_metrics(b), "{a:?}");
    }
}
