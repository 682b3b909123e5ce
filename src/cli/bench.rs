//! `harness bench …`: checks the flags of each benchmark, caps the thread pool, runs it and
//! prints (and optionally writes as JSON) its figures.

use std::path::Path;

use super::args::BenchCommand;
use crate::bench;
use crate::error::{Error, Result};
use crate::util::fs::write_json_atomic;

pub(super) fn cmd_bench(what: &BenchCommand) -> Result<u8> {
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
            bench::eks::EksBenchOptions {
                tasks: *tasks,
                batch: *batch,
                rank: *rank,
                alpha: *alpha,
                threads: *threads,
                min_secs: *min_time,
                rounds: *rounds,
                instruction_set: crate::util::cpu::instruction_set().to_string(),
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
            let o = bench::balance::BalanceBenchOptions {
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
            let report = in_own_pool(o.threads, || {
                bench::balance::run(&o, |line| eprintln!("{line}"))
            })?;
            print!("{}", bench::balance::render_text(&o, &report));
            if let Some(path) = json {
                write_json_atomic(path, &(&o, &report))?;
            }
            Ok(0)
        }
    }
}

fn bench_eks(opts: bench::eks::EksBenchOptions, json: Option<&Path>) -> Result<u8> {
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
    let results = in_own_pool(o.threads, || bench::eks::run(o, |line| eprintln!("{line}")))?;
    print!("{}", bench::eks::render_text(o, &results));
    if let Some(path) = json {
        write_json_atomic(path, &(o, &results))?;
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
    let opts = bench::TrainBenchOptions {
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
    let results = in_own_pool(*threads, || bench::train(&opts, |line| eprintln!("{line}")))?;
    print!("{}", bench::render_text(&results));
    if let Some(path) = json {
        write_json_atomic(path, &results)?;
    }
    Ok(0)
}

/// Runs a bench inside a pool of `threads` threads, as `harness run` runs its runs (see
/// `cli::workers`): timed from a thread outside the pool, every step would also time the
/// pool's spinning workers taking the cores from the thread that drives it.
/// candle's pool is widened as a single worker's is.
fn in_own_pool<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    super::workers::widen_candle_pool(threads);
    super::workers::cpu_pool(threads, "bench")?.install(f)
}
