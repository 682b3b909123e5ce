//! Experiment files: the TOML schema ([`file`](mod@file)), validation into a typed experiment
//! ([`validate`]), the run specification and its content-addressed id ([`run`]), the plain
//! method settings runs carry ([`options`]) and how methods read them ([`settings`],
//! [`catalog`]), and grid expansion into runs ([`expand`], with the analysis runs of [`analysis_plan`]).
//!
//! Parsing happens in two stages, as in ripgrep/hyperfine: serde reads the file strictly
//! (`deny_unknown_fields`, enums for closed sets of names), then validation checks names and
//! values against the dataset registry and the method catalogue and produces a
//! [`validate::Experiment`] that the planner trusts. This layer holds configuration only:
//! it imports no method (the caller passes a [`catalog::MethodCatalog`]) and no network.

pub mod analysis_plan;
pub mod catalog;
pub mod expand;
pub mod file;
pub mod options;
pub mod reference;
pub mod run;
pub mod settings;
pub mod validate;
