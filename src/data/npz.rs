//! NumPy `.npy` / `.npz` reading and writing, and the MedMNIST `.npz` loader.
//!
//! `.npy` is a small header (a Python dict literal with `descr`, `fortran_order`, `shape`)
//! followed by the raw array; `.npz` is a zip of `.npy` members, stored (`np.savez`) or
//! deflated (`np.savez_compressed`, what MedMNIST ships). Only what data sets use is
//! supported: little-endian (or single-byte) booleans, integers and floats in C order.
//! Anything else is rejected with a message that says how to convert the file.
//!
//! Images are read row by row and only the selected rows are kept, so a capped load of a
//! large MedMNIST+ file never holds the whole array in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::load::{derive_seed, select_indices, Caps, Resampler, SPLITS};
use super::registry::{Binarise, TaskEntry};
use super::{Split, TaskData, CHANNELS};
use crate::error::{Error, Result};

/// Element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// The `descr` numpy writes for this type on a little-endian machine.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::Bool => "|b1",
            Dtype::U8 => "|u1",
            Dtype::I8 => "|i1",
            Dtype::U16 => "<u2",
            Dtype::I16 => "<i2",
            Dtype::U32 => "<u4",
            Dtype::I32 => "<i4",
            Dtype::U64 => "<u8",
            Dtype::I64 => "<i8",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    fn parse(descr: &str) -> std::result::Result<Dtype, String> {
        let (order, code) = match descr.chars().next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
            _ => ('=', descr),
        };
        let dtype = match code {
            "b1" | "?" => Dtype::Bool,
            "u1" | "B" => Dtype::U8,
            "i1" | "b" => Dtype::I8,
            "u2" => Dtype::U16,
            "i2" => Dtype::I16,
            "u4" => Dtype::U32,
            "i4" => Dtype::I32,
            "u8" => Dtype::U64,
            "i8" => Dtype::I64,
            "f4" => Dtype::F32,
            "f8" => Dtype::F64,
            _ => {
                return Err(format!(
                    "unsupported dtype `{descr}` (supported: bool, uint8..64, int8..64, \
                     float32/64)"
                ))
            }
        };
        if order == '>' && dtype.size() > 1 {
            return Err(format!(
                "big-endian dtype `{descr}` is not supported; convert it in numpy with \
                 `a.astype(a.dtype.newbyteorder('<'))`"
            ));
        }
        Ok(dtype)
    }
}

