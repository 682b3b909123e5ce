//! kdbench: an experiment-tracking benchmark harness for Low-Rank Knowledge Decomposition
//! (LoRKD) of medical foundation models. The binary `harness` is a thin wrapper around
//! [`cli::run`]; everything else lives in this library so integration tests and later
//! front-ends (Slurm `exec`, benches) share one code path.
//!
//! `unsafe` is refused everywhere but in [`kernels`], the counting allocator
//! ([`util::alloc`]) and the kernels' fork-join ([`util::parallel`]), which opt in with
//! `#![allow(unsafe_code)]`.
#![deny(unsafe_code)]

pub mod analysis;
pub mod bench;
pub mod cli;
pub mod data;
pub mod error;
pub mod expert;
pub mod kernels;
pub mod method;
pub mod model;
pub mod report;
pub mod sched;
pub mod spec;
pub mod store;
pub mod train;
pub mod util;

pub use error::{Error, Result};

/// Version of everything that influences a run's numbers. It is part of every run id, so
/// bumping it invalidates cached results. Bump the `train.N` suffix whenever a change alters
/// training numerics (models, losses, data generation, batching, optimisers); plain
/// refactors and report changes keep it, so caches survive ordinary commits.
pub const CODE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+train.5");
