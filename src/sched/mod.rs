//! Scheduling: the plan DAG ([`dag`]), the local executor that runs it with one worker per
//! device ([`local`]), and progress reporting ([`progress`]). Deciding what to run (the plan,
//! cache checks) is separate from doing it (the [`local::Executor`]), so the scheduler can be
//! tested with a mock executor.

pub mod dag;
pub mod local;
pub mod progress;
pub mod slurm;
pub mod work;