/// Array contents, one variant per element type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl NpyData {
    pub fn dtype(&self) -> Dtype {
        match self {
            NpyData::Bool(_) => Dtype::Bool,
            NpyData::U8(_) => Dtype::U8,
            NpyData::I8(_) => Dtype::I8,
            NpyData::U16(_) => Dtype::U16,
            NpyData::I16(_) => Dtype::I16,
            NpyData::U32(_) => Dtype::U32,
            NpyData::I32(_) => Dtype::I32,
            NpyData::U64(_) => Dtype::U64,
            NpyData::I64(_) => Dtype::I64,
            NpyData::F32(_) => Dtype::F32,
            NpyData::F64(_) => Dtype::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::Bool(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::U16(v) => v.len(),
            NpyData::I16(v) => v.len(),
            NpyData::U32(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::U64(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes little-endian bytes.
    fn from_le_bytes(dtype: Dtype, bytes: &[u8]) -> NpyData {
        macro_rules! le {
            ($t:ty, $n:expr) => {
                bytes
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                    .collect()
            };
        }
        match dtype {
            Dtype::Bool => NpyData::Bool(bytes.iter().map(|&b| b != 0).collect()),
            Dtype::U8 => NpyData::U8(bytes.to_vec()),
            Dtype::I8 => NpyData::I8(bytes.iter().map(|&b| b as i8).collect()),
            Dtype::U16 => NpyData::U16(le!(u16, 2)),
            Dtype::I16 => NpyData::I16(le!(i16, 2)),
            Dtype::U32 => NpyData::U32(le!(u32, 4)),
            Dtype::I32 => NpyData::I32(le!(i32, 4)),
            Dtype::U64 => NpyData::U64(le!(u64, 8)),
            Dtype::I64 => NpyData::I64(le!(i64, 8)),
            Dtype::F32 => NpyData::F32(le!(f32, 4)),
            Dtype::F64 => NpyData::F64(le!(f64, 8)),
        }
    }

    /// Little-endian bytes.
    fn to_le_bytes(&self) -> Vec<u8> {
        fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(|&x| f(x)).collect()
        }
        match self {
            NpyData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
            NpyData::U8(v) => v.clone(),
            NpyData::I8(v) => v.iter().map(|&b| b as u8).collect(),
            NpyData::U16(v) => le(v, u16::to_le_bytes),
            NpyData::I16(v) => le(v, i16::to_le_bytes),
            NpyData::U32(v) => le(v, u32::to_le_bytes),
            NpyData::I32(v) => le(v, i32::to_le_bytes),
            NpyData::U64(v) => le(v, u64::to_le_bytes),
            NpyData::I64(v) => le(v, i64::to_le_bytes),
            NpyData::F32(v) => le(v, f32::to_le_bytes),
            NpyData::F64(v) => le(v, f64::to_le_bytes),
        }
    }

    /// Every element as an integer; floats must hold whole numbers.
    pub fn to_i64(&self) -> std::result::Result<Vec<i64>, String> {
        fn float(v: f64) -> std::result::Result<i64, String> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(format!("non-integer label value {v}"))
            }
        }
        Ok(match self {
            NpyData::Bool(v) => v.iter().map(|&b| i64::from(b)).collect(),
            NpyData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            NpyData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            NpyData::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            NpyData::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            NpyData::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            NpyData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            NpyData::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x).unwrap_or(i64::MAX))
                .collect(),
            NpyData::I64(v) => v.clone(),
            NpyData::F32(v) => v
                .iter()
                .map(|&x| float(f64::from(x)))
                .collect::<std::result::Result<_, _>>()?,
            NpyData::F64(v) => v
                .iter()
                .map(|&x| float(x))
                .collect::<std::result::Result<_, _>>()?,
        })
    }
}

/// An n-dimensional array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    /// An array, checking that the shape matches the number of elements.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<NpyArray> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::input(format!(
                "array of shape {} needs {n} elements, got {}",
                shape_str(&shape),
                data.len()
            )));
        }
        Ok(NpyArray { shape, data })
    }
}

/// The header of a `.npy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl NpyHeader {
    fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

fn shape_str(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

// ------------------------------------------------------------------------------------------
// The header's Python literal.

#[derive(Debug, Clone, PartialEq)]
enum PyLit {
    Str(String),
    Bool(bool),
    Int(i128),
    Tuple(Vec<PyLit>),
    List(Vec<PyLit>),
    Dict(Vec<(PyLit, PyLit)>),
    None,
}

struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "malformed .npy header: expected `{}` at byte {}",
                c as char, self.i
            ))
        }
    }

    /// Items up to `close`, allowing a trailing comma. Returns (items, saw_comma).
    fn seq(&mut self, close: u8) -> std::result::Result<(Vec<PyLit>, bool), String> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok((items, comma));
            }
            items.push(self.value()?);
            comma = false;
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => return Err("malformed .npy header: expected `,` or a closing bracket".into()),
            }
        }
    }

    fn value(&mut self) -> std::result::Result<PyLit, String> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("malformed .npy header: unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(PyLit::Str(text))
            }
            Some(b'(') => {
                self.i += 1;
                let (items, _) = self.seq(b')')?;
                Ok(PyLit::Tuple(items))
            }
            Some(b'[') => {
                self.i += 1;
                let (items, _) = self.seq(b']')?;
                Ok(PyLit::List(items))
            }
            Some(b'{') => {
                self.i += 1;
                let mut pairs = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(PyLit::Dict(pairs));
                    }
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    pairs.push((k, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err("malformed .npy header: expected `,` or `}`".into()),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let v: i128 = text
                    .parse()
                    .map_err(|_| format!("malformed .npy header: bad integer `{text}`"))?;
                // Python 2 long suffix.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(PyLit::Int(v))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(PyLit::Bool(true)),
                    b"False" => Ok(PyLit::Bool(false)),
                    b"None" => Ok(PyLit::None),
                    other => Err(format!(
                        "malformed .npy header: unexpected `{}`",
                        String::from_utf8_lossy(other)
                    )),
                }
            }
            _ => Err("malformed .npy header: unexpected end".into()),
        }
    }
}

