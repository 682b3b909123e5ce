//! One array as a `.npy` stream: the magic, version and header, then the raw little-endian
//! data.

use std::io::{Read, Write};

use super::array::{shape_str, NpyArray, NpyData, NpyHeader};
use super::header::parse_header_dict;

pub(super) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads the header of a `.npy` stream, leaving the reader at the first data byte.
pub fn read_npy_header<R: Read>(r: &mut R) -> std::result::Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|e| format!("not a .npy array (truncated header: {e})"))?;
    if &pre[..6] != MAGIC {
        return Err("not a .npy array (bad magic bytes)".into());
    }
    let (major, minor) = (pre[6], pre[7]);
    let len = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|e| format!("truncated .npy header: {e}"))?;
            usize::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|e| format!("truncated .npy header: {e}"))?;
            u32::from_le_bytes(b) as usize
        }
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    if len > 1 << 24 {
        return Err(format!("implausible .npy header length {len}"));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)
        .map_err(|e| format!("truncated .npy header: {e}"))?;
    parse_header_dict(&text)
}

/// Reads a whole `.npy` stream.
pub fn read_npy<R: Read>(r: &mut R) -> std::result::Result<NpyArray, String> {
    let header = read_npy_header(r)?;
    let bytes = header
        .elements()
        .and_then(|n| n.checked_mul(header.dtype.size()))
        .ok_or("array too large")?;
    let mut buf = Vec::new();
    r.take(bytes as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("corrupt array data: {e}"))?;
    if buf.len() != bytes {
        return Err(format!(
            "truncated array data: expected {bytes} bytes, found {}",
            buf.len()
        ));
    }
    Ok(NpyArray {
        data: NpyData::from_le_bytes(header.dtype, &buf),
        shape: header.shape,
    })
}

/// Writes a `.npy` (format 1.0, or 2.0 when the header needs it), padded like numpy.
pub fn write_npy<W: Write>(w: &mut W, arr: &NpyArray) -> std::io::Result<()> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        arr.data.dtype().descr(),
        shape_str(&arr.shape)
    );
    // Total header (magic + version + length + dict + padding + '\n') is a multiple of 64.
    let (version, len_bytes) = if dict.len() + 1 + 10 <= usize::from(u16::MAX) {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    let unpadded = 6 + 2 + len_bytes + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + pad + 1;
    w.write_all(MAGIC)?;
    w.write_all(&[version, 0])?;
    if version == 1 {
        w.write_all(&(header_len as u16).to_le_bytes())?;
    } else {
        w.write_all(&(header_len as u32).to_le_bytes())?;
    }
    w.write_all(dict.as_bytes())?;
    w.write_all(&vec![b' '; pad])?;
    w.write_all(b"\n")?;
    w.write_all(&arr.data.to_le_bytes())
}

#[cfg(test)]
mod fuzz_regressions {
    /// Inputs on which `cargo fuzz run npy_npz` found the reader overflowing
    /// (fuzz/regressions/npy_npz/): a shape whose product overflows is refused.
    #[test]
    fn shapes_that_overflow_are_refused() {
        // The .npz inputs are npz.rs's test.
        let npy = |p: &std::path::Path| p.extension().is_none_or(|x| x != "npz");
        for path in crate::util::fuzz_regressions::inputs("npy_npz", npy) {
            let bytes = std::fs::read(&path).unwrap();
            let err = super::read_npy(&mut &bytes[..]).unwrap_err();
            assert!(err.contains("too large"), "{}: {err}", path.display());
        }
    }
}
