//! Fork-join for the kernels and the optimiser: every parallel loop of a training step
//! runs here, on candle's barrier pool when that pool is the calling worker's size, else on
//! rayon.
//!
//! Why not rayon alone: a rayon worker with nothing to do yields 32 times and then sleeps,
//! so between two kernels of a step (a few µs of sequential candle ops) the second thread
//! is asleep again, and every kernel begins by waking it. On a virtual machine whose idle
//! vCPUs halt at once (cpuidle `haltpoll` with `guest_halt_poll_ns = 0`, see `util::idle`)
//! a wake-up goes through the host and the driving thread often did the whole loop alone:
//! `harness bench train --workload shufflenetv2` ran whole rounds at 300 img/s instead of
//! 380 (2-core AMD EPYC, AVX-512), and 10 rounds of 10 were fast once the guest polled
//! 200 µs before halting. candle's barrier pool, which its element-wise ops already use,
//! is what an OpenMP runtime (PyTorch's) does: its threads spin for a while after each job
//! before parking, so the next kernel finds them awake, and the element-wise ops and the
//! kernels share one set of threads instead of two pools fighting over the cores.
//!
//! The pool is one per process and serves one caller at a time, so it is used only when
//! it has as many threads as the calling rayon pool (a single worker widened to all the
//! cores, see `cli::workers`); workers that share the cores keep rayon. A loop started
//! inside another loop's body runs on the calling thread.
//!
//! Results never depend on which thread ran which item: each item writes its own outputs,
//! and no sum crosses items.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

thread_local! {
    /// Set while this thread runs a loop's body.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the thread as inside a loop body until dropped (restoring what it was, so a
/// panic unwinding through a body leaves the flag right).
struct Inside(bool);

impl Inside {
    fn enter() -> Self {
        Inside(INSIDE.with(|f| f.replace(true)))
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.with(|f| f.set(self.0));
    }
}

/// candle's barrier pool where it has as many threads as the calling rayon pool (two or
/// more), else `None`.
fn barrier_pool() -> Option<&'static candle_core::utils::BarrierPool> {
    let threads = rayon::current_num_threads();
    if threads < 2 {
        return None;
    }
    let pool = candle_core::utils::barrier_pool();
    (pool.n_workers() + 1 == threads).then_some(pool)
}

/// Threads a loop started here runs on (for callers that split work by thread count).
pub fn threads() -> usize {
    if INSIDE.with(Cell::get) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Runs `body(state, items)` over the items `0..n`, in consecutive ranges taken by the
/// threads as they come free (about eight per thread, so a late thread costs little);
/// `state` is made by `init` once per thread that takes a range.
fn run<S>(n: usize, init: impl Fn() -> S + Sync, body: impl Fn(&mut S, Range<usize>) + Sync) {
    if n == 0 {
        return;
    }
    let threads = threads();
    if threads < 2 || n < 2 {
        // Not marked as inside: a single item's own loops may still use every thread.
        body(&mut init(), 0..n);
        return;
    }
    let grain = n.div_ceil(8 * threads).max(1);
    let groups = n.div_ceil(grain);
    let range = |g: usize| g * grain..((g + 1) * grain).min(n);
    match barrier_pool() {
        Some(pool) => {
            let next = AtomicUsize::new(0);
            // A panic must not unwind through candle's pool: it would poison the pool's
            // lock for every later element-wise op. The first one is raised here instead.
            let panicked = Mutex::new(None);
            pool.execute(|_thread| {
                let _inside = Inside::enter();
                let mut state = None;
                let work = AssertUnwindSafe(|| loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    if g >= groups {
                        break;
                    }
                    body(state.get_or_insert_with(&init), range(g));
                });
                if let Err(payload) = std::panic::catch_unwind(work) {
                    // The other threads find nothing left instead of running on.
                    next.store(groups, Ordering::Relaxed);
                    let mut first = panicked.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert(payload);
                }
            });
            if let Some(payload) = panicked.into_inner().unwrap_or_else(|e| e.into_inner()) {
                std::panic::resume_unwind(payload);
            }
        }
        None => (0..groups)
            .into_par_iter()
            .for_each_init(&init, |state, g| {
                let _inside = Inside::enter();
                body(state, range(g))
            }),
    }
}

/// A `*mut T` that threads may share: [`for_each_chunk_mut_init`] hands each chunk of the
/// slice it points into to exactly one thread.
struct SharedMut<T>(*mut T);