fn parse_header_dict(text: &[u8]) -> std::result::Result<NpyHeader, String> {
    let mut p = PyParser { s: text, i: 0 };
    let PyLit::Dict(pairs) = p.value()? else {
        return Err("malformed .npy header: not a dict".into());
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| matches!(k, PyLit::Str(s) if s == name))
            .map(|(_, v)| v)
    };
    let dtype = match get("descr") {
        Some(PyLit::Str(d)) => Dtype::parse(d)?,
        Some(_) => {
            return Err("structured (record) dtypes are not supported; save plain arrays".into())
        }
        None => return Err("malformed .npy header: no `descr`".into()),
    };
    match get("fortran_order") {
        Some(PyLit::Bool(false)) => {}
        Some(PyLit::Bool(true)) => {
            return Err("Fortran-order arrays are not supported; save with \
                        `np.ascontiguousarray(a)`"
                .into())
        }
        _ => return Err("malformed .npy header: no boolean `fortran_order`".into()),
    }
    let shape = match get("shape") {
        Some(PyLit::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                PyLit::Int(n) if *n >= 0 => usize::try_from(*n)
                    .map_err(|_| format!("malformed .npy header: dimension {n} too large")),
                _ => Err("malformed .npy header: bad `shape`".to_string()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        _ => return Err("malformed .npy header: no `shape` tuple".into()),
    };
    Ok(NpyHeader { dtype, shape })
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";

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
        .checked_mul(header.dtype.size())
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

/// Writes an uncompressed `.npz` (like `np.savez`): one `NAME.npy` member per array.
/// Written to a temporary file first and renamed into place.
pub fn write_npz(path: &Path, arrays: &[(&str, NpyArray)]) -> Result<()> {
    let tmp = path.with_extension("npz.tmp");
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&tmp)?;
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
        let mut inner = zip.finish().map_err(std::io::Error::other)?;
        inner.flush()?;
        inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// An open `.npz`; arrays are read on demand.
pub struct NpzFile {
    path: PathBuf,
    archive: ZipArchive<BufReader<File>>,
}

impl NpzFile {
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
        let row_bytes = header.shape.iter().skip(1).product::<usize>() * header.dtype.size();
        let mut buf = vec![0u8; row_bytes];
        let mut next = 0usize; // index of the next row in the stream
        for (pos, &row) in rows.iter().enumerate() {
            if row >= n || row < next {
                return Err(bad(format!(
                    "row {row} requested out of order or beyond {n} rows"
                )));
            }
            let skip = ((row - next) * row_bytes) as u64;
            if skip > 0 {
                let skipped = std::io::copy(&mut (&mut m).take(skip), &mut std::io::sink())
                    .map_err(|e| bad(format!("corrupt array data: {e}")))?;
                if skipped != skip {
                    return Err(bad("truncated array data".into()));
                }
            }
            m.read_exact(&mut buf)
                .map_err(|e| bad(format!("truncated or corrupt array data: {e}")))?;
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

// ------------------------------------------------------------------------------------------
// MedMNIST layout.

/// Loads one MedMNIST-layout `.npz` as a task: `{train,val,test}_{images,labels}`, images
/// `uint8 (N,H,W)` or `(N,H,W,C)`, labels `(N,)`/`(N,1)` class indices or `(N,K)` multi-label
/// (binarised as the registry's `multilabel` says). Labels are checked against the
/// registry's label count; images are resampled to `image_size`.
pub fn load_medmnist(
    task: &TaskEntry,
    path: &Path,
    image_size: usize,
    caps: &Caps,
    seed: u64,
) -> Result<TaskData> {
    let mut npz = NpzFile::open(path)?;
    let names = npz.names();
    let required: Vec<String> = SPLITS
        .iter()
        .flat_map(|s| [format!("{s}_images"), format!("{s}_labels")])
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !names.contains(r))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "{}: missing array(s) {} (found: {}); a MedMNIST .npz holds train_images, \
             train_labels, val_images, val_labels, test_images and test_labels",
            path.display(),
            missing.join(", "),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    let mut splits = Vec::with_capacity(3);
    for split in SPLITS {
        let seed = derive_seed(seed, &[split]);
        splits.push(load_split(
            &mut npz,
            task,
            split,
            image_size,
            caps.for_split(split),
            seed,
        )?);
    }
    let test = splits.pop().expect("three splits");
    let val = splits.pop().expect("three splits");
    let train = splits.pop().expect("three splits");
    Ok(TaskData {
        key: task.key.clone(),
        name: task.name.clone(),
        num_classes: task.labels,
        train,
        val,
        test,
    })
}

/// Class labels of one split, validated against the registry.
fn split_labels(npz: &mut NpzFile, task: &TaskEntry, split: &str) -> Result<Vec<u32>> {
    let name = format!("{split}_labels");
    let arr = npz.read(&name)?;
    let path = npz.path.display().to_string();
    let n = arr.shape.first().copied().unwrap_or(0);
    let width = match arr.shape.as_slice() {
        [_] => 1,
        [_, k] => *k,
        other => {
            return Err(Error::input(format!(
                "{path}: `{name}` has shape {}; expected (N,), (N, 1) or (N, K)",
                shape_str(other)
            )))
        }
    };
    let values = arr
        .data
        .to_i64()
        .map_err(|e| Error::input(format!("{path}: `{name}`: {e}")))?;
    match (width, task.multilabel) {
        (1, None) => {
            let hi = task.labels as i64 - 1;
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if (0..=hi).contains(&v) {
                        Ok(v as u32)
                    } else {
                        Err(Error::input(format!(
                            "{path}: split `{split}`, sample {i}: label {v} is outside the \
                             allowed range 0..={hi} (task `{}` declares labels = {} in the \
                             registry)",
                            task.key, task.labels
                        )))
                    }
                })
                .collect()
        }
        (1, Some(_)) => Err(Error::input(format!(
            "{path}: `{name}` holds one label per sample (shape {}), but task `{}` declares \
             `multilabel`; remove `multilabel` from the task in datasets.toml",
            shape_str(&arr.shape),
            task.key
        ))),
        (k, None) => Err(Error::input(format!(
            "{path}: `{name}` is multi-label (shape {}, {k} labels per sample) but task `{}` \
             declares no binarisation; add `multilabel = \"any\"` to the task in datasets.toml",
            shape_str(&arr.shape),
            task.key
        ))),
        (k, Some(Binarise::Any)) => (0..n)
            .map(|i| {
                let row = &values[i * k..(i + 1) * k];
                if let Some(bad) = row.iter().find(|&&v| v != 0 && v != 1) {
                    return Err(Error::input(format!(
                        "{path}: split `{split}`, sample {i}: multi-label value {bad} is not \
                         0 or 1"
                    )));
                }
                Ok(u32::from(row.contains(&1)))
            })
            .collect(),
    }
}

fn load_split(
    npz: &mut NpzFile,
    task: &TaskEntry,
    split: &str,
    image_size: usize,
    cap: Option<usize>,
    seed: u64,
) -> Result<Split> {
    let all_labels = split_labels(npz, task, split)?;
    let name = format!("{split}_images");
    let header = npz.header(&name)?;
    let path = npz.path.display().to_string();
    if header.dtype != Dtype::U8 {
        return Err(Error::input(format!(
            "{path}: `{name}` has dtype {}; images must be uint8",
            header.dtype.descr()
        )));
    }
    let (n, h, w, c) = match header.shape.as_slice() {
        &[n, h, w] => (n, h, w, 1),
        &[n, h, w, c] if matches!(c, 1 | 3 | 4) => (n, h, w, c),
        other => {
            return Err(Error::input(format!(
                "{path}: `{name}` has shape {}; expected (N, H, W) or (N, H, W, C) with C in \
                 1, 3, 4",
                shape_str(other)
            )))
        }
    };
    if n != all_labels.len() {
        return Err(Error::input(format!(
            "{path}: split `{split}` has {n} images but {} labels",
            all_labels.len()
        )));
    }
    if n > 0 && (h == 0 || w == 0) {
        return Err(Error::input(format!(
            "{path}: `{name}` has empty images (shape {})",
            shape_str(&header.shape)
        )));
    }
    let rows = select_indices(n, cap, seed);
    let resampler = Resampler::new(h, w, image_size);
    let per = CHANNELS * image_size * image_size;
    let mut images = vec![0u8; rows.len() * per];
    npz.for_each_row(&name, &rows, |pos, bytes| {
        resampler.to_chw(bytes, c, &mut images[pos * per..(pos + 1) * per]);
    })?;
    let labels = rows.iter().map(|&i| all_labels[i]).collect();
    Ok(Split { images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::registry::Format;

    fn task(labels: usize, multilabel: Option<Binarise>) -> TaskEntry {
        TaskEntry {
            id: 1,
            key: "t".into(),
            name: "T".into(),
            modality: "CT".into(),
            region: "Chest".into(),
            labels,
            images: 0,
            paper_labels: None,
            paper_images: None,
            format: Format::Npz,
            path: "t.npz".into(),
            sha256: None,
            multilabel,
            note: None,
        }
    }

    /// An official-layout file: split sizes 6/2/3, images (N,28,28[,3]) with pixel value
    /// = sample index within the split, labels `label(i)`.
    fn medmnist_arrays(
        rgb: bool,
        label_width: usize,
        label: impl Fn(usize, usize) -> i64,
    ) -> Vec<(&'static str, NpyArray)> {
        let mut out = Vec::new();
        for (split, n) in [("train", 6usize), ("val", 2), ("test", 3)] {
            let mut shape = vec![n, 28, 28];
            if rgb {
                shape.push(3);
            }
            let per: usize = shape[1..].iter().product();
            let pixels: Vec<u8> = (0..n).flat_map(|i| vec![i as u8 * 10; per]).collect();
            let labels: Vec<i64> = (0..n)
                .flat_map(|i| (0..label_width).map(move |j| (i, j)))
                .map(|(i, j)| label(i, j))
                .collect();
            let images_name: &'static str = match split {
                "train" => "train_images",
                "val" => "val_images",
                _ => "test_images",
            };
            let labels_name: &'static str = match split {
                "train" => "train_labels",
                "val" => "val_labels",
                _ => "test_labels",
            };
            out.push((
                images_name,
                NpyArray::new(shape, NpyData::U8(pixels)).unwrap(),
            ));
            out.push((
                labels_name,
                NpyArray::new(vec![n, label_width], NpyData::I64(labels)).unwrap(),
            ));
        }
        out
    }

    fn msg(r: Result<TaskData>) -> String {
        match r {
            Err(Error::BadInput(m)) => m,
            Err(e) => panic!("expected bad input, got {e:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn npy_round_trip_all_dtypes() {
        let arrays = [
            NpyArray::new(vec![2, 2], NpyData::U8(vec![1, 2, 3, 255])).unwrap(),
            NpyArray::new(vec![3], NpyData::I64(vec![-1, 0, i64::MAX])).unwrap(),
            NpyArray::new(vec![2], NpyData::I32(vec![-7, 7])).unwrap(),
            NpyArray::new(vec![1, 2], NpyData::F32(vec![0.5, -2.0])).unwrap(),
            NpyArray::new(vec![2], NpyData::Bool(vec![true, false])).unwrap(),
            NpyArray::new(vec![], NpyData::U16(vec![9])).unwrap(),
        ];
        for arr in arrays {
            let mut bytes = Vec::new();
            write_npy(&mut bytes, &arr).unwrap();
            let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
            assert_eq!(header_end % 64, 0, "header is padded to 64 bytes");
            assert_eq!(read_npy(&mut bytes.as_slice()).unwrap(), arr);
        }
    }

    #[test]
    fn npy_header_versions_and_rejections() {
        // A version 2.0 header and a version 3.0 header, written by hand.
        for major in [2u8, 3] {
            let dict = b"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n";
            let mut bytes = MAGIC.to_vec();
            bytes.extend([major, 0]);
            bytes.extend((dict.len() as u32).to_le_bytes());
            bytes.extend(dict);
            bytes.extend(5i32.to_le_bytes());
            bytes.extend((-5i32).to_le_bytes());
            let arr = read_npy(&mut bytes.as_slice()).unwrap();
            assert_eq!(arr.data, NpyData::I32(vec![5, -5]));
        }
        let header = |d: &str| {
            let mut bytes = MAGIC.to_vec();
            bytes.extend([1, 0]);
            bytes.extend((d.len() as u16).to_le_bytes());
            bytes.extend(d.as_bytes());
            bytes
        };
        let e = read_npy_header(
            &mut header("{'descr': '<u1', 'fortran_order': True, 'shape': (2, 2), }").as_slice(),
        )
        .unwrap_err();
        assert!(e.contains("Fortran"), "{e}");
        let e = read_npy_header(
            &mut header("{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }").as_slice(),
        )
        .unwrap_err();
        assert!(e.contains("big-endian"), "{e}");
        let e = read_npy_header(
            &mut header("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }")
                .as_slice(),
        )
        .unwrap_err();
        assert!(e.contains("structured"), "{e}");
        // Single-byte types accept any byte-order mark.
        let h = read_npy_header(
            &mut header("{'descr': '|u1', 'fortran_order': False, 'shape': (3, 28, 28), }")
                .as_slice(),
        )
        .unwrap();
        assert_eq!(h.shape, [3, 28, 28]);
        assert!(read_npy_header(&mut &b"PK\x03\x04garbage"[..]).is_err());
    }

    #[test]
    fn npz_round_trip_gray_and_rgb() {
        let dir = tempfile::tempdir().unwrap();
        for rgb in [false, true] {
            let path = dir.path().join(format!("m{rgb}.npz"));
            let arrays = medmnist_arrays(rgb, 1, |i, _| (i % 3) as i64);
            write_npz(&path, &arrays).unwrap();
            let back = read_npz(&path).unwrap();
            assert_eq!(back.len(), 6);
            for (name, arr) in &arrays {
                assert_eq!(&back[*name], arr, "{name}");
            }

            let t = load_medmnist(&task(3, None), &path, 28, &Caps::default(), 1).unwrap();
            assert_eq!(t.num_classes, 3);
            assert_eq!(t.train.len(), 6);
            assert_eq!(t.val.len(), 2);
            assert_eq!(t.test.len(), 3);
            assert_eq!(t.train.labels, [0, 1, 2, 0, 1, 2]);
            let per = 3 * 28 * 28;
            assert_eq!(t.train.images.len(), 6 * per);
            // Sample 4 has every pixel of every channel = 40.
            assert!(t.train.images[4 * per..5 * per].iter().all(|&v| v == 40));

            // Resampled to 32 px, capped and seeded.
            let caps = Caps {
                train: Some(4),
                val: None,
                test: Some(1),
            };
            let a = load_medmnist(&task(3, None), &path, 32, &caps, 9).unwrap();
            let b = load_medmnist(&task(3, None), &path, 32, &caps, 9).unwrap();
            assert_eq!(a.train.len(), 4);
            assert_eq!(a.val.len(), 2);
            assert_eq!(a.test.len(), 1);
            assert_eq!(a.train.images.len(), 4 * 3 * 32 * 32);
            assert_eq!(a.train.labels, b.train.labels);
            assert_eq!(a.train.images, b.train.images);
            // Labels still match their images after selection.
            for (k, &lab) in a.train.labels.iter().enumerate() {
                let px = a.train.images[k * 3 * 32 * 32];
                assert_eq!(i64::from(lab), (i64::from(px) / 10) % 3);
            }
        }
    }

    #[test]
    fn multilabel_is_binarised_when_declared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chestmnist.npz");
        // Sample i has finding (i % 14) set when i is odd, none when even.
        let arrays = medmnist_arrays(false, 14, |i, j| i64::from(i % 2 == 1 && j == i % 14));
        write_npz(&path, &arrays).unwrap();

        let t = load_medmnist(
            &task(2, Some(Binarise::Any)),
            &path,
            28,
            &Caps::default(),
            0,
        )
        .unwrap();
        assert_eq!(t.train.labels, [0, 1, 0, 1, 0, 1]);
        assert_eq!(t.test.labels, [0, 1, 0]);

        let m = msg(load_medmnist(
            &task(2, None),
            &path,
            28,
            &Caps::default(),
            0,
        ));
        assert!(m.contains("multilabel = \"any\""), "{m}");
        assert!(m.contains("chestmnist.npz"), "{m}");
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pathmnist.npz");
        let arrays = medmnist_arrays(false, 1, |i, _| if i == 5 { 9 } else { 0 });
        write_npz(&path, &arrays).unwrap();
        let m = msg(load_medmnist(
            &task(9, None),
            &path,
            28,
            &Caps::default(),
            0,
        ));
        assert!(m.contains("pathmnist.npz"), "{m}");
        assert!(m.contains("split `train`"), "{m}");
        assert!(m.contains("label 9"), "{m}");
        assert!(m.contains("0..=8"), "{m}");
    }

    #[test]
    fn missing_key_and_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npz");
        let arrays: Vec<_> = medmnist_arrays(false, 1, |_, _| 0)
            .into_iter()
            .filter(|(n, _)| *n != "val_labels")
            .collect();
        write_npz(&path, &arrays).unwrap();
        let m = msg(load_medmnist(
            &task(2, None),
            &path,
            28,
            &Caps::default(),
            0,
        ));
        assert!(m.contains("missing array(s) val_labels"), "{m}");
        assert!(m.contains("x.npz"), "{m}");

        let mut arrays = medmnist_arrays(false, 1, |_, _| 0);
        arrays[5].1 = NpyArray::new(vec![2, 1], NpyData::I64(vec![0, 0])).unwrap();
        write_npz(&path, &arrays).unwrap();
        let m = msg(load_medmnist(
            &task(2, None),
            &path,
            28,
            &Caps::default(),
            0,
        ));
        assert!(m.contains("split `test` has 3 images but 2 labels"), "{m}");
    }

    #[test]
    fn corrupt_npz_is_bad_input_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.npz");
        let mut r = crate::data::load::SplitMix64::new(3);
        let junk: Vec<u8> = (0..4096).map(|_| r.next_u64() as u8).collect();
        std::fs::write(&path, junk).unwrap();
        let err = load_medmnist(&task(2, None), &path, 28, &Caps::default(), 0).unwrap_err();
        assert!(matches!(err, Error::BadInput(_)), "{err:?}");
        assert!(err.to_string().contains("broken.npz"), "{err}");
    }

    #[test]
    fn deflated_npz_is_read() {
        // np.savez_compressed layout: deflated members.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deflated.npz");
        let arrays = medmnist_arrays(true, 1, |i, _| (i % 2) as i64);
        {
            let file = File::create(&path).unwrap();
            let mut zip = ZipWriter::new(file);
            let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
            for (name, arr) in &arrays {
                zip.start_file(format!("{name}.npy"), opts).unwrap();
                write_npy(&mut zip, arr).unwrap();
            }
            zip.finish().unwrap();
        }
        let caps = Caps {
            train: Some(3),
            val: None,
            test: None,
        };
        let t = load_medmnist(&task(2, None), &path, 28, &caps, 5).unwrap();
        assert_eq!(t.train.len(), 3);
        assert_eq!(t.test.labels, [0, 1, 0]);
    }
}
