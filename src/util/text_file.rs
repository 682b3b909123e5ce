//! Reading a text input file (experiment file, dataset registry) as UTF-8, with the errors a
//! user can act on: a file given by mistake (binary, far too large) or saved in another
//! encoding is bad input naming the line, column and byte offset of the first offending
//! byte, not an I/O error.

use std::io::Read;
use std::path::Path;

use super::location::line_col;
use crate::error::{Error, Result};

/// Larger than any sensible experiment file or registry (the paper's grids are a few KB).
pub const MAX_TEXT_BYTES: u64 = 4 << 20;

/// The text of `path`; `what` names the kind of file in messages ("experiment file").
/// `Ok(None)` when the file does not exist, so callers can say where such files live.
pub fn read_text(path: &Path, what: &str) -> Result<Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut bytes = Vec::new();
    // One byte past the limit tells "too large" without reading a huge file whole.
    file.take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(Error::input(format!(
            "{}: over {} MiB, which no {what} is; is this the right file?",
            path.display(),
            MAX_TEXT_BYTES >> 20
        )));
    }
    decode(bytes, path, what).map(Some)
}

/// `bytes` as UTF-8 text, or the error naming where it stops being text.
pub fn decode(bytes: Vec<u8>, path: &Path, what: &str) -> Result<String> {
    let locate = |offset: usize, bytes: &[u8]| {
        // The valid prefix locates the line and column.
        let prefix = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
        line_col(prefix, offset)
    };
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        let valid = std::str::from_utf8(&bytes[..nul])
            .map(|_| nul)
            .unwrap_or_else(|e| e.valid_up_to());
        let (line, col) = locate(valid, &bytes);
        return Err(Error::input(format!(
            "{}:{line}:{col}: a NUL byte at byte offset {nul}: this is a binary file, not the {what} (TOML text) expected",
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let (line, col) = locate(offset, bytes);
        Error::input(format!(
            "{}:{line}:{col}: byte 0x{:02x} at byte offset {offset} is not UTF-8; save the {what} as UTF-8 text (e.g. `iconv -f latin1 -t utf-8`)",
            path.display(),
            bytes[offset]
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        decode(bytes.to_vec(), Path::new("e.toml"), "experiment file")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn latin1_is_located() {
        let e = err(b"name = \"x\"\n# caf\xe9\n");
        assert!(
            e.starts_with("e.toml:2:6: byte 0xe9 at byte offset 16 is not UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn binary_is_named_binary() {
        let e = err(b"\x7fELF\x02\x01\x01\x00\x00");
        assert!(
            e.starts_with("e.toml:1:8: a NUL byte at byte offset 7: this is a binary file"),
            "{e}"
        );
        let e = err(b"ok\n\xff\xfe\x00");
        assert!(e.contains("NUL byte at byte offset 5"), "{e}");
        assert!(e.starts_with("e.toml:2:1:"), "{e}");
    }

    #[test]
    fn utf8_passes_and_huge_files_are_refused() {
        assert_eq!(
            decode("é = 1".as_bytes().to_vec(), Path::new("x"), "f").unwrap(),
            "é = 1"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_TEXT_BYTES + 10) as usize]).unwrap();
        let e = read_text(&big, "experiment file").unwrap_err().to_string();
        assert!(e.contains("over 4 MiB, which no experiment file is"), "{e}");
        assert!(read_text(&dir.path().join("none"), "f").unwrap().is_none());
    }
}
