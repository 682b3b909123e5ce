//! A fault-injection point for the kill trials (`just kill-trials`): with
//! `HARNESS_FAULT=die-before-rename:<file name>:<n>` set, the process aborts (no destructors,
//! no cleanup, as under SIGKILL) the n-th time it has fully written the temporary file of
//! `<file name>` and is about to rename it into place: the worst moment of an atomic write.
//! Unset, it costs one cached environment lookup per write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Fault {
    file: String,
    at: u64,
}

fn fault() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let v = std::env::var("HARNESS_FAULT").ok()?;
            let rest = v.strip_prefix("die-before-rename:")?;
            let (file, n) = rest.rsplit_once(':')?;
            Some(Fault {
                file: file.to_string(),
                at: n.parse().ok()?,
            })
        })
        .as_ref()
}

/// Called between writing a temporary file for `file_name` and renaming it.
pub fn before_rename(file_name: &str) {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    if let Some(f) = fault() {
        if f.file == file_name && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == f.at {
            eprintln!("HARNESS_FAULT: dying before renaming {file_name} into place");
            std::process::abort();
        }
    }
}
