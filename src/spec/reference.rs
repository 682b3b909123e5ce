//! The paper's numbers for an experiment's table (`[reference]` in the experiment file), kept
//! in the experiment's manifest so reports can print them beside ours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::run::Stage;

/// The method key of the paper's "best baseline" rows.
pub const BEST_BASELINE: &str = "best";

/// The column key of a row's average.
pub const AVG: &str = "avg";

/// A table of the paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Where the numbers are printed.
    pub source: String,
    /// Which accuracies they are: `decompose` (pre-training tasks) or `transfer`
    /// (downstream sets).
    pub stage: Stage,
    pub rows: Vec<ReferenceRow>,
}

/// One row: a method (or the best baseline) under one foundation model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRow {
    pub foundation: String,
    /// A method key or [`BEST_BASELINE`].
    pub method: String,
    /// Accuracy in percent per task or downstream key, and [`AVG`].
    pub values: BTreeMap<String, f64>,
}
