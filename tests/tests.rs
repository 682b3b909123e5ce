//! One integration-test binary (as in ripgrep): the tests drive the real `harness` binary
//! in a fresh temporary directory on tiny synthetic or test-written experiments; the
//! validator's tests call its public parse function, and the architecture test reads the
//! sources.

#[path = "it/analysis.rs"]
mod analysis;
#[path = "it/architecture.rs"]
mod architecture;
#[path = "it/bad_inputs.rs"]
mod bad_inputs;
#[path = "it/bad_inputs_data.rs"]
mod bad_inputs_data;
#[path = "it/balancing.rs"]
mod balancing;
#[path = "it/bench.rs"]
mod bench;
#[path = "it/common.rs"]
mod common;
#[path = "it/corruption.rs"]
mod corruption;
#[path = "it/distill.rs"]
mod distill;
#[path = "it/efficiency.rs"]
mod efficiency;
#[path = "it/errors.rs"]
mod errors;
#[path = "it/html_report.rs"]
mod html_report;
#[path = "it/kill_trials.rs"]
mod kill_trials;
#[path = "it/plan.rs"]
mod plan;
#[path = "it/real_data.rs"]
mod real_data;
#[path = "it/regress.rs"]
mod regress;
#[path = "it/run.rs"]
mod run;
#[path = "it/shared_store.rs"]
mod shared_store;
#[path = "it/simd.rs"]
mod simd;
#[path = "it/slurm_cli.rs"]
mod slurm_cli;
#[path = "it/students.rs"]
mod students;
#[path = "it/threads.rs"]
mod threads;
#[path = "it/transfer.rs"]
mod transfer;
#[path = "it/validate.rs"]
mod validate;
