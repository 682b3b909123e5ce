//! Our single-threaded convolution GEMM (`kdbench::kernels::gemm::nn`) against the `gemm`
//! crate (0.19, the one candle uses) on the matrix shapes of the training-step workloads'
//! convolutions, one thread each (our callers parallelise across samples). Prints GFLOP/s of
//! both and their ratio per shape, and the instruction sets in use.
//!
//! ```sh
//! cd benches/gemm_compare
//! cargo run --release                        # gemm crate: AVX2 (its default on stable)
//! cargo run --release --features x86-v4      # gemm crate: AVX-512 where the CPU has it
//! HARNESS_SIMD=avx2 cargo run --release      # ours capped at AVX2
//! ```
use std::time::Instant;

use kdbench::kernels::gemm::{nn, IndirectA, IndirectB};

/// `(label, m, n, k)`: C is m × n, the reduction k long.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("narrow conv3x3 16->16 28px fwd", 16, 784, 144),
    ("narrow conv3x3 32->32 14px fwd", 32, 196, 288),
    ("narrow conv3x3 64->64 7px fwd", 64, 49, 576),
    ("narrow conv3x3 128->128 4px fwd", 128, 16, 1152),
    ("resnet18 conv3x3 64->64 28px fwd", 64, 784, 576),
    ("resnet18 conv3x3 128->128 14px fwd", 128, 196, 1152),
    ("resnet18 conv3x3 256->256 7px fwd", 256, 49, 2304),
    ("resnet18 conv3x3 512->512 4px fwd", 512, 16, 4608),
    ("narrow conv3x3 64->64 7px dW (B=64)", 64, 576, 3136),
    ("resnet18 conv3x3 256->256 7px dW (B=64)", 256, 2304, 3136),
    ("narrow conv1x1 16->32 14px fwd", 32, 196, 16),
    ("narrow conv1x1 64->128 4px fwd", 128, 16, 64),
    ("resnet18 conv1x1 256->512 4px fwd", 512, 16, 256),
    ("shufflenet conv1x1 58 16px fwd", 58, 256, 58),
    ("shufflenet conv1x1 116 8px fwd", 116, 64, 116),
    ("shufflenet conv1x1 232 4px fwd", 232, 16, 232),
];

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Median seconds per call over 7 samples of at least 50 ms each.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut samples = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed().as_secs_f64() < 0.05 {
            f();
            calls += 1;
        }
        samples.push(start.elapsed().as_secs_f64() / calls as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[3]
}

fn main() {
    let v4 = cfg!(feature = "x86-v4");
    println!(
        "CPU: {} · ours {} · gemm crate 0.19 {} · 1 thread, f32, C = A·B, median of 7",
        kdbench::util::provenance::cpu_model(),
        kdbench::util::cpu::instruction_set_detail(),
        if v4 {
            "with x86-v4 (AVX-512 where present)"
        } else {
            "default (AVX2 + FMA)"
        }
    );
    println!(
        "{:<42} {:>5} {:>5} {:>5} {:>10} {:>10} {:>8}",
        "shape", "m", "n", "k", "ours GF/s", "gemm GF/s", "ours/gemm"
    );
    let mut ratios = Vec::new();
    for &(label, m, n, k) in SHAPES {
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut c = vec![0f32; m * n];
        let rows: Vec<usize> = (0..m).map(|i| i * k).collect();
        let ks: Vec<usize> = (0..k).collect();
        let bks: Vec<usize> = (0..k).map(|t| t * n).collect();
        let ours = time(|| {
            let a = IndirectA {
                data: &a,
                row_offsets: &rows,
                k_offsets: &ks,
            };
            let b = IndirectB {
                data: &b,
                k_offsets: &bks,
            };
            nn(n, a, b, &mut c, n, false);
        });
        let mut c2 = vec![0f32; m * n];
        let theirs = time(|| {
            // SAFETY: row-major m×k, k×n and m×n buffers of exactly those sizes.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c2.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
        let max_diff = c
            .iter()
            .zip(&c2)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-3 * (k as f32).sqrt(),
            "{label}: results differ by {max_diff}"
        );
        let flops = 2.0 * (m * n * k) as f64;
        let ratio = theirs / ours;
        ratios.push(ratio);
        println!(
            "{label:<42} {m:>5} {n:>5} {k:>5} {:>10.1} {:>10.1} {:>8.2}×",
            flops / ours / 1e9,
            flops / theirs / 1e9,
            ratio
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ours/gemm: {:.2}× over {} shapes (higher: ours faster)",
        ratios[ratios.len() / 2],
        ratios.len()
    );
}
