//! How `--device` and `--jobs` become workers: one worker per device and job, and the CPU
//! threads divided between the CPU workers so that N of them do not oversubscribe the cores
//! (each trains in its own thread pool of `threads / N` threads; `threads` is `--threads`, or
//! the machine's cores).
//!
//! `--jobs auto` (the default) gives the CPU one worker per thread, each computing on one
//! thread, plus a pool of all the threads for a run that has the machine to itself (see
//! `sched::local`): the small runs of a sweep gain more from running side by side than from
//! a second thread each (the smoke quickstart's 23 students took 260 s on two 1-thread
//! workers against 349 s one after the other on two threads; 2-core Intel Xeon, AVX-512),
//! while a foundation model that the decomposition stage waits for gets every core. Results
//! do not depend on the thread count (the kernels sum in a fixed order; 24 checkpoints of a
//! shortened quickstart are the same bits at 1 and 2 threads), so neither do they on the
//! schedule. GPUs get one worker each.
//!
//! A single CPU worker gets its own pool too, and its runs execute *inside* it (see
//! `sched::local`): a run driven from a thread outside the pool is a third busy thread on a
//! two-core machine, and whenever it ran the sequential parts of a step the pool's two
//! workers, still spinning for work, took its cores (13 M involuntary context switches in
//! one quickstart).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// Whether candle's pool size is ours to choose (the user did not set `CANDLE_NUM_THREADS`).
static CANDLE_POOL_IS_OURS: AtomicBool = AtomicBool::new(false);

/// candle's element-wise kernels (its adds and multiplies; its backward pass adds every
/// gradient into a fresh zero tensor with them) run on candle's own thread pool, whose
/// threads spin while waiting for work. Beside the rayon pool our kernels use they fought
/// it for the cores (~20% of a training step in spin-waits on two cores), so the pool
/// starts at one thread (the caller's), unless the user chose otherwise; see
/// [`widen_candle_pool`] for when it grows. Call before the first tensor op.
pub(super) fn default_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
        CANDLE_POOL_IS_OURS.store(true, Ordering::Relaxed);
    }
}

/// A single CPU worker computing with `threads` threads gets candle's pool at that size,
/// so that the element-wise ops, run one by one on the worker's first thread otherwise,
/// use every core (they are element-wise, so no result depends on it), and so do our
/// kernels: at that size they run on candle's pool instead of rayon's (see
/// `kernels::parallel`), and its threads keep spinning a while after each op (candle's
/// default) because the next kernel is usually a few µs away. Several workers keep one
/// thread each: candle's pool is one per process and serves one op at a time. It only
/// takes effect before candle's first large element-wise op creates the pool.
pub(super) fn widen_candle_pool(threads: usize) {
    if threads > 1 && CANDLE_POOL_IS_OURS.load(Ordering::Relaxed) {
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    }
}

/// `--jobs`: workers per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// One CPU worker per thread, runs alone on the machine widened to all of them; one
    /// worker per GPU.
    Auto,
    Fixed(usize),
}

impl std::str::FromStr for Jobs {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Jobs, String> {
        if s == "auto" {
            return Ok(Jobs::Auto);
        }
        s.parse()
            .map(Jobs::Fixed)
            .map_err(|_| format!("`{s}` is neither a number of workers nor `auto`"))
    }
}

pub(super) struct Workers {
    /// The device of each worker.
    pub devices: Vec<String>,
    /// Threads each CPU worker computes with (what its runs record).
    pub threads: usize,
    /// Each worker's own thread pool, where CPU workers share the cores.
    pub pools: Vec<Option<rayon::ThreadPool>>,
    /// `--jobs auto` with several CPU workers: a pool of all the threads, for a run that
    /// would otherwise leave the other workers idle.
    pub wide: Option<rayon::ThreadPool>,
}

