//! The process-wide memory cache of generated data sets, and the atomic file write behind
//! the on-disk cache; the caches' keys and their use live in the parent module.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::data::Dataset;
use crate::error::{Error, Result};

type MemoryCache = Mutex<HashMap<String, Arc<Dataset>>>;

fn memory() -> &'static MemoryCache {
    static CACHE: OnceLock<MemoryCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub(super) fn memory_get(fp: &str) -> Option<Arc<Dataset>> {
    let cache = memory().lock().unwrap_or_else(|p| p.into_inner());
    cache.get(fp).cloned()
}

/// Inserts unless another thread got there first, and returns the entry that stays, so all
/// callers share one copy. Generation happens outside the lock: holding it across rayon
/// work could deadlock when a rayon worker waiting in `join` steals a task that asks the
/// cache for the same data set.
pub(super) fn memory_put(fp: String, ds: Dataset) -> Arc<Dataset> {
    let mut cache = memory().lock().unwrap_or_else(|p| p.into_inner());
    cache.entry(fp).or_insert_with(|| Arc::new(ds)).clone()
}

pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // A unique temporary name, so concurrent writers of the same fingerprint never share a
    // half-written file; the last rename wins and every candidate has identical content.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("bin.{}.{unique}.tmp", std::process::id()));
    let result = fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| Error::io(path, e));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
