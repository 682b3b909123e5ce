//! Fixed-order row sums for batch-norm statistics and gradients.
//!
//! Every sum runs over 16 f32 lanes (element `i` goes to lane `i mod 16`), the lanes are
//! then added in order in f64, and the tail past the last full 16 is added element by
//! element. The result is identical on every run and on every instruction set. The
//! AVX-512 copies (one zmm of 16 lanes) and AVX2 copies (two ymm of 8) are written with
//! intrinsics: LLVM turned the portable loops (whose lane order it must preserve) into
//! scalar shuffles that cost several times the memory traffic they sum.

use super::simd::multiversion;
#[cfg(target_arch = "x86_64")]
use crate::util::cpu::{simd, Simd};

/// Lanes of the fixed-order partial sums.
const LANES: usize = 16;

/// The ReLU's gradient: `g` where the output is positive, 0 elsewhere.
#[inline(always)]
pub(crate) fn relu_grad(g: f32, out: f32) -> f32 {
    if out > 0.0 {
        g
    } else {
        0.0
    }
}

/// Lanes reduced in order into f64.
#[inline(always)]
fn reduce(acc: &[f32; LANES]) -> f64 {
    acc.iter().map(|&v| v as f64).sum()
}

/// `Σ x_i` over a row.
pub(crate) fn row_sum(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        match simd() {
            // SAFETY: the CPU has AVX-512F.
            Simd::Avx512 => unsafe { avx512::row_sq_dev(x, None) },
            // SAFETY: the CPU has AVX2.
            Simd::Avx2 => unsafe { avx2::row_sq_dev(x, None) },
            Simd::Baseline => portable_row_sum(x),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_row_sum(x)
}

/// `Σ (x_i − mean)²` over a row.
pub(crate) fn row_sq_dev(x: &[f32], mean: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        match simd() {
            // SAFETY: the CPU has AVX-512F.
            Simd::Avx512 => unsafe { avx512::row_sq_dev(x, Some(mean)) },
            // SAFETY: the CPU has AVX2.
            Simd::Avx2 => unsafe { avx2::row_sq_dev(x, Some(mean)) },
            Simd::Baseline => portable_row_sq_dev(x, mean),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_row_sq_dev(x, mean)
}

/// `(Σ g', Σ g'·(x − mean))` over a row, where `g' = g` or, with `masked`, the ReLU's
/// gradient [`relu_grad`] of `g` given the op's output.
pub(crate) fn grad_sums(x: &[f32], g: &[f32], out: &[f32], mean: f32, masked: bool) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        match simd() {
            // SAFETY: the CPU has AVX-512F.
            Simd::Avx512 => unsafe { avx512::grad_sums(x, g, out, mean, masked) },
            // SAFETY: the CPU has AVX2.
            Simd::Avx2 => unsafe { avx2::grad_sums(x, g, out, mean, masked) },
            Simd::Baseline => portable_grad_sums(x, g, out, mean, masked),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_grad_sums(x, g, out, mean, masked)
}

/// `Σ f(x_i)` in the fixed lane order.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; LANES];
    let (chunks, rest) = x.as_chunks::<LANES>();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += f(c[l]);
        }
    }
    reduce(&acc) + rest.iter().map(|&v| f(v) as f64).sum::<f64>()
}

multiversion! {
    fn portable_row_sum(x: &[f32]) -> f64 {
        lane_sum(x, |v| v)
    }
}

multiversion! {
    fn portable_row_sq_dev(x: &[f32], mean: f32) -> f64 {
        lane_sum(x, |v| (v - mean) * (v - mean))
    }
}

multiversion! {
    fn portable_grad_sums(x: &[f32], g: &[f32], out: &[f32], mean: f32, masked: bool) -> (f64, f64) {
        let mut a = [0f32; LANES];
        let mut b = [0f32; LANES];
        let n = x.len() / LANES * LANES;
        for i in (0..n).step_by(LANES) {
            for l in 0..LANES {
                let gi = if masked { relu_grad(g[i + l], out[i + l]) } else { g[i + l] };
                a[l] += gi;
                b[l] += gi * (x[i + l] - mean);
            }
        }
        tail_grad_sums((reduce(&a), reduce(&b)), x, g, out, mean, masked, n)
    }
}

