//! Small helpers shared by several modules: atomic file writes, hashing, seeded randomness,
//! allocation counting, the CPU's instruction set, base64 for inlined figures.

pub mod alloc;
pub mod base64;
pub mod cpu;
pub mod fault;
pub mod fs;
#[cfg(test)]
pub mod fuzz_regressions;
pub mod hash;
pub mod linalg;
pub mod location;
pub mod no_panic;
pub mod parallel;
pub mod provenance;
pub mod rng;
pub mod seed;
pub mod student_t;
pub mod text_file;
