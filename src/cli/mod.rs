//! Command-line interface. Arguments are parsed by clap, validated into typed options, and
//! only then is work started (as in ripgrep/hyperfine). Each subcommand returns the process
//! exit code; errors propagate as [`Error`] and are mapped by `main`.

pub mod args;
mod bench;
mod efficiency;
mod experiment;
mod memory_check;
mod preflight;
mod regress;
mod slurm;
mod verify;
mod workers;

use std::ffi::OsString;
use std::sync::Arc;

use clap::Parser;

use crate::data::registry_render;
use crate::error::{Error, Result};
use crate::report;
use crate::sched::slurm::arrays::SlurmOptions;
use crate::train::runner::RunContext;
use args::{Cli, Command, DatasetsFormat, ExecutorKind};
use bench::cmd_bench;
use experiment::{cmd_plan, cmd_run, cmd_status, load_registry, report_options};
use workers::Jobs;

/// Parse `args` and execute; returns the exit code.
pub fn run<I, T>(args: I) -> Result<u8>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(code);
        }
    };
    workers::default_candle_pool();
    crate::util::cpu::check_simd_env()?;
    let g = &cli.global;
    match &cli.command {
        Command::Run {
            file,
            profile,
            device,
            jobs,
            threads,
            plain,
            executor,
            slurm: s,
        } => {
            set_threads(*threads)?;
            match executor {
                ExecutorKind::Local => {
                    if s.dry_run
                        || s.partition.is_some()
                        || s.time.is_some()
                        || s.gpus_per_run > 0
                        || !s.sbatch_arg.is_empty()
                    {
                        return Err(Error::input(
                            "--dry-run, --partition, --time, --gpus-per-run and --sbatch-arg belong to --executor slurm",
                        ));
                    }
                    cmd_run(g, file, profile.as_deref(), device, *jobs, *plain)
                }
                ExecutorKind::Slurm => {
                    if !matches!(jobs, Jobs::Auto | Jobs::Fixed(1))
                        || device.iter().any(|d| d != "cpu")
                    {
                        return Err(Error::input(
                            "--executor slurm: Slurm places the runs; use --gpus-per-run (and --threads) instead of --device/--jobs",
                        ));
                    }
                    let opts = SlurmOptions {
                        partition: s.partition.clone(),
                        gpus_per_run: s.gpus_per_run,
                        time: s.time.clone(),
                        threads: *threads,
                        sbatch_args: s.sbatch_arg.clone(),
                        harness_args: checkpoint_args(g),
                    };
                    slurm::cmd_submit(g, file, profile.as_deref(), &opts, s.dry_run)
                }
            }
        }
        Command::Exec {
            run_id,
            experiment,
            device,
            threads,
        } => {
            // Under Slurm the task's CPUs, not the node's: the node may be shared.
            let slurm_cpus = std::env::var("SLURM_CPUS_PER_TASK")
                .ok()
                .and_then(|v| v.parse().ok());
            set_threads(threads.or(slurm_cpus))?;
            slurm::cmd_exec(g, run_id, experiment.as_deref(), device)
        }
        Command::Verify { repair } => verify::cmd_verify(g, *repair),
        Command::Cancel { file, profile } => slurm::cmd_cancel(g, file, profile.as_deref()),
        Command::Plan { file, profile } => cmd_plan(g, file, profile.as_deref()),
        Command::Status { file: None, .. } => cmd_status(g),
        Command::Status {
            file: Some(file),
            profile,
        } => slurm::cmd_status_of(g, file, profile.as_deref()),
        Command::Report {
            experiment,
            format,
            reports_dir,
        } => {
            let registry = load_registry(&g.registry)?;
            let current = crate::store::index::current_runs(&g.results_dir)?;
            if current.is_empty() {
                return Err(Error::input(format!(
                    "no finished runs in {}; run `harness run FILE` first",
                    g.results_dir.display()
                )));
            }
            let opts = report_options(g, &registry, experiment.clone(), *format, reports_dir);
            let rendered = report::render_reports(&opts, Some(&current))?;
            print!("{}", rendered.stdout);
            for file in &rendered.files {
                eprintln!("wrote {}", file.display());
            }
            Ok(0)
        }
        Command::Bench { what } => cmd_bench(what),
        Command::Baseline { what } => regress::cmd_baseline(g, what),
        Command::Regress {
            baseline,
            experiment,
            format,
            confidence,
            min_accuracy_change,
            min_speed_change,
            only,
            reports_dir,
        } => regress::cmd_regress(
            g,
            &regress::RegressArgs {
                baseline,
                experiment: experiment.as_deref(),
                format: *format,
                confidence: *confidence,
                min_accuracy_change: *min_accuracy_change,
                min_speed_change: *min_speed_change,
                only: *only,
                reports_dir,
            },
        ),
        Command::Efficiency {
            file,
            profile,
            eks_bench,
            reports_dir,
        } => efficiency::cmd_efficiency(
            g,
            file,
            profile.as_deref(),
            eks_bench.as_deref(),
            reports_dir,
        ),
        Command::Export { run, task, out } => {
            let ctx = RunContext {
                experiment: String::new(),
                registry: Arc::new(load_registry(&g.registry)?),
                data_dir: g.data_dir.clone(),
                results_dir: g.results_dir.clone(),
                threads: 0,
                checkpoints: Default::default(),
            };
            let exported = crate::expert::export::export(&crate::expert::export::ExportArgs {
                ctx: &ctx,
                run,
                task: task.as_deref(),
                out,
            })?;
            print!("{}", crate::expert::export::render(&exported, out));
            Ok(0)
        }
        Command::Predict { model, inputs, key } => {
            let (expert, preds) = crate::expert::predict::predict(model, inputs, key.as_deref())?;
            if expert.info.data_kind == "synthetic" {
                eprintln!(
                    "note: this expert was trained on SYNTHETIC stand-in data (run {}); its predictions are not clinical or paper results",
                    expert.info.run_id
                );
            }
            print!("{}", crate::expert::predict::render_csv(&expert, &preds));
            Ok(0)
        }
        Command::Datasets { format } => {
            let registry = load_registry(&g.registry)?;
            match format {
                DatasetsFormat::Text => {
                    print!("{}", registry_render::render_status(&registry, &g.data_dir))
                }
                DatasetsFormat::Markdown => {
                    print!("{}", registry_render::render_markdown(&registry))
                }
            }
            Ok(0)
        }
    }
}

/// `--threads N`: the size of the kernels' thread pool. Must happen before the first tensor
/// op creates the pools.
///
/// Without it the default is fixed here too: candle works out its thread count on every
/// matrix product (the heads, LoRKD's experts), and without `RAYON_NUM_THREADS` that means
/// reading /proc/cpuinfo each time (a tenth of the first thread's time in a quickstart
/// LoRKD run).
fn set_threads(threads: Option<usize>) -> Result<()> {
    let n = match threads {
        Some(0) => return Err(Error::input("--threads must be at least 1")),
        Some(n) => n,
        None if std::env::var_os("RAYON_NUM_THREADS").is_some() => return Ok(()),
        None => candle_core::utils::get_num_threads(),
    };
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    Ok(())
}

/// The checkpoint options as flags, for Slurm tasks to pass on.
fn checkpoint_args(g: &args::GlobalArgs) -> Vec<String> {
    let mut out = vec![
        "--checkpoint-every".to_string(),
        g.checkpoint_every.to_string(),
    ];
    if let Some(s) = g.checkpoint_interval {
        out.extend(["--checkpoint-interval".to_string(), s.to_string()]);
    }
    out
}
