//! Command-line interface. Arguments are parsed by clap, validated into typed options, and
//! only then is work started (as in ripgrep/hyperfine). Each subcommand returns the process
//! exit code; errors propagate as [`Error`] and are mapped by `main`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::data::registry::Registry;
use crate::data::{registry_render, source, DataKind};
use crate::error::{Error, Result};
use crate::method::{self, PAPER_METHODS};
use crate::report::{self, ReportOptions};
use crate::sched::dag::Plan;
use crate::sched::local::{run_plan, TrainExecutor};
use crate::sched::progress::Progress;
use crate::spec::expand::expand;
use crate::spec::run::{RunSpec, Stage};
use crate::spec::validate::{self, Experiment};
use crate::store::run_dir::RunDir;
use crate::store::status::{pid_alive, State, Status};
use crate::train::runner::{open_device, RunContext};

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Benchmark harness for low-rank knowledge decomposition (LoRKD) of medical foundation models"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug)]
pub struct GlobalArgs {
    /// Run store.
    #[arg(long, global = true, default_value = "results")]
    pub results_dir: PathBuf,
    /// Root under which real data sets live (see datasets.toml).
    #[arg(long, global = true, env = "HARNESS_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Dataset registry.
    #[arg(long, global = true, default_value = "datasets.toml")]
    pub registry: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment file: expand the grid, skip finished runs, train the rest.
    Run {
        file: PathBuf,
        /// Profile to run (default: the file's default_profile, else `smoke`).
        #[arg(long)]
        profile: Option<String>,
        /// Devices, one worker each: `cpu`, or `cuda:0,cuda:1`.
        #[arg(long, default_value = "cpu", value_delimiter = ',')]
        device: Vec<String>,
        /// CPU threads for tensor kernels (sets RAYON_NUM_THREADS). Same threads + seed +
        /// code = identical metrics.
        #[arg(long)]
        threads: Option<usize>,
        /// Plain progress lines even on a terminal.
        #[arg(long)]
        plain: bool,
    },
    /// Print the expanded runs of an experiment without running anything.
    Plan {
        file: PathBuf,
        #[arg(long)]
        profile: Option<String>,
    },
    /// List runs in the store with their state.
    Status,
    /// Render the decomposition tables from the stored metrics.
    Report {
        /// Only this experiment.
        #[arg(long)]
        experiment: Option<String>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: report::Format,
        /// Where rendered tables are written (`<dir>/<experiment>/`).
        #[arg(long, default_value = "reports")]
        reports_dir: PathBuf,
    },
    /// Speed and memory benchmarks against PyTorch, measured in the same run.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Write one task's expert of a finished run as a standalone safetensors file (LoRKD:
    /// W0 + ΔW_t merged into a plain student), check it against the run's own expert, and
    /// print its parameters and FLOPs next to the foundation model's.
    Export {
        /// Run id (or a unique prefix); `harness status` lists them.
        run: String,
        /// Task key (needed when the run has several tasks).
        #[arg(long)]
        task: Option<String>,
        /// Output file.
        #[arg(long, default_value = "expert.safetensors")]
        out: PathBuf,
    },
    /// Classify images with an exported expert; prints CSV (input, class, probability, p0…).
    Predict {
        /// Expert file written by `harness export`.
        model: PathBuf,
        /// Image files (PNG/JPEG) and/or .npz archives of uint8 images.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Array to read from .npz inputs (default: the one named `*images`).
        #[arg(long)]
        key: Option<String>,
    },
    /// List the registered data sets and whether their files are present.
    Datasets {
        #[arg(long, value_enum, default_value = "text")]
        format: DatasetsFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Training-step throughput (img/s) and peak step memory of reference workloads, plus
    /// per-op timings, next to PyTorch running the same workloads with the same threads.
    Train {
        /// Workloads to run (default: all). Known: resnet18-narrow, resnet18, shufflenetv2.
        #[arg(long = "workload", value_name = "KEY")]
        workloads: Vec<String>,
        /// CPU threads, for both sides.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Untimed steps before timing.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed steps, at least.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Seconds of timed steps, at least.
        #[arg(long, default_value_t = 5.0)]
        min_time: f64,
        /// Seconds per op timing, at least.
        #[arg(long, default_value_t = 0.3)]
        op_min_time: f64,
        /// Back-to-back measurements of both sides per workload; the speed ratio is their
        /// median, which keeps a noisy shared machine from deciding the verdict.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Skip the per-op timings.
        #[arg(long)]
        no_ops: bool,
        /// Skip the PyTorch reference.
        #[arg(long)]
        no_reference: bool,
        /// Python interpreter with torch installed.
        #[arg(long, default_value = "python3")]
        python: String,
        /// The PyTorch reference script.
        #[arg(long, default_value = "benches/reference/torch_train.py")]
        reference_script: PathBuf,
        /// Also write the full results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Training step of the EKS convolution (LoRKD's low-rank experts) in its reference,
    /// task-grouped and LoRA-style forms on one mixed batch, with the ratios.
    Eks {
        /// Tasks mixed in the batch.
        #[arg(long, default_value_t = 10)]
        tasks: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Rank r of the experts.
        #[arg(long, default_value_t = 4)]
        rank: usize,
        /// Scale numerator α (ΔW = α/r · BA).
        #[arg(long, default_value_t = 16.0)]
        alpha: f64,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds per form, shape and round, at least.
        #[arg(long, default_value_t = 0.5)]
        min_time: f64,
        /// Interleaved rounds of the three forms.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Training step of MTL against MoCo-MTL and Aligned-MTL (per-task gradients) on the
    /// ShuffleNetV2 student: step times, peak step memory and their ratios to MTL.
    Balance {
        /// Tasks mixed in the batch.
        #[arg(long, default_value_t = 10)]
        tasks: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds per weighting and round, at least.
        #[arg(long, default_value_t = 1.0)]
        min_time: f64,
        /// Interleaved rounds of the three weightings.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DatasetsFormat {
    Text,
    Markdown,
}

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
    // candle's elementwise kernels run on their own spinning thread pool, which on small
    // machines fights with the rayon pool our convolution and batch-norm kernels use (it cost
    // ~20% of a training step in spin-waits on two cores). Keep candle's pool at one thread
    // unless the user chose otherwise.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let g = &cli.global;
    match &cli.command {
        Command::Run {
            file,
            profile,
            device,
            threads,
            plain,
        } => {
            if let Some(n) = threads {
                if *n == 0 {
                    return Err(Error::input("--threads must be at least 1"));
                }
                // Must happen before the first tensor op creates the thread pools.
                std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            }
            cmd_run(g, file, profile.as_deref(), device, *plain)
        }
        Command::Plan { file, profile } => cmd_plan(g, file, profile.as_deref()),
        Command::Status => cmd_status(g),
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
        Command::Export { run, task, out } => {
            let ctx = RunContext {
                registry: Arc::new(load_registry(&g.registry)?),
                data_dir: g.data_dir.clone(),
                results_dir: g.results_dir.clone(),
                threads: 0,
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

fn cmd_bench(what: &BenchCommand) -> Result<u8> {
    match what {
        BenchCommand::Eks {
            tasks,
            batch,
            rank,
            alpha,
            threads,
            min_time,
            rounds,
            json,
        } => bench_eks(
            crate::bench::eks::EksBenchOptions {
                tasks: *tasks,
                batch: *batch,
                rank: *rank,
                alpha: *alpha,
                threads: *threads,
                min_secs: *min_time,
                rounds: *rounds,
            },
            json.as_deref(),
        ),
        train @ BenchCommand::Train { .. } => bench_train(train),
        BenchCommand::Balance {
            tasks,
            batch,
            threads,
            min_time,
            rounds,
            json,
        } => {
            let o = crate::bench::balance::BalanceBenchOptions {
                tasks: *tasks,
                batch: *batch,
                classes: 10,
                threads: *threads,
                min_secs: *min_time,
                rounds: *rounds,
            };
            if o.tasks < 2 || o.batch < o.tasks || o.threads == 0 || o.rounds == 0 {
                return Err(Error::input(
                    "--tasks must be at least 2, --batch at least --tasks, --threads and --rounds at least 1",
                ));
            }
            if !(o.min_secs.is_finite() && o.min_secs >= 0.0) {
                return Err(Error::input("--min-time must be non-negative seconds"));
            }
            std::env::set_var("RAYON_NUM_THREADS", o.threads.to_string());
            let report = crate::bench::balance::run(&o, |line| eprintln!("{line}"))?;
            print!("{}", crate::bench::balance::render_text(&o, &report));
            if let Some(path) = json {
                let body = serde_json::to_vec_pretty(&(&o, &report))
                    .map_err(|e| Error::Failed(e.to_string()))?;
                crate::util::fs::write_atomic(path, &body)?;
            }
            Ok(0)
        }
    }
}

fn bench_eks(opts: crate::bench::eks::EksBenchOptions, json: Option<&Path>) -> Result<u8> {
    let o = &opts;
    if o.tasks == 0 || o.batch < o.tasks || o.rank == 0 || o.threads == 0 || o.rounds == 0 {
        return Err(Error::input(
            "--tasks, --rank, --threads and --rounds must be at least 1, and --batch at least --tasks",
        ));
    }
    if !(o.min_secs.is_finite() && o.min_secs >= 0.0 && o.alpha.is_finite() && o.alpha > 0.0) {
        return Err(Error::input(
            "--min-time must be non-negative seconds and --alpha positive",
        ));
    }
    // Before the first tensor op creates the thread pool.
    std::env::set_var("RAYON_NUM_THREADS", o.threads.to_string());
    let results = crate::bench::eks::run(o, |line| eprintln!("{line}"))?;
    print!("{}", crate::bench::eks::render_text(o, &results));
    if let Some(path) = json {
        let body =
            serde_json::to_vec_pretty(&(o, &results)).map_err(|e| Error::Failed(e.to_string()))?;
        crate::util::fs::write_atomic(path, &body)?;
    }
    Ok(0)
}

fn bench_train(what: &BenchCommand) -> Result<u8> {
    let BenchCommand::Train {
        workloads,
        threads,
        warmup,
        steps,
        min_time,
        op_min_time,
        rounds,
        no_ops,
        no_reference,
        python,
        reference_script,
        json,
    } = what
    else {
        return Err(Error::input("not a training-step bench"));
    };
    if *threads == 0 || *steps == 0 || *rounds == 0 {
        return Err(Error::input(
            "--threads, --steps and --rounds must be at least 1",
        ));
    }
    if !(min_time.is_finite() && *min_time >= 0.0 && op_min_time.is_finite() && *op_min_time >= 0.0)
    {
        return Err(Error::input(
            "--min-time and --op-min-time must be non-negative seconds",
        ));
    }
    // Before the first tensor op creates the thread pool.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let opts = crate::bench::TrainBenchOptions {
        workloads: workloads.clone(),
        threads: *threads,
        warmup: *warmup,
        min_steps: *steps,
        min_secs: *min_time,
        op_min_secs: *op_min_time,
        rounds: *rounds,
        ops: !no_ops,
        python: python.clone(),
        script: reference_script.clone(),
        reference: !no_reference,
    };
    let results = crate::bench::train(&opts, |line| eprintln!("{line}"))?;
    print!("{}", crate::bench::render_text(&results));
    if let Some(path) = json {
        let body = serde_json::to_vec_pretty(&results).map_err(|e| Error::Failed(e.to_string()))?;
        crate::util::fs::write_atomic(path, &body)?;
    }
    Ok(0)
}

fn load_registry(path: &Path) -> Result<Registry> {
    Registry::load(path)
}

/// Registry + validated experiment + chosen profile + expanded runs.
struct Loaded {
    registry: Registry,
    experiment: Experiment,
    profile: String,
    specs: Vec<RunSpec>,
}

fn load_experiment(g: &GlobalArgs, file: &Path, profile: Option<&str>) -> Result<Loaded> {
    let registry = load_registry(&g.registry)?;
    let experiment = validate::load(file, &registry)?;
    let (profile, p) = experiment.select_profile(profile)?;
    if p.data == DataKind::Real && !g.data_dir.is_dir() {
        return Err(Error::input(format!(
            "data directory {} does not exist (profile `{profile}` of {} uses real data). \
             Place the data sets there (see `harness datasets`), point --data-dir or HARNESS_DATA_DIR at them, \
             or run the synthetic stand-ins with --profile smoke",
            g.data_dir.display(),
            file.display()
        )));
    }
    let specs = expand(&experiment, &profile, &registry, &g.data_dir)?;
    Ok(Loaded {
        registry,
        experiment,
        profile,
        specs,
    })
}

fn cmd_plan(g: &GlobalArgs, file: &Path, profile: Option<&str>) -> Result<u8> {
    let l = load_experiment(g, file, profile)?;
    let plan = Plan::new(l.specs, &g.results_dir)?;
    let kind = plan
        .nodes
        .first()
        .map(|n| n.spec.data.kind.as_str())
        .unwrap_or("-");
    println!(
        "experiment {} · profile {} · data {}{} · {} runs",
        l.experiment.name,
        l.profile,
        kind,
        if kind == "synthetic" {
            " (synthetic stand-ins, not the paper's data)"
        } else {
            ""
        },
        plan.nodes.len()
    );
    println!(
        "{:<10} {:<10} {:<10} {:<12} {:<14} {:>5} {:>7}  {:<16}  status",
        "stage", "method", "teacher", "pretrain", "tasks", "seed", "epochs", "run_id"
    );
    let mut cached = 0;
    for (i, n) in plan.nodes.iter().enumerate() {
        let status = match n.stored {
            _ if plan.is_cached(i) => {
                cached += 1;
                "cached".to_string()
            }
            Some(s) => format!("{} (will resume)", s.as_str()),
            None => "new".to_string(),
        };
        let tasks = if n.spec.tasks.len() == 1 {
            n.spec.tasks[0].clone()
        } else {
            format!("all {} tasks", n.spec.tasks.len())
        };
        // Foundation runs are named by their model; distilling runs show their teacher.
        let (method, teacher) = match (&n.spec.teacher, n.spec.stage) {
            (_, Stage::Foundation) => (n.spec.foundation.clone().unwrap_or_default(), "-"),
            (Some(t), _) => (n.spec.method.clone(), t.name.as_str()),
            (None, _) => (n.spec.method.clone(), "-"),
        };
        println!(
            "{:<10} {:<10} {:<10} {:<12} {:<14} {:>5} {:>7}  {:<16}  {}",
            n.spec.stage.as_str(),
            method,
            teacher,
            n.spec.pretrain,
            tasks,
            n.spec.seed,
            n.spec.train.epochs,
            n.run_id,
            status
        );
    }
    println!("{} to run, {} cached", plan.nodes.len() - cached, cached);
    Ok(0)
}

fn cmd_run(
    g: &GlobalArgs,
    file: &Path,
    profile: Option<&str>,
    devices: &[String],
    plain: bool,
) -> Result<u8> {
    for d in devices {
        open_device(d)?;
    }
    let l = load_experiment(g, file, profile)?;
    let plan = Plan::new(l.specs, &g.results_dir)?;
    let todo: Vec<usize> = (0..plan.nodes.len())
        .filter(|&i| !plan.is_cached(i))
        .collect();
    let registry = Arc::new(l.registry);
    // Load (and validate) every data set the pending runs need before training anything, so
    // bad data is a bad-input error up front rather than a string of failed runs.
    let mut loaded = std::collections::BTreeSet::new();
    for &i in &todo {
        let d = &plan.nodes[i].spec.data;
        if loaded.insert(serde_json::to_string(d).unwrap_or_default()) {
            let ds = source::load(&registry, d, &g.data_dir)?;
            if ds.kind == DataKind::Synthetic {
                eprintln!(
                    "note: `{}` uses SYNTHETIC stand-in data (generated, {} tasks, {} px); results are not paper reproductions",
                    d.dataset,
                    ds.tasks.len(),
                    ds.image_size
                );
            }
        }
    }
    let threads = candle_core::utils::get_num_threads() as u32;
    eprintln!(
        "experiment {} · profile {} · {} runs ({} cached, {} to run) · devices {} · {} threads",
        l.experiment.name,
        l.profile,
        plan.nodes.len(),
        plan.nodes.len() - todo.len(),
        todo.len(),
        devices.join(","),
        threads
    );
    let executor = TrainExecutor {
        ctx: RunContext {
            registry,
            data_dir: g.data_dir.clone(),
            results_dir: g.results_dir.clone(),
            threads,
        },
    };
    let progress = Progress::new(todo.len(), devices.len(), plain);
    let summary = run_plan(&plan, devices, &executor, &progress);
    eprintln!("{}", summary.render());
    if !summary.ok() {
        eprintln!("see results/<run_id>/status.json and log.txt of the runs above; re-running the same command retries them");
    }
    Ok(if summary.ok() { 0 } else { 1 })
}

fn cmd_status(g: &GlobalArgs) -> Result<u8> {
    let mut rows: Vec<Status> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&g.results_dir) {
        for e in entries.flatten() {
            let dir = RunDir { path: e.path() };
            if let Ok(Some(s)) = dir.read_status() {
                rows.push(s);
            }
        }
    }
    if rows.is_empty() {
        println!(
            "no runs in {} (run `harness run FILE` first)",
            g.results_dir.display()
        );
        return Ok(0);
    }
    rows.sort_by(|a, b| a.label.cmp(&b.label));
    let mut interrupted = 0;
    for s in &rows {
        // A run whose process is gone (killed, machine restarted) is not running: the next
        // `harness run` resumes it from its last checkpoint.
        let state = match (s.state, s.pid) {
            (State::Running, Some(pid)) if !pid_alive(pid) => {
                interrupted += 1;
                "interrupted"
            }
            (st, _) => st.as_str(),
        };
        println!(
            "{:<16}  {:<11}  {:>3}/{:<3} epochs  {:>8}  {}{}",
            s.run_id,
            state,
            s.epochs_done,
            s.epochs_total,
            s.wall_time_s
                .map(|w| format!("{w:.1}s"))
                .unwrap_or_default(),
            s.label,
            s.error
                .as_ref()
                .map(|e| format!("  — {e}"))
                .unwrap_or_default()
        );
    }
    if interrupted > 0 {
        eprintln!(
            "{interrupted} interrupted: `harness run FILE` resumes those FILE still plans, from their last finished epoch"
        );
    }
    Ok(0)
}

fn report_options(
    g: &GlobalArgs,
    registry: &Registry,
    experiment: Option<String>,
    format: report::Format,
    reports_dir: &Path,
) -> ReportOptions {
    let task_order: BTreeMap<String, Vec<(String, String)>> = registry
        .datasets
        .iter()
        .map(|d| {
            (
                d.key.clone(),
                d.tasks
                    .iter()
                    .map(|t| (t.key.clone(), t.name.clone()))
                    .collect(),
            )
        })
        .collect();
    ReportOptions {
        results_dir: g.results_dir.clone(),
        reports_dir: reports_dir.to_path_buf(),
        experiment,
        format,
        task_order,
        method_order: PAPER_METHODS.iter().map(|(k, _)| k.to_string()).collect(),
        method_display: PAPER_METHODS
            .iter()
            .map(|(k, _)| (k.to_string(), method::display_name(k)))
            .collect(),
    }
}