// SAFETY: only disjoint chunks are made from the pointer, each on one thread, while the
// `&mut [T]` it came from is borrowed; `T: Send` lets a chunk move to that thread.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper rather
    /// than its raw-pointer field).
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `f(state, i, chunk)` for every `size`-element chunk of `data` (the last one may be
/// shorter), `i` counting from 0; `state` as in `for_each_init` of rayon.
pub fn for_each_chunk_mut_init<T: Send, S>(
    data: &mut [T],
    size: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [T]) + Sync,
) {
    assert!(size > 0, "chunk size must be positive");
    let len = data.len();
    let base = SharedMut(data.as_mut_ptr());
    run(len.div_ceil(size), init, |state, chunks| {
        for i in chunks {
            let start = i * size;
            let n = size.min(len - start);
            // SAFETY: chunk `i` is `start..start + n` of `data`, inside it, and `run` gives
            // every chunk index to one call only, so no two chunks alias.
            let chunk = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), n) };
            f(state, i, chunk);
        }
    });
}

/// `f(i, chunk)` for every `size`-element chunk of `data`.
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    size: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_each_chunk_mut_init(data, size, || (), |_, i, chunk| f(i, chunk));
}

/// `[f(0), f(1), …, f(n - 1)]`.
pub fn map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let mut slots: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for_each_chunk_mut(&mut slots, 1, |i, slot| slot[0] = Some(f(i)));
    slots
        .into_iter()
        .map(|r| r.expect("every index was computed"))
        .collect()
}

/// `f(item)` for every item, each moved to the thread that takes it.
pub fn for_each_item<I: Send>(items: Vec<I>, f: impl Fn(I) + Sync) {
    let mut slots: Vec<Option<I>> = items.into_iter().map(Some).collect();
    for_each_chunk_mut(&mut slots, 1, |_, slot| {
        if let Some(item) = slot[0].take() {
            f(item);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_chunk_is_visited_once_with_its_index() {
        for (len, size) in [(0, 3), (1, 1), (10, 3), (1000, 7), (4096, 64), (5, 10)] {
            let mut v = vec![0u32; len];
            for_each_chunk_mut(&mut v, size, |i, chunk| {
                assert!(chunk.len() <= size && !chunk.is_empty());
                for (j, x) in chunk.iter_mut().enumerate() {
                    *x += (i * size + j) as u32 + 1;
                }
            });
            let want: Vec<u32> = (1..=len as u32).collect();
            assert_eq!(v, want, "len {len}, size {size}");
        }
    }

    #[test]
    fn map_keeps_the_order_and_items_move_once() {
        assert_eq!(
            map(100, |i| i * i),
            (0..100).map(|i| i * i).collect::<Vec<_>>()
        );
        let sum = AtomicU64::new(0);
        for_each_item((1..=50u64).map(Box::new).collect(), |b| {
            sum.fetch_add(*b, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 50 * 51 / 2);
    }

    #[test]
    fn state_is_made_at_most_once_per_thread_and_nested_loops_run_inline() {
        let inits = AtomicUsize::new(0);
        let mut v = vec![0usize; 10_000];
        for_each_chunk_mut_init(
            &mut v,
            10,
            || inits.fetch_add(1, Ordering::Relaxed),
            |_, i, chunk| {
                assert_eq!(threads(), 1);
                // A nested loop: inline on this thread, still complete.
                for_each_chunk_mut(chunk, 3, |_, c| c.iter_mut().for_each(|x| *x = i));
            },
        );
        assert!(inits.load(Ordering::Relaxed) <= rayon::current_num_threads().max(1));
        assert!(v
            .chunks(10)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&x| x == i)));
    }

    #[test]
    fn several_callers_at_once_each_get_their_results() {
        std::thread::scope(|s| {
            for t in 0..4usize {
                s.spawn(move || {
                    for round in 0..50usize {
                        let got = map(257, |i| i * t + round);
                        assert!(got.iter().enumerate().all(|(i, &x)| x == i * t + round));
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_body_reaches_the_caller() {
        let r =
            std::panic::catch_unwind(|| map(64, |i| if i == 40 { panic!("item 40") } else { i }));
        assert!(r.is_err());
        // The pool and the flag are fine afterwards.
        assert_eq!(threads(), rayon::current_num_threads());
        assert_eq!(map(3, |i| i + 1), vec![1, 2, 3]);
    }
}
