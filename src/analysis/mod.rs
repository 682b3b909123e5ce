//! Analyses of trained models: their inference cost (parameters, multiply-accumulates).
//! CKA and the efficiency micro-benchmarks join here with their issues.

pub mod cost;
