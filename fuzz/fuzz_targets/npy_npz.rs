//! NumPy reader: the bytes as a `.npy` stream (`read_npy_header`, `read_npy`, with a
//! write/read round trip of what parses), and as an `.npz` file (`NpzFile::open`, `names`,
//! `header`, `read`, `for_each_row`, `read_npz`). The `.npz` API is path based, so every
//! input is written to a per-process file under /dev/shm (or the temp dir).
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use kdbench::data::numpy::{read_npy, read_npy_header, read_npz, write_npy, NpzFile};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        dir.join(format!("kdbench-fuzz-{}.npz", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    // .npy
    let _ = read_npy_header(&mut &data[..]);
    if let Ok(arr) = read_npy(&mut &data[..]) {
        let mut a = Vec::new();
        write_npy(&mut a, &arr).expect("write to a Vec");
        let back = read_npy(&mut &a[..]).expect("what write_npy wrote reads back");
        let mut b = Vec::new();
        write_npy(&mut b, &back).expect("write to a Vec");
        assert!(a == b, "npy round trip changed the bytes");
    }

    // .npz
    let path = scratch();
    std::fs::write(path, data).expect("write scratch file");
    if let Ok(mut npz) = NpzFile::open(path) {
        for name in npz.names() {
            let _ = npz.header(&name);
            let _ = npz.read(&name).map_err(|e| e.to_string());
            let mut n = 0usize;
            let _ = npz.for_each_row(&name, &[0, 2, 3], |_, row| n += row.len());
        }
        let _ = npz.for_each_row("missing", &[0], |_, _| {});
    }
    let _ = read_npz(path).map_err(|e| e.to_string());
});
