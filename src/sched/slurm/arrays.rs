//! From a plan to sbatch job arrays: the runs still to do, one array per stage (foundation,
//! decompose, transfer, analysis), and the batch script of each. Each array task runs
//! `harness exec RUN_ID` against the shared results folder. An array waits, with
//! `--dependency=afterok:` and `--kill-on-invalid-dep=yes` (without it a job after a failed
//! one pends forever), for the earlier arrays that hold its runs' dependencies; one whose
//! dependencies are all done starts at once. `afterok` is per array, not per run: one failed
//! run cancels the arrays after its own, and submitting again runs what is left.

use std::collections::{BTreeMap, BTreeSet};

use crate::sched::dag::Plan;
use crate::spec::run::Stage;
use std::path::{Path, PathBuf};

/// What `--executor slurm` was asked for.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// GPUs each run gets (`--gpus=N` per array task; the run uses `cuda:0` of them).
    pub gpus_per_run: u32,
    /// Wall-clock limit per run, as sbatch takes it (`HH:MM:SS`, `D-HH:MM:SS`, `MM`).
    pub time: Option<String>,
    /// CPU threads per run (`--cpus-per-task`, and the run's `--threads`).
    pub threads: Option<usize>,
    /// Further sbatch options, one per entry, written into every script.
    pub sbatch_args: Vec<String>,
    /// Global harness options every task passes on (`--checkpoint-every 5`).
    pub harness_args: Vec<String>,
}

/// Where the array tasks find everything: absolute paths, since they start elsewhere.
#[derive(Debug, Clone)]
pub struct ExecPaths {
    pub harness: PathBuf,
    pub results_dir: PathBuf,
    pub data_dir: PathBuf,
    pub registry: PathBuf,
}

/// One stage's array: runs with no dependency among each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    /// `foundation`, `decompose`, `transfer` or `analysis`.
    pub stages: String,
    pub run_ids: Vec<String>,
    pub labels: Vec<String>,
    /// Earlier waves (indices) holding dependencies of these runs.
    pub after: Vec<usize>,
}

/// The runs of `plan` not done yet (and not in `exclude`), one wave per stage present.
pub fn waves(plan: &Plan, exclude: &dyn Fn(&str) -> bool) -> Vec<Wave> {
    let todo: Vec<usize> = plan
        .topological_order()
        .into_iter()
        .filter(|&i| !plan.is_cached(i) && !exclude(&plan.nodes[i].run_id))
        .collect();
    let stages: BTreeSet<Stage> = todo.iter().map(|&i| plan.nodes[i].spec.stage).collect();
    let mut wave_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out: Vec<Wave> = Vec::new();
    for stage in stages {
        let k = out.len();
        let mut w = Wave {
            stages: stage.as_str().to_string(),
            run_ids: Vec::new(),
            labels: Vec::new(),
            after: Vec::new(),
        };
        for &i in todo.iter().filter(|&&i| plan.nodes[i].spec.stage == stage) {
            let node = &plan.nodes[i];
            w.run_ids.push(node.run_id.clone());
            w.labels.push(node.spec.label());
            // A dependency done (or queued by an earlier submission) is no reason to wait.
            w.after
                .extend(node.deps.iter().filter_map(|d| wave_of.get(d).copied()));
            wave_of.insert(i, k);
        }
        w.after.sort_unstable();
        w.after.dedup();
        out.push(w);
    }
    out
}

/// `'text'` for a POSIX shell, whatever it contains.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The batch script of wave `index` of `experiment`; its task logs go to `log_dir`.
pub fn script(
    experiment: &str,
    index: usize,
    wave: &Wave,
    opts: &SlurmOptions,
    paths: &ExecPaths,
    log_dir: &Path,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let name = format!("harness-{experiment}-{}", wave.stages);
    let mut directive = |line: String| s.push_str(&format!("#SBATCH {line}\n"));
    directive(format!("--job-name={name}"));
    directive(format!("--array=0-{}", wave.run_ids.len() - 1));
    directive(format!(
        "--output={}",
        log_dir.join("%x-%A_%a.out").display()
    ));
    directive("--ntasks=1".into());
    if let Some(p) = &opts.partition {
        directive(format!("--partition={p}"));
    }
    if opts.gpus_per_run > 0 {
        directive(format!("--gpus={}", opts.gpus_per_run));
    }
    if let Some(t) = &opts.time {
        directive(format!("--time={t}"));
    }
    if let Some(n) = opts.threads {
        directive(format!("--cpus-per-task={n}"));
    }
    for a in &opts.sbatch_args {
        directive(a.clone());
    }
    s.push_str(&format!(
        "# {} {} run(s) of experiment {experiment} (array {index} of the submission); written by `harness run --executor slurm`.\n",
        wave.run_ids.len(),
        wave.stages
    ));
    s.push_str("set -euo pipefail\nruns=(\n");
    for (id, label) in wave.run_ids.iter().zip(&wave.labels) {
        s.push_str(&format!("  {id}  # {label}\n"));
    }
    s.push_str(")\n");
    let device = if opts.gpus_per_run > 0 {
        "cuda:0"
    } else {
        "cpu"
    };
    let threads = opts
        .threads
        .map(|n| format!(" --threads {n}"))
        .unwrap_or_default();
    s.push_str(&format!(
        "exec {} --results-dir {} --data-dir {} --registry {}{} exec \"${{runs[$SLURM_ARRAY_TASK_ID]}}\" --experiment {} --device {device}{threads}\n",
        shell_quote(&paths.harness.display().to_string()),
        shell_quote(&paths.results_dir.display().to_string()),
        shell_quote(&paths.data_dir.display().to_string()),
        shell_quote(&paths.registry.display().to_string()),
        opts.harness_args
            .iter()
            .map(|a| format!(" {}", shell_quote(a)))
            .collect::<String>(),
        shell_quote(experiment),
    ));
    s
}

