//! Analyses of finished runs that train nothing: representation similarity (CKA) between
//! the experts of a decomposition, as the supplement's Figure 5 shows it. [`cka`] holds the
//! estimators, [`similarity`] the analysis stage that extracts the experts' features and
//! writes the task-similarity matrices.

pub mod cka;
pub mod similarity;
