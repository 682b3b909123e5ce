//! Small helpers shared by several modules: atomic file writes, hashing, seeded randomness,
//! allocation counting.

pub mod alloc;
pub mod fs;
pub mod hash;
pub mod linalg;
pub mod location;
pub mod rng;
pub mod seed;
