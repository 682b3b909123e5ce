//! One integration-test binary (as in ripgrep): every test drives the real `harness` binary
//! in a fresh temporary directory on tiny synthetic or test-written experiments.

#[path = "it/balancing.rs"]
mod balancing;
#[path = "it/bench.rs"]
mod bench;
#[path = "it/common.rs"]
mod common;
#[path = "it/distill.rs"]
mod distill;
#[path = "it/errors.rs"]
mod errors;
#[path = "it/plan.rs"]
mod plan;
#[path = "it/real_data.rs"]
mod real_data;
#[path = "it/run.rs"]
mod run;
#[path = "it/students.rs"]
mod students;
