//! Analyses of finished runs that are not training: representation similarity (CKA) between
//! the experts of a decomposition, as the supplement's Figure 5 shows it.

pub mod cka;
