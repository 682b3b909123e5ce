//! Experiment files: the TOML schema ([`file`]), where in the file a problem is
//! ([`location`]), validation into typed options ([`validate`]), the run specification
//! and its content-addressed id ([`run`]), and grid expansion into runs ([`expand`]).
//!
//! Parsing happens in two stages, as in ripgrep/hyperfine: serde reads the file strictly
//! (`deny_unknown_fields`), then validation checks names and values against the method and
//! dataset registries and produces an [`validate::Experiment`] that the planner trusts.

pub mod expand;
pub mod file;
pub mod location;
pub mod run;
pub mod validate;
