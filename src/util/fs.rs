//! Atomic writes: write to a temporary file in the same directory, fsync it, rename it over
//! the destination, then fsync the directory so the rename itself survives a power loss. A
//! reader (or a resumed run) sees either the old file or the new one, never a torn one, even
//! after `kill -9`. Every writer of the harness goes through [`replace_atomically`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Suffix of every temporary file; a store sweeps up files with it that a killed process
/// left behind.
pub const TMP_SUFFIX: &str = ".tmp";

/// A temporary name beside `path`, unique to this process and call, so concurrent writers
/// of the same file never share a half-written one (the last rename wins).
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(
        ".{file_name}.{}.{unique}{TMP_SUFFIX}",
        std::process::id()
    ))
}

/// The pid that wrote a temporary file named by [`temporary_beside`]
/// (`.<name>.<pid>.<n>.tmp`); `None` for other names.
pub fn temporary_writer(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_suffix(TMP_SUFFIX)?;
    let mut parts = stem.rsplitn(3, '.');
    let _counter: u64 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// Make `path` hold what `write` puts into the temporary file it is given, atomically:
/// parent directories are created, the temporary file and then the directory are synced,
/// and on any failure the temporary file is removed and `path` is left as it was. For
/// writers that want a path of their own (safetensors, zip); others use [`write_atomic`].
pub fn replace_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = temporary_beside(path);
    let result = write(&tmp)
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| {
            if let Some(name) = path.file_name() {
                super::fault::before_rename(&name.to_string_lossy());
            }
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // The rename is durable once the directory entry is; some file systems refuse to sync a
    // directory, which loses nothing but that guarantee.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Write `bytes` to `path` atomically, creating parent directories as needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_atomically(path, |tmp| File::create(tmp)?.write_all(bytes))
}

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Failed(format!("cannot serialise {}: {e}", path.display())))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Read and parse a JSON file; a malformed file is reported with its path.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("{}: malformed JSON: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_say_their_writer() {
        let name = temporary_beside(Path::new("/r/spec.json"));
        let name = name.file_name().unwrap().to_string_lossy();
        assert_eq!(temporary_writer(&name), Some(std::process::id()));
        assert_eq!(temporary_writer(".metrics.parquet.4242.7.tmp"), Some(4242));
        assert_eq!(temporary_writer("metrics.parquet"), None);
        assert_eq!(temporary_writer("old.tmp"), None);
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(TMP_SUFFIX))
            .collect()
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(leftovers(&dir.path().join("sub")).is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, b"old").unwrap();
        let err = replace_atomically(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.bin"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn temporaries_are_unique_per_call() {
        let p = Path::new("d/x.parquet");
        assert_ne!(temporary_beside(p), temporary_beside(p));
        assert!(temporary_beside(p).to_string_lossy().ends_with(TMP_SUFFIX));
    }
}
