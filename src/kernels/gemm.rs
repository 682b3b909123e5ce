//! Small single-threaded f32 matrix products for the CPU convolution kernels, written for
//! the shapes convolutions produce (a few dozen to a few thousand rows and columns, short
//! reductions) and addressed *indirectly*: every row of A and every reduction index has its
//! own offset. That lets a stride-1 convolution read shifted windows of a padded image
//! straight from memory (no im2col copy), lets the backward pass read transposed or flipped
//! weights in place, and lets a reduction run over the valid pixels of several samples.
//!
//! Three copies, chosen by `crate::util::cpu::simd` (the CPU, capped by `HARNESS_SIMD`):
//! - AVX-512, with intrinsics: 6 rows × 64 columns (or 8 × 32, 16 × 16) of C in registers,
//!   B panels of 128 × 64 packed to stay in L1, masked loads and stores for ragged edges.
//! - AVX2 + FMA, with intrinsics: 6 rows × 16 columns (12 of the 16 ymm registers) or
//!   8 × 8, B panels of 128 × 16, masked edges with `vmaskmovps`. Products at least 128
//!   columns wide also pack A's block tile by tile (6 rows, each reduction index's values
//!   adjacent), which every 16-column strip then reads as one sequential stream instead of
//!   6 rows through the offset tables: +10–20 % on the wide shapes (16×784×144 from 66–71
//!   to 73–83 GFLOP/s, 64×784×576 from 75–80 to 82–94, the 256×2304×3136 weight gradient
//!   from 65–67 to 69–80), without changing any sum.
//! - Portable: the same loop nest in plain Rust (it does not vectorise reliably: a 16-wide
//!   strip compiled to scalar code), for CPUs without AVX2.
//!
//! All three sum in the same order: each element of C is one chain of fused multiply-adds
//! over a block of 128 reduction indices, and the blocks' partial sums are added to C in
//! order. So the three give the same bits, on every run. Callers parallelise across
//! samples, so these never spawn threads.
//!
//! Against the `gemm` crate (0.19, candle's; `benches/gemm_compare`, one thread, plain
//! row-major operands, 16 shapes of the bench workloads' convolutions: forward 3×3 as
//! im2col products, 1×1, weight gradients), 2026-12-02 on the 2-core Intel Xeon
//! (AVX-512), ours/gemm speed: at AVX-512, gemm built with its `x86-v4` feature, median
//! 0.98× (0.85× on the largest 3×3 products, e.g. 256×2304×3136, up to 1.23× on short
//! reductions such as a 1×1 16→32); capped at AVX2 (`HARNESS_SIMD=avx2`, gemm's default),
//! median 1.00× (0.83×–1.08×) before A was packed, 1.02× and 1.04× in two runs after
//! (0.79× on 512×16×4608, a single strip, to 1.14×); ours at AVX-512 against gemm's
//! default AVX2, 1.41×. We keep
//! ours on every shape: in a convolution gemm would first need explicit im2col columns (9×
//! the input of a 3×3 layer, copied per sample), which ours skips on the stride-1 path by
//! reading shifted windows of the padded image in place; its sums differ between its AVX2 and AVX-512 paths (ours give the same bits on
//! every level), and its `x86-v4` feature would also change candle's own products between
//! machines.

/// Rows of C per portable micro-kernel call (accumulators stay in registers).
const MR: usize = 8;

/// Reduction indices per block: every copy sums a block in one chain, then adds the block's
/// sum to C, so all copies round alike. A packed AVX-512 B panel of this many rows (64
/// columns, 32 KiB) stays in L1 while every row block of A streams past it.
const KC: usize = 128;

/// `A[i, k] = data[row_offsets[i] + k_offsets[k]]`.
#[derive(Clone, Copy)]
pub struct IndirectA<'a> {
    pub data: &'a [f32],
    pub row_offsets: &'a [usize],
    pub k_offsets: &'a [usize],
}

