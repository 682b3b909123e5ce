//! `--executor slurm` without a cluster: the dry run, submission through stand-in Slurm
//! commands (scripts on PATH that answer like Slurm 22.05 and record their arguments),
//! `harness exec` of submitted runs, `harness status FILE` and `harness cancel FILE`, and
//! the bad inputs of all of them. `.ci/slurm-test.sh` runs the same against a real Slurm.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{assert_bad_input, distill_experiment, stderr, stdout, Workspace};

fn experiment() -> String {
    distill_experiment(
        "sl",
        &["mtl", "lorkd"],
        "[\"foundation\", \"decompose\"]",
        "",
    )
}

/// A folder of stand-in `sbatch`, `squeue`, `scontrol` and `scancel` scripts: sbatch hands
/// out job ids 42, 43, …; squeue prints `squeue.txt`; every call is appended to `calls.txt`.
fn fake_slurm(ws: &Workspace) -> PathBuf {
    let bin = ws.path().join("fake-slurm");
    std::fs::create_dir_all(&bin).unwrap();
    let d = bin.display();
    let scripts = [
        (
            "sbatch",
            format!("n=$(cat {d}/next 2>/dev/null || echo 42); echo $((n + 1)) > {d}/next; echo \"sbatch $*\" >> {d}/calls.txt; echo $n"),
        ),
        ("squeue", format!("echo \"squeue $*\" >> {d}/calls.txt; cat {d}/squeue.txt 2>/dev/null; true")),
        ("scontrol", format!("echo \"scontrol $*\" >> {d}/calls.txt")),
        ("scancel", format!("echo \"scancel $*\" >> {d}/calls.txt")),
    ];
    for (name, body) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn with_path(ws: &Workspace, bin: &Path, args: &[&str]) -> std::process::Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    ws.cmd().env("PATH", path).args(args).output().unwrap()
}

fn calls(bin: &Path) -> String {
    std::fs::read_to_string(bin.join("calls.txt")).unwrap_or_default()
}