pub(super) fn layout(devices: &[String], jobs: Jobs, total_threads: usize) -> Result<Workers> {
    let per_device = |d: &String| match jobs {
        Jobs::Fixed(n) => n,
        Jobs::Auto if d == "cpu" => total_threads.max(1),
        Jobs::Auto => 1,
    };
    if jobs == Jobs::Fixed(0) {
        return Err(Error::input("--jobs must be at least 1 (or auto)"));
    }
    let devices: Vec<String> = devices
        .iter()
        .flat_map(|d| std::iter::repeat_n(d.clone(), per_device(d)))
        .collect();
    let cpu_workers = devices.iter().filter(|d| *d == "cpu").count();
    let threads = total_threads / cpu_workers.max(1);
    if threads == 0 {
        return Err(Error::input(format!(
            "{cpu_workers} CPU workers (--device/--jobs) but only {total_threads} threads: each needs one; pass --threads {cpu_workers} or more, or fewer --jobs"
        )));
    }
    if cpu_workers == 1 {
        widen_candle_pool(threads);
    }
    let mut pools = Vec::with_capacity(devices.len());
    for (w, d) in devices.iter().enumerate() {
        if d != "cpu" {
            pools.push(None);
            continue;
        }
        pools.push(Some(cpu_pool(threads, &format!("worker{w}"))?));
    }
    let wide = if jobs == Jobs::Auto && cpu_workers > 1 {
        Some(cpu_pool(total_threads, "wide")?)
    } else {
        None
    };
    Ok(Workers {
        devices,
        threads,
        pools,
        wide,
    })
}

/// A rayon pool of `threads` threads named `name-0`, `name-1`, …
pub(super) fn cpu_pool(threads: usize, name: &str) -> Result<rayon::ThreadPool> {
    let prefix = name.to_string();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{prefix}-{i}"))
        .build()
        .map_err(|e| Error::Failed(format!("cannot start {name}'s {threads} threads: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cpu_jobs_divide_the_threads() {
        let w = layout(&names(&["cpu"]), Jobs::Fixed(3), 8).unwrap();
        assert_eq!(w.devices, names(&["cpu", "cpu", "cpu"]));
        assert_eq!(w.threads, 2);
        assert!(w
            .pools
            .iter()
            .all(|p| p.as_ref().unwrap().current_num_threads() == 2));
    }

    #[test]
    fn one_cpu_worker_gets_a_pool_of_all_the_threads() {
        let w = layout(&names(&["cpu"]), Jobs::Fixed(1), 4).unwrap();
        assert_eq!((w.devices.len(), w.threads), (1, 4));
        assert_eq!(w.pools[0].as_ref().unwrap().current_num_threads(), 4);
    }

    #[test]
    fn gpu_workers_take_no_cpu_share() {
        let w = layout(&names(&["cuda:0", "cuda:1"]), Jobs::Fixed(2), 2).unwrap();
        assert_eq!(w.devices, names(&["cuda:0", "cuda:0", "cuda:1", "cuda:1"]));
        assert!(w.pools.iter().all(Option::is_none));
    }

    #[test]
    fn auto_gives_each_cpu_thread_a_worker_and_a_wide_pool_beside() {
        let w = layout(&names(&["cpu"]), Jobs::Auto, 3).unwrap();
        assert_eq!((w.devices.len(), w.threads), (3, 1));
        assert_eq!(w.wide.as_ref().unwrap().current_num_threads(), 3);
        let one = layout(&names(&["cpu"]), Jobs::Auto, 1).unwrap();
        assert_eq!((one.devices.len(), one.threads), (1, 1));
        assert!(one.wide.is_none(), "one worker has every thread already");
        let gpus = layout(&names(&["cuda:0", "cuda:1"]), Jobs::Auto, 4).unwrap();
        assert_eq!(gpus.devices, names(&["cuda:0", "cuda:1"]));
        assert!(gpus.wide.is_none());
        assert_eq!("auto".parse(), Ok(Jobs::Auto));
        assert_eq!("3".parse(), Ok(Jobs::Fixed(3)));
        assert!("two".parse::<Jobs>().unwrap_err().contains("`two`"));
    }

    #[test]
    fn too_few_threads_is_bad_input() {
        let e = layout(&names(&["cpu"]), Jobs::Fixed(4), 2)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("4 CPU workers"), "{e}");
        assert!(e.contains("--threads 4"), "{e}");
        assert!(layout(&names(&["cpu"]), Jobs::Fixed(0), 2).is_err());
    }
}
