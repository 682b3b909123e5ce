//! The crashing inputs the fuzz campaigns found, kept under `fuzz/regressions/<target>/` and
//! replayed by each reader's `fuzz_regressions` test.

use std::path::PathBuf;

/// The regression inputs of `target` whose paths `keep` accepts, in name order; panics (the
/// test fails) when there are none, so a moved folder cannot make a test pass vacuously.
pub fn inputs(target: &str, keep: impl Fn(&std::path::Path) -> bool) -> Vec<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| keep(p))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs in {}", dir.display());
    out
}