/// `B[k, j] = data[k_offsets[k] + j]`: each reduction index points at a contiguous row.
#[derive(Clone, Copy)]
pub struct IndirectB<'a> {
    pub data: &'a [f32],
    pub k_offsets: &'a [usize],
}

/// Offsets `0, stride, 2·stride, …` (`count` of them), for regular rows.
pub fn strided(count: usize, stride: usize) -> Vec<usize> {
    (0..count).map(|i| i * stride).collect()
}

/// `C (m × n, row stride ldc) (+)= A (m × k) · B (k × n)`, with `m = a.row_offsets.len()`
/// and `k = a.k_offsets.len()`.
///
/// Panics if an operand index would fall outside its slice (checked once up front).
pub fn nn(n: usize, a: IndirectA, b: IndirectB, c: &mut [f32], ldc: usize, accumulate: bool) {
    let m = a.row_offsets.len();
    let k = a.k_offsets.len();
    assert_eq!(k, b.k_offsets.len(), "gemm: A and B disagree on k");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n,
        "gemm: C too small"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let a_max = a.row_offsets.iter().max().unwrap() + a.k_offsets.iter().max().unwrap();
    let b_max = b.k_offsets.iter().max().unwrap() + n;
    assert!(a_max < a.data.len(), "gemm: A index out of range");
    assert!(b_max <= b.data.len(), "gemm: B index out of range");
    // SAFETY: every index the kernels form is bounded by the checks above, and each copy
    // runs only where the CPU has its instructions.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::util::cpu::{simd, Simd};
            match simd() {
                Simd::Avx512 => return avx512::nn(n, a, b, c, ldc, accumulate),
                Simd::Avx2 => return avx2::nn(n, a, b, c, ldc, accumulate),
                Simd::Baseline => {}
            }
        }
        nn_portable(n, a, b, c, ldc, accumulate)
    }
}

/// Calls `block(a, b, accumulate)` for each run of at most [`KC`] reduction indices, in
/// order: the first with the caller's `accumulate`, the others adding to C. The summation
/// order every copy shares.
#[inline(always)]
fn k_blocks<'a>(
    a: IndirectA<'a>,
    b: IndirectB<'a>,
    accumulate: bool,
    mut block: impl FnMut(IndirectA<'a>, IndirectB<'a>, bool),
) {
    let k = a.k_offsets.len();
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        let ab = IndirectA {
            k_offsets: &a.k_offsets[k0..k0 + kc],
            ..a
        };
        let bb = IndirectB {
            k_offsets: &b.k_offsets[k0..k0 + kc],
            ..b
        };
        block(ab, bb, accumulate || k0 > 0);
        k0 += kc;
    }
}

/// The portable copy.
unsafe fn nn_portable(n: usize, a: IndirectA, b: IndirectB, c: &mut [f32], ldc: usize, acc: bool) {
    k_blocks(a, b, acc, |a, b, acc| {
        nn_portable_block(n, a, b, c, ldc, acc)
    });
}

#[inline(always)]
unsafe fn nn_portable_block(
    n: usize,
    a: IndirectA,
    b: IndirectB,
    c: &mut [f32],
    ldc: usize,
    acc: bool,
) {
    let mut j = 0;
    while j + 16 <= n {
        strip::<16>(j, a, b, c, ldc, acc);
        j += 16;
    }
    while j < n {
        strip::<1>(j, a, b, c, ldc, acc);
        j += 1;
    }
}

