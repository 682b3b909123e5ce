//! NumPy arrays in memory: element types by their `descr` codes, the typed data, and the
//! shape.

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

    pub(super) fn parse(descr: &str) -> std::result::Result<Dtype, String> {
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
    pub(super) fn from_le_bytes(dtype: Dtype, bytes: &[u8]) -> NpyData {
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
    pub(super) fn to_le_bytes(&self) -> Vec<u8> {
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
        let n = element_count(&shape).ok_or_else(|| {
            Error::input(format!("array shape {} is too large", shape_str(&shape)))
        })?;
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
    /// The number of elements; `None` when the shape's product overflows (a corrupt or
    /// hostile header: found by fuzzing, where it had wrapped around in release builds).
    pub(super) fn elements(&self) -> Option<usize> {
        element_count(&self.shape)
    }
}

/// The product of a shape, `None` when it overflows.
pub(super) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

pub fn shape_str(shape: &[usize]) -> String {
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
