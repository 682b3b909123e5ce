//! `.npz` archives: a zip of `.npy` members, stored (`np.savez`) or deflated
//! (`np.savez_compressed`), written atomically and read member by member or row by row.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::array::{element_count, NpyArray, NpyHeader};
use super::npy::{read_npy, read_npy_header, write_npy};
use crate::error::{Error, Result};
use crate::util::fs::replace_atomically;

/// Writes an uncompressed `.npz` (like `np.savez`): one `NAME.npy` member per array,
/// atomically.
pub fn write_npz(path: &Path, arrays: &[(&str, NpyArray)]) -> Result<()> {
    replace_atomically(path, |tmp| {
        let file = File::create(tmp)?;
        let mut zip = ZipWriter::new(BufWriter::new(file));
        for (name, arr) in arrays {
            let bytes = arr.data.len() * arr.data.dtype().size();
            let opts = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .large_file(bytes as u64 + 4096 >= u64::from(u32::MAX));
            zip.start_file(format!("{name}.npy"), opts)
                .map_err(std::io::Error::other)?;
            write_npy(&mut zip, arr)?;
        }
        zip.finish().map_err(std::io::Error::other)?.flush()
    })
}

/// An open `.npz`; arrays are read on demand.
pub struct NpzFile {
    path: PathBuf,
    archive: ZipArchive<BufReader<File>>,
}

impl NpzFile {
    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn open(path: &Path) -> Result<NpzFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let archive = ZipArchive::new(BufReader::new(file)).map_err(|e| {
            Error::input(format!(
                "{}: not a valid .npz (zip) file: {e}; the download may be incomplete",
                path.display()
            ))
        })?;
        Ok(NpzFile {
            path: path.to_path_buf(),
            archive,
        })
    }

    fn bad(&self, msg: impl std::fmt::Display) -> Error {
        Error::input(format!("{}: {msg}", self.path.display()))
    }

    /// Array names (member names without `.npy`), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .archive
            .file_names()
            .filter_map(|n| n.ok())
            .map(|n| n.strip_suffix(".npy").unwrap_or(&n).to_string())
            .collect();
        names.sort();
        names
    }

    fn member(&mut self, name: &str) -> Result<zip::read::ZipFile<'_, BufReader<File>>> {
        let member = format!("{name}.npy");
        let path = self.path.clone();
        self.archive.by_name(&member).map_err(|e| match e {
            zip::result::ZipError::FileNotFound => {
                Error::input(format!("{}: no array `{name}`", path.display()))
            }
            e => Error::input(format!(
                "{}: cannot read array `{name}`: {e}",
                path.display()
            )),
        })
    }

    /// The header of one array.
    pub fn header(&mut self, name: &str) -> Result<NpyHeader> {
        let mut m = self.member(name)?;
        let r = read_npy_header(&mut m);
        drop(m);
        r.map_err(|e| self.bad(format!("array `{name}`: {e}")))
    }

    /// One whole array.
    pub fn read(&mut self, name: &str) -> Result<NpyArray> {
        let mut m = self.member(name)?;
        let r = read_npy(&mut m);
        drop(m);
        r.map_err(|e| self.bad(format!("array `{name}`: {e}")))
    }

    /// Streams the rows (slices along the first axis) whose indices are in `rows`
    /// (ascending, unique) to `f(position in rows, row bytes)`, skipping the others without
    /// keeping them. Returns the header.
    pub fn for_each_row(
        &mut self,
        name: &str,
        rows: &[usize],
        mut f: impl FnMut(usize, &[u8]),
    ) -> Result<NpyHeader> {
        let path = self.path.clone();
        let bad = |msg: String| Error::input(format!("{}: array `{name}`: {msg}", path.display()));
        let mut m = self.member(name)?;
        let header = read_npy_header(&mut m).map_err(bad)?;
        let n = header.shape.first().copied().unwrap_or(0);
        let row_bytes = header
            .shape
            .get(1..)
            .and_then(element_count)
            .and_then(|e| e.checked_mul(header.dtype.size()))
            .filter(|_| header.elements().is_some())
            .ok_or_else(|| bad("array too large".into()))?;
        // Grown as the bytes arrive, not sized by what the header claims.
        let mut buf = Vec::new();
        let mut next = 0usize; // index of the next row in the stream
        for (pos, &row) in rows.iter().enumerate() {
            if row >= n || row < next {
                return Err(bad(format!(
                    "row {row} requested out of order or beyond {n} rows"
                )));
            }
            let skip = ((row - next) as u64).saturating_mul(row_bytes as u64);
            if skip > 0 {
                let skipped = std::io::copy(&mut (&mut m).take(skip), &mut std::io::sink())
                    .map_err(|e| bad(format!("corrupt array data: {e}")))?;
                if skipped != skip {
                    return Err(bad("truncated array data".into()));
                }
            }
            buf.clear();
            (&mut m)
                .take(row_bytes as u64)
                .read_to_end(&mut buf)
                .map_err(|e| bad(format!("corrupt array data: {e}")))?;
            if buf.len() != row_bytes {
                return Err(bad("truncated array data".into()));
            }
            f(pos, &buf);
            next = row + 1;
        }
        Ok(header)
    }
}

/// Reads every array of an `.npz`.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, NpyArray>> {
    let mut npz = NpzFile::open(path)?;
    let mut out = BTreeMap::new();
    for name in npz.names() {
        let arr = npz.read(&name)?;
        out.insert(name, arr);
    }
    Ok(out)
}

#[cfg(test)]
mod fuzz_regressions {
    /// `.npz` inputs on which `cargo fuzz run npy_npz` found the row reader overflowing
    /// (fuzz/regressions/npy_npz/*.npz): the size of a row is computed with checks, so such
    /// an array is refused as too large or truncated instead of wrapping around.
    #[test]
    fn rows_whose_size_overflows_are_refused() {
        let npz = |p: &std::path::Path| p.extension().is_some_and(|x| x == "npz");
        for path in crate::util::fuzz_regressions::inputs("npy_npz", npz) {
            let mut npz = super::NpzFile::open(&path).unwrap();
            let errors: Vec<String> = npz
                .names()
                .iter()
                .filter_map(|name| npz.for_each_row(name, &[0, 2, 3], |_, _| {}).err())
                .map(|err| err.to_string())
                .collect();
            assert!(
                errors.iter().any(|e| e.contains("too large")),
                "{}: {errors:?}",
                path.display()
            );
        }
    }
}
