//! NumPy `.npy` / `.npz` reading and writing: the format of MedMNIST's files (read by
//! [`super::medmnist`]), of `harness predict`'s inputs and of the test fixtures.
//!
//! `.npy` is a small header (a Python dict literal with `descr`, `fortran_order`, `shape`)
//! followed by the raw array; `.npz` is a zip of `.npy` members, stored (`np.savez`) or
//! deflated (`np.savez_compressed`, what MedMNIST ships). Only what data sets use is
//! supported: little-endian (or single-byte) booleans, integers and floats in C order.
//! Anything else is rejected with a message that says how to convert the file.
//!
//! Arrays can be read row by row ([`NpzFile`]), so a caller that keeps only some rows never
//! holds the whole array in memory.
//!
//! [`array`](mod@array) holds the in-memory arrays, `header` parses the header's Python literal,
//! [`npy`] reads and writes one array, [`npz`] an archive of them.

pub mod array;
mod header;
pub mod npy;
pub mod npz;

pub use array::{shape_str, Dtype, NpyArray, NpyData, NpyHeader};
pub use npy::{read_npy, read_npy_header, write_npy};
pub use npz::{read_npz, write_npz, NpzFile};

#[cfg(test)]
mod tests {
    use super::npy::MAGIC;
    use super::*;

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
}
