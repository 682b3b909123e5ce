//! The process-wide memory cache of generated data sets; the caches' keys and their use
//! live in the parent module (the on-disk cache writes through
//! [`crate::util::fs::write_atomic`], whose unique temporary names let concurrent writers
//! of one fingerprint race safely: the last rename wins and every candidate is identical).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::data::Dataset;

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