/// Adds the elements from `start` on (past the last full 16) to the reduced sums.
#[inline(always)]
fn tail_grad_sums(
    sums: (f64, f64),
    x: &[f32],
    g: &[f32],
    out: &[f32],
    mean: f32,
    masked: bool,
    start: usize,
) -> (f64, f64) {
    let (mut sa, mut sb) = sums;
    for i in start..x.len() {
        let gi = if masked {
            relu_grad(g[i], out[i])
        } else {
            g[i]
        };
        sa += gi as f64;
        sb += (gi * (x[i] - mean)) as f64;
    }
    (sa, sb)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{reduce, tail_grad_sums, LANES};

    #[inline(always)]
    fn spill(v: __m512) -> [f32; LANES] {
        let mut a = [0f32; LANES];
        // SAFETY: `a` holds 16 f32.
        unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) };
        a
    }

    /// `Σ x_i` (no mean) or `Σ (x_i − mean)²`. Separate multiply and add, as the portable
    /// copy, so both round identically.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn row_sq_dev(x: &[f32], mean: Option<f32>) -> f64 {
        let n = x.len() / LANES * LANES;
        let p = x.as_ptr();
        let mut acc = _mm512_setzero_ps();
        match mean {
            None => {
                for i in (0..n).step_by(LANES) {
                    acc = _mm512_add_ps(acc, _mm512_loadu_ps(p.add(i)));
                }
            }
            Some(m) => {
                let mv = _mm512_set1_ps(m);
                for i in (0..n).step_by(LANES) {
                    let d = _mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mv);
                    acc = _mm512_add_ps(acc, _mm512_mul_ps(d, d));
                }
            }
        }
        let f = |v: f32| match mean {
            None => v,
            Some(m) => (v - m) * (v - m),
        };
        reduce(&spill(acc)) + x[n..].iter().map(|&v| f(v) as f64).sum::<f64>()
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn grad_sums(
        x: &[f32],
        g: &[f32],
        out: &[f32],
        mean: f32,
        masked: bool,
    ) -> (f64, f64) {
        assert!(g.len() == x.len() && (!masked || out.len() == x.len()));
        let n = x.len() / LANES * LANES;
        let (xp, gp, op) = (x.as_ptr(), g.as_ptr(), out.as_ptr());
        let mv = _mm512_set1_ps(mean);
        let zero = _mm512_setzero_ps();
        let (mut a, mut b) = (zero, zero);
        for i in (0..n).step_by(LANES) {
            let mut gv = _mm512_loadu_ps(gp.add(i));
            if masked {
                let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(op.add(i)), zero);
                gv = _mm512_maskz_mov_ps(positive, gv);
            }
            a = _mm512_add_ps(a, gv);
            let d = _mm512_sub_ps(_mm512_loadu_ps(xp.add(i)), mv);
            b = _mm512_add_ps(b, _mm512_mul_ps(gv, d));
        }
        let sums = (reduce(&spill(a)), reduce(&spill(b)));
        tail_grad_sums(sums, x, g, out, mean, masked, n)
    }
}

