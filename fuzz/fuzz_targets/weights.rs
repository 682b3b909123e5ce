//! Weights reader `model::weights::read_tensors` (path based): every input is written to a
//! per-process `.safetensors` and a `.pth` scratch file and read as both.
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use kdbench::model::weights::read_tensors;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static (PathBuf, PathBuf) {
    static P: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    P.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let stem = format!("kdbench-fuzz-w-{}", std::process::id());
        (dir.join(format!("{stem}.safetensors")), dir.join(format!("{stem}.pth")))
    })
}

fuzz_target!(|data: &[u8]| {
    let (st, pth) = scratch();
    std::fs::write(st, data).expect("write scratch file");
    let _ = read_tensors(st, &Device::Cpu).map_err(|e| e.to_string());
    std::fs::write(pth, data).expect("write scratch file");
    let _ = read_tensors(pth, &Device::Cpu).map_err(|e| e.to_string());
});