/// Columns `j0..j0+NR` of C, all rows, MR rows at a time. Rows past `m` in the last block
/// re-read row `m−1` (valid memory) and are not stored.
#[inline(always)]
unsafe fn strip<const NR: usize>(
    j0: usize,
    a: IndirectA,
    b: IndirectB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let m = a.row_offsets.len();
    let ap = a.data.as_ptr();
    let bp = b.data.as_ptr().add(j0);
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(MR);
        let mut row_base = [0usize; MR];
        for (r, base) in row_base.iter_mut().enumerate() {
            *base = a.row_offsets[i0 + r.min(rows - 1)];
        }
        let mut accs = [[0f32; NR]; MR];
        for (&ao, &bo) in a.k_offsets.iter().zip(b.k_offsets) {
            let brow = bp.add(bo);
            for (acc_row, &base) in accs.iter_mut().zip(&row_base) {
                let av = *ap.add(base + ao);
                for (l, acc) in acc_row.iter_mut().enumerate() {
                    *acc = av.mul_add(*brow.add(l), *acc);
                }
            }
        }
        for (r, acc_row) in accs.iter().enumerate().take(rows) {
            let dst = c.as_mut_ptr().add((i0 + r) * ldc + j0);
            for (l, v) in acc_row.iter().enumerate() {
                if accumulate {
                    *dst.add(l) += v;
                } else {
                    *dst.add(l) = *v;
                }
            }
        }
        i0 += MR;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Plain row-major products against a triple loop, for shapes that hit every strip
    /// width and a partial row block.
    #[test]
    fn nn_matches_naive_product() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 7, 5),
            (8, 32, 9),
            (13, 61, 27),
            (16, 784, 144),
            (9, 57, 3),
            (40, 70, 200),
            (33, 16, 400),
            (20, 90, 130),
            (7, 24, 300),
            (14, 9, 129),
            (64, 100, 257),
            // Wide enough for the AVX2 copy's packed A: ragged tiles, a ragged wide strip,
            // a narrow last strip, several reduction blocks.
            (13, 140, 130),
            (7, 133, 40),
            (25, 256, 300),
        ] {
            let a = lcg(m * k, 1);
            let b = lcg(k * n, 2);
            let ak: Vec<usize> = (0..k).collect();
            let ar: Vec<usize> = (0..m).map(|i| i * k).collect();
            let bk: Vec<usize> = (0..k).map(|t| t * n).collect();
            let mut c = lcg(m * n, 3);
            let c0 = c.clone();
            let a_op = IndirectA {
                data: &a,
                row_offsets: &ar,
                k_offsets: &ak,
            };
            let b_op = IndirectB {
                data: &b,
                k_offsets: &bk,
            };
            nn(n, a_op, b_op, &mut c, n, true);
            let mut c_portable = c0.clone();
            // SAFETY: the same operands the checked call above accepted.
            unsafe { nn_portable(n, a_op, b_op, &mut c_portable, n, true) };
            // Every copy the CPU can run gives the portable copy's bits.
            #[cfg(target_arch = "x86_64")]
            {
                use crate::util::cpu::{detected, Simd};
                let mut copies: Vec<(&str, Vec<f32>)> = Vec::new();
                if detected() >= Simd::Avx2 {
                    let mut c2 = c0.clone();
                    // SAFETY: as above; the CPU has AVX2 and FMA.
                    unsafe { avx2::nn(n, a_op, b_op, &mut c2, n, true) };
                    copies.push(("avx2", c2));
                }
                if detected() >= Simd::Avx512 {
                    let mut c5 = c0.clone();
                    // SAFETY: as above; the CPU has AVX-512.
                    unsafe { avx512::nn(n, a_op, b_op, &mut c5, n, true) };
                    copies.push(("avx512", c5));
                }
                for (name, got) in copies {
                    let same = got
                        .iter()
                        .zip(&c_portable)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{name} differs from portable at {m}x{n}x{k}");
                }
            }
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = c0[i * n + j] as f64
                        + (0..k)
                            .map(|t| a[i * k + t] as f64 * b[t * n + j] as f64)
                            .sum::<f64>();
                    let at = format!("{m}x{n}x{k} at {i},{j}");
                    assert!((c[i * n + j] as f64 - want).abs() < 1e-4, "{at}");
                    assert!(
                        (c_portable[i * n + j] as f64 - want).abs() < 1e-4,
                        "portable {at}"
                    );
                }
            }
        }
    }
}