/// The sbatch arguments that start an array once the array jobs `after` all succeeded.
pub fn dependency_args(after: &[String]) -> Vec<String> {
    if after.is_empty() {
        return Vec::new();
    }
    vec![
        format!("--dependency=afterok:{}", after.join(":")),
        "--kill-on-invalid-dep=yes".into(),
    ]
}

/// Check a `--time` value the way sbatch reads it: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
/// `D-HH:MM`, `D-HH:MM:SS`.
pub fn valid_time(t: &str) -> bool {
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    let digits = |p: &str| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit());
    if days.is_some_and(|d| !digits(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.len() <= 3 && parts.iter().all(|p| digits(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave() -> Wave {
        Wave {
            stages: "decompose".into(),
            run_ids: vec!["aaaa000000000001".into(), "aaaa000000000002".into()],
            labels: vec!["decompose mtl seed 0".into(), "decompose mtl seed 1".into()],
            after: vec![0],
        }
    }

    fn paths() -> ExecPaths {
        ExecPaths {
            harness: "/opt/it's here/harness".into(),
            results_dir: "/shared/results".into(),
            data_dir: "/shared/data".into(),
            registry: "/shared/datasets.toml".into(),
        }
    }

    #[test]
    fn a_script_runs_one_run_per_array_task() {
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            gpus_per_run: 1,
            time: Some("02:00:00".into()),
            threads: Some(8),
            sbatch_args: vec!["--account=lab".into()],
            harness_args: vec!["--checkpoint-every".into(), "5".into()],
        };
        let s = script(
            "table3",
            1,
            &wave(),
            &opts,
            &paths(),
            Path::new("/shared/logs"),
        );
        for line in [
            "#!/bin/bash\n",
            "#SBATCH --job-name=harness-table3-decompose\n",
            "#SBATCH --array=0-1\n",
            "#SBATCH --output=/shared/logs/%x-%A_%a.out\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gpus=1\n",
            "#SBATCH --time=02:00:00\n",
            "#SBATCH --cpus-per-task=8\n",
            "#SBATCH --account=lab\n",
            "  aaaa000000000002  # decompose mtl seed 1\n",
            "exec '/opt/it'\\''s here/harness' --results-dir '/shared/results' --data-dir '/shared/data' --registry '/shared/datasets.toml' '--checkpoint-every' '5' exec \"${runs[$SLURM_ARRAY_TASK_ID]}\" --experiment 'table3' --device cuda:0 --threads 8\n",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        // The directives come before the first command, or sbatch ignores them.
        let last_directive = s.rfind("#SBATCH").unwrap();
        assert!(last_directive < s.find("set -euo").unwrap());
        let cpu = script(
            "t",
            0,
            &wave(),
            &SlurmOptions::default(),
            &paths(),
            Path::new("/l"),
        );
        assert!(
            cpu.contains("--device cpu\n") && !cpu.contains("--gpus"),
            "{cpu}"
        );
    }

    #[test]
    fn arrays_wait_for_all_the_arrays_they_need() {
        assert!(dependency_args(&[]).is_empty());
        assert_eq!(
            dependency_args(&["12".into(), "13".into()]),
            ["--dependency=afterok:12:13", "--kill-on-invalid-dep=yes"]
        );
    }

    #[test]
    fn time_limits_as_sbatch_reads_them() {
        for ok in ["30", "30:00", "02:00:00", "1-00", "1-12:00", "2-00:00:00"] {
            assert!(valid_time(ok), "{ok}");
        }
        for bad in ["", "2h", "1:2:3:4", "-5", "1-", "ab:cd"] {
            assert!(!valid_time(bad), "{bad}");
        }
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
