//! The command line as clap reads it: global options, the subcommands and their flags, with
//! the help text users see. Checking the values and doing the work is the subcommands'
//! business (`super::experiment`, `super::bench`).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::workers::Jobs;
use crate::report;

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version = crate::util::provenance::VERSION,
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
    /// Write a run's checkpoint every N epochs (and after the last); a killed run resumes
    /// from its last checkpoint. Results do not depend on it.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub checkpoint_every: u32,
    /// Also write it once this many seconds have passed since the last one, between two
    /// optimiser steps if an epoch is still going (for long epochs); resuming continues
    /// inside the epoch exactly.
    #[arg(long, global = true)]
    pub checkpoint_interval: Option<f64>,
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
        /// Workers per device, each running its own run at once; CPU workers divide the
        /// threads between them (`--device cpu --jobs 4 --threads 8`: 2 threads each).
        /// `auto`: one CPU worker per thread, and a run that has the machine to itself (a
        /// foundation model its students wait for) on all the threads; one worker per GPU.
        #[arg(long, default_value = "auto")]
        jobs: Jobs,
        /// CPU threads for tensor kernels (sets RAYON_NUM_THREADS). Same threads + seed +
        /// code = identical metrics.
        #[arg(long)]
        threads: Option<usize>,
        /// Plain progress lines even on a terminal.
        #[arg(long)]
        plain: bool,
        /// `local` trains here; `slurm` submits one sbatch job array per wave of the plan
        /// (foundation, decompose, transfer, analysis), chained with afterok.
        #[arg(long, value_enum, default_value = "local")]
        executor: ExecutorKind,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Execute one run of the store (what each Slurm array task runs): claim it, train it
    /// (resuming from its checkpoint), record it. Its dependencies must be done.
    Exec {
        run_id: String,
        /// The experiment recorded on its metrics (default: the manifest listing the run).
        #[arg(long)]
        experiment: Option<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// CPU threads for tensor kernels (default: `SLURM_CPUS_PER_TASK` under Slurm, else
        /// the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Check every run of the store against the checksums recorded when its files were
    /// written; exit 1 if any is corrupt. `--repair` sets corrupt runs aside to be redone.
    Verify {
        #[arg(long)]
        repair: bool,
    },
    /// Cancel the queued and running Slurm jobs of an experiment file.
    Cancel {
        file: PathBuf,
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print the expanded runs of an experiment without running anything.
    Plan {
        file: PathBuf,
        #[arg(long)]
        profile: Option<String>,
    },
    /// List runs in the store with their state; with FILE, that experiment's runs, and
    /// Slurm's state of those submitted with `--executor slurm`.
    Status {
        file: Option<PathBuf>,
        #[arg(long)]
        profile: Option<String>,
    },
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
    /// The efficiency table of an experiment file (supplement section D, Table 2): each
    /// method's parameters and MACs from its networks, its measured training speed from
    /// finished runs, and the cost model of per-sample low-rank experts (LoRA, FLoRA, EKS).
    Efficiency {
        file: PathBuf,
        #[arg(long)]
        profile: Option<String>,
        /// `harness bench eks --json` output to show beside the cost model (default:
        /// results/bench/eks.json under the results folder, when it exists).
        #[arg(long)]
        eks_bench: Option<PathBuf>,
        /// Where the table is written (`<dir>/<experiment>/efficiency.md`).
        #[arg(long, default_value = "reports")]
        reports_dir: PathBuf,
    },
    /// Promote an experiment's finished sweep to a baseline (`harness baseline save NAME`).
    Baseline {
        #[command(subcommand)]
        what: BaselineCommand,
    },
    /// Compare an experiment's results with a saved baseline: one verdict (regressed,
    /// improved, within noise) per method, data set, task and metric, from Welch's interval of
    /// the difference of means over seeds. Exit 1 on any regression or failed run.
    Regress {
        /// Baseline name (`<results>/baselines/NAME.parquet`) or a path to a baseline file.
        #[arg(long)]
        baseline: String,
        /// The experiment to check (default: the baseline's; another one is refused).
        #[arg(long)]
        experiment: Option<String>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: RegressFormat,
        /// Two-sided confidence of the intervals.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        /// Smallest accuracy change that counts, in percentage points.
        #[arg(long, default_value_t = 1.0)]
        min_accuracy_change: f64,
        /// Smallest speed change that counts, in percent (speed of small runs moves by
        /// ±15 % between unchanged sweeps on a shared machine; `harness bench` measures finer).
        #[arg(long, default_value_t = 25.0)]
        min_speed_change: f64,
        /// Judge only this quantity (default: accuracy and speed). `accuracy` suits a
        /// machine shared with other work, where speed says more about the neighbours.
        #[arg(long, value_enum)]
        only: Option<RegressQuantity>,
        /// Where the report is also written (`<dir>/<experiment>/regress.md` and `.json`).
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
        /// Workloads to run (default: resnet18-narrow, resnet18, shufflenetv2). Also
        /// shufflenetv2-lorkd: the student with LoRKD experts on a mixed batch, run beside
        /// shufflenetv2 to print what the experts cost (ours, and PyTorch's two forms).
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

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Save the finished runs of an experiment (last epoch, every seed, with provenance) as
    /// `<results>/baselines/NAME.parquet`. Refuses an incomplete sweep or one mixing real and
    /// synthetic data unless --force.
    Save {
        name: String,
        /// Default: the only experiment in the results folder.
        #[arg(long)]
        experiment: Option<String>,
        /// Default: the experiment's only profile.
        #[arg(long)]
        profile: Option<String>,
        /// Save even an incomplete sweep (its finished runs) or a real/synthetic mix.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RegressQuantity {
    Accuracy,
    Speed,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RegressFormat {
    Markdown,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DatasetsFormat {
    Text,
    Markdown,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// Options of `--executor slurm`.
#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    /// Slurm partition of every array.
    #[arg(long, help_heading = "Slurm")]
    pub partition: Option<String>,
    /// GPUs per run (each array task gets them and trains on cuda:0 of its allocation).
    #[arg(long, default_value_t = 0, help_heading = "Slurm")]
    pub gpus_per_run: u32,
    /// Time limit per run (HH:MM:SS, D-HH:MM:SS or minutes).
    #[arg(long, help_heading = "Slurm")]
    pub time: Option<String>,
    /// Further sbatch option for every array, e.g. `--sbatch-arg=--account=lab` (repeatable).
    #[arg(long, allow_hyphen_values = true, help_heading = "Slurm")]
    pub sbatch_arg: Vec<String>,
    /// Print the batch scripts and sbatch commands; submit and write nothing.
    #[arg(long, help_heading = "Slurm")]
    pub dry_run: bool,
}
