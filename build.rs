//! Build-time provenance: the git commit the binary was built from (and whether the working
//! tree differed from it), the candle and polars versions locked in Cargo.lock, and the
//! cargo features enabled. Runs record them (README "Provenance"); a build outside git says
//! so instead of guessing.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The version of `name` in Cargo.lock.
fn locked(lock: &str, name: &str) -> String {
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "unknown".to_string()
}

fn main() {
    // The commit changes with HEAD and its refs; the dirty flag with the index and with any
    // source file the binary is built from. In a `git worktree` `.git` is a file and HEAD
    // and the index live elsewhere, so ask git where; a watched path that does not exist
    // would make cargo rerun this script, and rebuild the crate, on every build.
    let git_dir = git(&["rev-parse", "--git-dir"]);
    let common_dir = git(&["rev-parse", "--git-common-dir"]);
    let mut watched: Vec<String> = ["src", "Cargo.toml", "Cargo.lock", "build.rs"]
        .map(String::from)
        .to_vec();
    if let (Some(git_dir), Some(common_dir)) = (git_dir, common_dir) {
        watched.push(format!("{git_dir}/HEAD"));
        watched.push(format!("{git_dir}/index"));
        watched.push(format!("{common_dir}/refs/heads"));
    }
    for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = commit.as_ref().and_then(|_| {
        // Without --no-optional-locks `git status` rewrites the index to refresh its stat
        // data, and the index is watched: the next build (in a worktree, every other one)
        // ran this script again and recompiled the crate for nothing.
        git(&[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .map(|s| !s.is_empty())
    });
    println!(
        "cargo:rustc-env=KDBENCH_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=KDBENCH_GIT_STATE={}",
        match dirty {
            Some(true) => "dirty",
            Some(false) => "clean",
            None => "built outside git",
        }
    );
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    println!(
        "cargo:rustc-env=KDBENCH_CANDLE_VERSION={}",
        locked(&lock, "candle-core")
    );
    println!(
        "cargo:rustc-env=KDBENCH_POLARS_VERSION={}",
        locked(&lock, "polars")
    );
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_lowercase()))
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!(
        "cargo:rustc-env=KDBENCH_FEATURES={}",
        if features.is_empty() {
            "none".to_string()
        } else {
            features.join(",")
        }
    );
}
