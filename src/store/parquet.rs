//! Reading and writing one Parquet file of the store: encoded in memory and written
//! atomically (temporary file, sync, rename), read back whole with an error that names the
//! file and the fix.

use std::fs;
use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::util::fs::write_atomic;

/// Writes `df` to `path` atomically; missing parent folders are created.
pub fn write_frame(path: &Path, mut df: DataFrame) -> Result<()> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut df)?;
    write_atomic(path, &bytes)
}

/// The error for a readable Parquet file at `path` that is not the `what` file kdbench
/// wrote (a column missing or of the wrong type, a null where none may be).
pub fn not_ours(path: &Path, what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::input(format!(
        "{}: not a kdbench {what} file ({e}); delete the run folder to re-run it",
        path.display()
    ))
}

/// Reads the whole file at `path`, a `what` file of a run folder (for the message).
pub fn read_frame(path: &Path, what: &str) -> Result<DataFrame> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file).finish().map_err(|e| {
        Error::input(format!(
            "{}: not a readable {what} Parquet file ({e}); delete the run folder to re-run it",
            path.display()
        ))
    })
}