/// Two ymm vectors hold the 16 lanes: lanes 0–7 and 8–15, so sums match the other copies.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{reduce, tail_grad_sums, LANES};

    #[inline(always)]
    fn spill(lo: __m256, hi: __m256) -> [f32; LANES] {
        let mut a = [0f32; LANES];
        // SAFETY: `a` holds 16 f32.
        unsafe {
            _mm256_storeu_ps(a.as_mut_ptr(), lo);
            _mm256_storeu_ps(a.as_mut_ptr().add(8), hi);
        }
        a
    }

    /// `Σ x_i` (no mean) or `Σ (x_i − mean)²`, multiply and add separate as elsewhere.
    #[target_feature(enable = "avx2")]
    pub unsafe fn row_sq_dev(x: &[f32], mean: Option<f32>) -> f64 {
        let n = x.len() / LANES * LANES;
        let p = x.as_ptr();
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        match mean {
            None => {
                for i in (0..n).step_by(LANES) {
                    lo = _mm256_add_ps(lo, _mm256_loadu_ps(p.add(i)));
                    hi = _mm256_add_ps(hi, _mm256_loadu_ps(p.add(i + 8)));
                }
            }
            Some(m) => {
                let mv = _mm256_set1_ps(m);
                for i in (0..n).step_by(LANES) {
                    let d0 = _mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv);
                    let d1 = _mm256_sub_ps(_mm256_loadu_ps(p.add(i + 8)), mv);
                    lo = _mm256_add_ps(lo, _mm256_mul_ps(d0, d0));
                    hi = _mm256_add_ps(hi, _mm256_mul_ps(d1, d1));
                }
            }
        }
        let f = |v: f32| match mean {
            None => v,
            Some(m) => (v - m) * (v - m),
        };
        reduce(&spill(lo, hi)) + x[n..].iter().map(|&v| f(v) as f64).sum::<f64>()
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn grad_sums(
        x: &[f32],
        g: &[f32],
        out: &[f32],
        mean: f32,
        masked: bool,
    ) -> (f64, f64) {
        assert!(g.len() == x.len() && (!masked || out.len() == x.len()));
        let n = x.len() / LANES * LANES;
        let (xp, gp, op) = (x.as_ptr(), g.as_ptr(), out.as_ptr());
        let mv = _mm256_set1_ps(mean);
        let zero = _mm256_setzero_ps();
        let mut a = [zero; 2];
        let mut b = [zero; 2];
        for i in (0..n).step_by(LANES) {
            for h in 0..2 {
                let at = i + 8 * h;
                let mut gv = _mm256_loadu_ps(gp.add(at));
                if masked {
                    let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(op.add(at)), zero);
                    gv = _mm256_and_ps(positive, gv);
                }
                a[h] = _mm256_add_ps(a[h], gv);
                let d = _mm256_sub_ps(_mm256_loadu_ps(xp.add(at)), mv);
                b[h] = _mm256_add_ps(b[h], _mm256_mul_ps(gv, d));
            }
        }
        let sums = (reduce(&spill(a[0], a[1])), reduce(&spill(b[0], b[1])));
        tail_grad_sums(sums, x, g, out, mean, masked, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−1, 1) with mixed signs.
    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The AVX-512 and AVX2 copies give the portable copies' bits, and the portable copies match
    /// an f64 sum to f32 accuracy, on lengths with and without a tail.
    #[test]
    fn sums_match_the_portable_copies_bit_for_bit() {
        for len in [1usize, 15, 16, 49, 196, 784] {
            let x = values(len, 1);
            let g = values(len, 2);
            let out = values(len, 3);
            let mean = 0.125f32;
            let exact: f64 = x.iter().map(|&v| v as f64).sum();
            assert!((portable_row_sum(&x) - exact).abs() < 1e-4 * (1.0 + exact.abs()));
            for masked in [false, true] {
                let exact =
                    x.iter()
                        .zip(&g)
                        .zip(&out)
                        .fold((0f64, 0f64), |(a, b), ((&xi, &gi), &oi)| {
                            let gi = if masked && oi <= 0.0 { 0.0 } else { gi as f64 };
                            (a + gi, b + gi * (xi as f64 - mean as f64))
                        });
                let got = portable_grad_sums(&x, &g, &out, mean, masked);
                assert!(
                    (got.0 - exact.0).abs() < 1e-4 * (1.0 + exact.0.abs()),
                    "{len} {masked}"
                );
                assert!(
                    (got.1 - exact.1).abs() < 1e-4 * (1.0 + exact.1.abs()),
                    "{len} {masked}"
                );
            }
            #[cfg(target_arch = "x86_64")]
            {
                use crate::util::cpu::detected;
                // SAFETY: each copy runs only where the CPU has its instructions.
                unsafe {
                    if detected() >= Simd::Avx512 {
                        assert_eq!(avx512::row_sq_dev(&x, None), portable_row_sum(&x));
                        assert_eq!(
                            avx512::row_sq_dev(&x, Some(mean)),
                            portable_row_sq_dev(&x, mean)
                        );
                        for masked in [false, true] {
                            assert_eq!(
                                avx512::grad_sums(&x, &g, &out, mean, masked),
                                portable_grad_sums(&x, &g, &out, mean, masked)
                            );
                        }
                    }
                    if detected() >= Simd::Avx2 {
                        assert_eq!(avx2::row_sq_dev(&x, None), portable_row_sum(&x));
                        assert_eq!(
                            avx2::row_sq_dev(&x, Some(mean)),
                            portable_row_sq_dev(&x, mean)
                        );
                        for masked in [false, true] {
                            assert_eq!(
                                avx2::grad_sums(&x, &g, &out, mean, masked),
                                portable_grad_sums(&x, &g, &out, mean, masked)
                            );
                        }
                    }
                }
            }
        }
    }
}
