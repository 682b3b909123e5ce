//! sha256 of data files, verified once and then cached.
//!
//! Hashing the MedMNIST+ 224 px files takes tens of seconds, and both loading and every
//! run-id computation want the hash. The cache, `<data root>/.harness-checksums.json`,
//! remembers the hash of a file keyed by its absolute path, size and modification time; a
//! file that was replaced or touched is hashed again. The cache is only an accelerator: a
//! missing, stale or corrupt cache file is rebuilt, and when the data root is read-only the
//! hash is simply recomputed next time.

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::util::fs::write_atomic;
use crate::util::hash::hex;

/// File name of the cache inside the data root.
pub const CACHE_FILE: &str = ".harness-checksums.json";

/// Serialises read-modify-write of cache files within this process (tasks are verified in
/// parallel). Hashing itself runs outside the lock.
static CACHE_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    size: u64,
    mtime_secs: i64,
    mtime_nanos: u32,
    sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// Absolute path → what the file looked like when it was hashed.
    files: BTreeMap<String, CacheEntry>,
}

const CACHE_VERSION: u32 = 1;

/// Modification time as (seconds, nanoseconds) since the Unix epoch; (0, 0) where the
/// platform does not report one.
pub(crate) fn mtime(meta: &Metadata) -> (i64, u32) {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                // Before 1970: store as negative seconds.
                let d = e.duration();
                (-(d.as_secs() as i64), d.subsec_nanos())
            }
        },
        Err(_) => (0, 0),
    }
}

/// sha256 of a file's contents, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn cache_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CACHE_FILE)
}

fn read_cache(path: &Path) -> CacheFile {
    let parsed = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok());
    match parsed {
        Some(c) if c.version == CACHE_VERSION => c,
        _ => CacheFile {
            version: CACHE_VERSION,
            files: BTreeMap::new(),
        },
    }
}

/// Writes the cache atomically.
fn write_cache(path: &Path, cache: &CacheFile) -> Result<()> {
    let text = serde_json::to_vec_pretty(cache)
        .map_err(|e| Error::Failed(format!("cannot serialise {}: {e}", path.display())))?;
    write_atomic(path, &text)
}

/// The sha256 of `file`, from the cache in `data_dir` when the file's size and mtime still
/// match, else computed and recorded.
pub fn cached_sha256(file: &Path, data_dir: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(file).map_err(|e| Error::io(file, e))?;
    let key = abs.to_string_lossy().into_owned();
    let meta = std::fs::metadata(&abs).map_err(|e| Error::io(&abs, e))?;
    let (secs, nanos) = mtime(&meta);
    let cpath = cache_path(data_dir);
    {
        let _guard = CACHE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let cache = read_cache(&cpath);
        if let Some(e) = cache.files.get(&key) {
            if e.size == meta.len() && e.mtime_secs == secs && e.mtime_nanos == nanos {
                return Ok(e.sha256.clone());
            }
        }
    }
    let actual = sha256_file(&abs)?;
    let _guard = CACHE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Re-read: another task may have added its own entry meanwhile.
    let mut cache = read_cache(&cpath);
    cache.files.insert(
        key,
        CacheEntry {
            size: meta.len(),
            mtime_secs: secs,
            mtime_nanos: nanos,
            sha256: actual.clone(),
        },
    );
    if let Err(e) = write_cache(&cpath, &cache) {
        // Not fatal: the hash is right, it just will be recomputed next time.
        eprintln!(
            "warning: could not update checksum cache {}: {e}",
            cpath.display()
        );
    }
    Ok(actual)
}

/// Checks `file` against the registry's `expected` sha256 (through the cache).
pub fn verify(
    dataset: &str,
    task: &str,
    file: &Path,
    expected: &str,
    data_dir: &Path,
) -> Result<()> {
    let actual = cached_sha256(file, data_dir)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(mismatch_error(dataset, task, file, expected, &actual))
    }
}

/// The error for a file whose hash is not the declared one.
pub fn mismatch_error(
    dataset: &str,
    task: &str,
    file: &Path,
    expected: &str,
    actual: &str,
) -> Error {
    Error::input(format!(
        "data set `{dataset}`, task `{task}`: checksum mismatch for {}: expected sha256 \
         {expected}, actual {actual}. The file is corrupt or a different version; download \
         it again, or correct `sha256` in datasets.toml if the registry is wrong",
        file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc.txt");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cache_is_written_and_used() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.bin");
        std::fs::write(&f, b"abc").unwrap();
        let h = cached_sha256(&f, dir.path()).unwrap();
        let cpath = dir.path().join(CACHE_FILE);
        let mut cache = read_cache(&cpath);
        assert_eq!(cache.files.len(), 1);
        assert!(!dir.path().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));

        // A cache hit returns the cached value without reading the file: poison the entry
        // and observe that it is returned.
        for e in cache.files.values_mut() {
            e.sha256 = "cached".into();
        }
        write_cache(&cpath, &cache).unwrap();
        assert_eq!(cached_sha256(&f, dir.path()).unwrap(), "cached");

        // A changed size invalidates the entry.
        std::fs::write(&f, b"abcd").unwrap();
        let h2 = cached_sha256(&f, dir.path()).unwrap();
        assert_ne!(h2, "cached");
        assert_ne!(h2, h);

        // A corrupt cache file is ignored and rebuilt.
        std::fs::write(&cpath, b"{not json").unwrap();
        assert_eq!(cached_sha256(&f, dir.path()).unwrap(), h2);
    }

    #[test]
    fn mismatch_names_everything() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pathmnist.npz");
        std::fs::write(&f, b"not the real file").unwrap();
        let expected = "0".repeat(64);
        let err = verify("medmnist", "colon", &f, &expected, dir.path()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        let actual = sha256_file(&f).unwrap();
        for needle in ["`medmnist`", "`colon`", "pathmnist.npz", &expected, &actual] {
            assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
        }
        verify("medmnist", "colon", &f, &actual, dir.path()).unwrap();
    }
}
