//! One error type for the whole harness, so that `main` can map every failure to the
//! documented exit codes: 2 for bad input (the user can fix the file, flag or data), 1 for
//! runs that failed or diverged, and 1 for internal/IO errors.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something the user gave us is wrong: a file, a flag, a data set. The message names the
    /// file/line/field and says how to fix it.
    #[error("{0}")]
    BadInput(String),
    /// Work was attempted and did not succeed (failed or diverged runs, regressions).
    #[error("{0}")]
    Failed(String),
    #[error("I/O error on {}: {source}{}", path.display(), io_hint(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("parquet/dataframe error: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

/// What to do about the I/O errors a user can fix.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        // ENOSPC, EDQUOT: every write is atomic, so nothing written before was damaged.
        Some(28) | Some(122) => "; the disk is full: free space (or use another --results-dir) and run again, nothing already written was damaged",
        Some(13) => "; permission denied: check the folder's owner and mode",
        Some(30) => "; the file system is read-only: use another --results-dir",
        _ => "",
    }
}

impl Error {
    /// Shorthand for a bad-input error.
    pub fn input(msg: impl Into<String>) -> Self {
        Error::BadInput(msg.into())
    }

    /// Shorthand for an I/O error that remembers the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// The process exit code this error maps to (see README: 0 ok, 1 failed, 2 bad input).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadInput(_) => 2,
            _ => 1,
        }
    }
}
