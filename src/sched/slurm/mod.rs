//! The Slurm executor: the same plan the local scheduler runs, as sbatch job arrays, one
//! per wave of the plan ([`arrays`]), submitted in order and chained with `afterok`
//! ([`submission`]), each task executing one run with `harness exec RUN_ID` against the
//! shared results folder, under the same claims as local workers. [`queue`] asks Slurm what
//! became of the tasks. No home-made distribution: Slurm schedules, the store records.

pub mod arrays;
pub mod queue;
pub mod submission;
