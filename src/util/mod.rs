//! Small helpers shared by several modules: atomic file writes, hashing, seeded randomness.

pub mod fs;
pub mod hash;
pub mod rng;
