//! `HARNESS_SIMD` caps the kernels' instruction set, and every level gives the same bits:
//! one small experiment (a ResNet student wide enough that its convolutions reduce over more
//! than one 128-long GEMM block, and LoRKD's low-rank layers) is trained under every level
//! this CPU has, and the metrics are compared bit for bit. A bad value is bad input.

use crate::common::{deterministic_metrics, stderr, tiny_experiment, Workspace};

fn experiment() -> String {
    tiny_experiment("simd", &["mtl", "lorkd"], &[0])
        .replace("widths = [4, 8]", "widths = [16, 32]")
        .replace("epochs = 2", "epochs = 1")
        + "\n[method.lorkd]\nkd = \"none\"\n"
}

/// Every level this CPU can run, as `HARNESS_SIMD` names them.
fn levels() -> Vec<&'static str> {
    use kdbench::util::cpu::{detected, Simd};
    [Simd::Baseline, Simd::Avx2, Simd::Avx512]
        .into_iter()
        .filter(|&s| s <= detected())
        .map(Simd::key)
        .collect()
}

#[test]
fn every_instruction_set_gives_the_same_bits() {
    let mut stores = Vec::new();
    for level in levels() {
        let ws = Workspace::new();
        ws.write("exp.toml", &experiment());
        let o = ws
            .cmd()
            .env("HARNESS_SIMD", level)
            .args(["run", "exp.toml", "--threads", "2", "--plain"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{level}: {}", stderr(&o));
        stores.push((level, ws));
    }
    let (first, reference) = &stores[0];
    let want: Vec<_> = reference
        .metrics_files()
        .iter()
        .map(|p| deterministic_metrics(p))
        .collect();
    assert_eq!(want.len(), 2);
    for (level, ws) in &stores[1..] {
        let got: Vec<_> = ws
            .metrics_files()
            .iter()
            .map(|p| deterministic_metrics(p))
            .collect();
        assert_eq!(got, want, "{level} differs from {first}");
    }
    eprintln!("same metrics, bit for bit, under {:?}", levels());
}

#[test]
fn a_bad_cap_is_bad_input() {
    let ws = Workspace::new();
    let o = ws
        .cmd()
        .env("HARNESS_SIMD", "sse9")
        .args(["plan", "x.toml"])
        .output()
        .unwrap();
    crate::common::assert_bad_input(&o, &["HARNESS_SIMD=\"sse9\"", "avx512, avx2 or baseline"]);
}