/// (run id, label) of each run of the plan, in plan order.
fn plan_runs(ws: &Workspace) -> Vec<(String, String)> {
    let out = stdout(&ws.run(&["plan", "exp.toml"]));
    out.lines()
        .filter_map(|l| {
            let id = l
                .split_whitespace()
                .find(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))?;
            Some((
                id.to_string(),
                l.split_whitespace().take(2).collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
}

#[test]
fn a_dry_run_prints_one_array_per_stage_and_writes_nothing() {
    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let o = ws.run(&[
        "run",
        "exp.toml",
        "--executor",
        "slurm",
        "--dry-run",
        "--time",
        "1:00:00",
        "--partition",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("#!/bin/bash").count(), 2, "{out}");
    assert!(
        out.contains("#SBATCH --job-name=harness-sl-foundation\n#SBATCH --array=0-0\n"),
        "{out}"
    );
    assert!(
        out.contains("#SBATCH --job-name=harness-sl-decompose\n#SBATCH --array=0-1\n"),
        "{out}"
    );
    assert!(
        out.contains("--dependency=afterok:$JOB_0 --kill-on-invalid-dep=yes"),
        "{out}"
    );
    assert!(
        out.contains("#SBATCH --partition=cpu\n#SBATCH --time=1:00:00\n"),
        "{out}"
    );
    assert!(stderr(&o).contains("dry run: 3 runs in 2 arrays, nothing written or submitted"));
    assert!(!ws.path().join("results").exists());
}

#[test]
fn submitted_runs_execute_through_harness_exec_and_show_in_status() {
    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let bin = fake_slurm(&ws);
    let o = with_path(
        &ws,
        &bin,
        &["run", "exp.toml", "--executor", "slurm", "--threads", "1"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("submitted 3 runs in 2 arrays"), "{err}");
    assert!(
        err.contains("job 43       decompose  2 runs, after job 42 succeeds"),
        "{err}"
    );
    let c = calls(&bin);
    let sbatch: Vec<&str> = c.lines().filter(|l| l.starts_with("sbatch")).collect();
    assert_eq!(sbatch.len(), 2, "{c}");
    assert!(
        sbatch[0].starts_with("sbatch --parsable /") && sbatch[0].ends_with("0-foundation.sbatch")
    );
    assert!(sbatch[1]
        .starts_with("sbatch --parsable --dependency=afterok:42 --kill-on-invalid-dep=yes /"));
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join("results/slurm/sl/submissions.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record[0]["arrays"][1]["job_id"], "43");
    assert_eq!(record[0]["arrays"][1]["runs"].as_array().unwrap().len(), 2);

    let runs = plan_runs(&ws);
    let id_of = |what: &str| runs.iter().find(|(_, l)| l == what).unwrap().0.clone();
    let (teacher, student) = (id_of("foundation teacher"), id_of("decompose lorkd"));
    // A student before its teacher: refused, exit 1.
    let o = ws.run(&["exec", &student, "--threads", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("dependency {teacher} is not started, not done")),
        "{}",
        stderr(&o)
    );
    let o = ws.run(&["exec", &teacher, "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 trained, 0 cached"), "{}", stderr(&o));
    let o = ws.run(&["exec", &teacher]);
    assert!(stderr(&o).contains("already done"), "{}", stderr(&o));
    let o = ws.run(&["exec", &student, "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics =
        std::fs::read_to_string(ws.path().join("results").join(&student).join("spec.json"))
            .unwrap();
    assert!(metrics.contains("lorkd"));

    // Status: the store's state, and Slurm's for what squeue still lists.
    std::fs::write(
        bin.join("squeue.txt"),
        "43_0|RUNNING|node-a\n43_1|PENDING|(Resources)\n",
    )
    .unwrap();
    let o = with_path(&ws, &bin, &["status", "exp.toml"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("43_0 RUNNING (node-a)"), "{out}");
    assert!(out.contains("43_1 PENDING (Resources)"), "{out}");
    assert!(out.contains("42_0 (gone from Slurm)"), "{out}");
    assert_eq!(
        out.lines().last().unwrap(),
        "2 done, 1 not started",
        "{out}"
    );
    assert!(calls(&bin).contains("squeue --array -h -j 42,43 -o %i|%T|%R"));

    // Submitting again leaves out runs done and runs Slurm still has queued or running.
    let o = with_path(&ws, &bin, &["run", "exp.toml", "--executor", "slurm"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("nothing to submit (3 runs: 2 done, 1 queued or running in Slurm)"),
        "{err}"
    );
    let o = with_path(&ws, &bin, &["cancel", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("cancelled array jobs 43 (2 tasks queued or running)"),
        "{}",
        stdout(&o)
    );
    assert!(
        calls(&bin).lines().any(|l| l == "scancel 43"),
        "{}",
        calls(&bin)
    );
    // Once Slurm has let go of it, the unfinished run is submitted alone, waiting for nothing.
    std::fs::write(bin.join("squeue.txt"), "").unwrap();
    let o = with_path(&ws, &bin, &["run", "exp.toml", "--executor", "slurm"]);
    let err = stderr(&o);
    assert!(
        err.contains("submitted 1 run in 1 array (2 done, 0 already queued)"),
        "{err}"
    );
    let c = calls(&bin);
    let last = c.lines().rfind(|l| l.starts_with("sbatch")).unwrap();
    assert!(
        !last.contains("--dependency") && last.ends_with("0-decompose.sbatch"),
        "{last}"
    );
}

#[test]
fn slurm_flags_and_exec_arguments_are_checked() {
    let ws = Workspace::new();
    ws.write("exp.toml", &experiment());
    let o = ws.run(&[
        "run",
        "exp.toml",
        "--executor",
        "slurm",
        "--time",
        "2h",
        "--dry-run",
    ]);
    assert_bad_input(&o, &["--time 2h: expected HH:MM:SS"]);
    let o = ws.run(&["run", "exp.toml", "--dry-run"]);
    assert_bad_input(&o, &["belong to --executor slurm"]);
    let o = ws.run(&["run", "exp.toml", "--executor", "slurm", "--jobs", "2"]);
    assert_bad_input(&o, &["use --gpus-per-run"]);
    let o = ws.run(&["exec", "0123456789abcdef"]);
    assert_bad_input(
        &o,
        &["run 0123456789abcdef: no", "spec.json", "--executor slurm"],
    );
    let empty = ws.path().join("no-slurm-here");
    std::fs::create_dir_all(&empty).unwrap();
    let o = ws
        .cmd()
        .env("PATH", &empty)
        .args(["run", "exp.toml", "--executor", "slurm"])
        .output()
        .unwrap();
    assert_bad_input(&o, &["`sbatch` is not on PATH", "--dry-run"]);
    // Nothing submitted: cancel has nothing to do and says so, without asking Slurm.
    let o = ws
        .cmd()
        .env("PATH", &empty)
        .args(["cancel", "exp.toml"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("experiment sl: no queued or running Slurm jobs"));
}
