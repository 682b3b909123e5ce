//! Layout changes around the convolution GEMMs: im2col columns gathered through an index
//! table ([`unfold`]), their gradients scattered back ([`fold`]), and the transposes of
//! output gradients for the weight gradient ([`transpose`]).
//!
//! The transpose has an AVX-512 copy that transposes 16×16 tiles in registers and an AVX2
//! copy that does 8×8 tiles; the element-by-element loop they replace cost about 4% of a
//! training step. For unfold and
//! fold, hardware gathers and scatters, and row-by-row masked copies, both measured slower
//! than these table loops on the small images and strided convolutions that use them.

use super::simd::multiversion;

multiversion! {
    /// Unfold one sample into im2col columns whose rows (of `hw_out` entries) are
    /// `row_stride` apart, so several samples can sit side by side. `table` lists, per
    /// entry, the input element it copies or `u32::MAX` in the padding (written as 0).
    /// Every entry is written.
    pub(crate) fn unfold(table: &[u32], hw_out: usize, x: &[f32], cols: &mut [f32], row_stride: usize) {
        for (r, idx) in table.chunks_exact(hw_out).enumerate() {
            let dst = &mut cols[r * row_stride..][..hw_out];
            for (v, &j) in dst.iter_mut().zip(idx) {
                *v = x.get(j as usize).copied().unwrap_or(0.0);
            }
        }
    }
}

multiversion! {
    /// Fold column gradients back onto one sample's input gradient (col2im), accumulating.
    pub(crate) fn fold(table: &[u32], hw_out: usize, cols: &[f32], row_stride: usize, dx: &mut [f32]) {
        for (r, idx) in table.chunks_exact(hw_out).enumerate() {
            for (g, &j) in cols[r * row_stride..][..hw_out].iter().zip(idx) {
                if let Some(v) = dx.get_mut(j as usize) {
                    *v += g;
                }
            }
        }
    }
}

/// `dst (cols × rows) = srcᵀ` for a row-major `rows × cols` source.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_block(src, cols, rows, cols, dst)
}

/// `dst (cols × rows)` = the transpose of the `rows × cols` block of `src` whose rows start
/// `stride` floats apart (columns `c0..c0 + cols` of a wider matrix, with `src` starting at
/// column `c0`), so that threads can each transpose a band of columns.
pub(crate) fn transpose_block(
    src: &[f32],
    stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
) {
    assert!(stride >= cols && dst.len() >= rows * cols);
    assert!(rows == 0 || src.len() >= (rows - 1) * stride + cols);
    #[cfg(target_arch = "x86_64")]
    {
        use crate::util::cpu::{simd, Simd};
        match simd() {
            // SAFETY: the CPU has AVX-512F; both sizes were checked above.
            Simd::Avx512 => unsafe { avx512::transpose(src, stride, rows, cols, dst) },
            // SAFETY: the CPU has AVX2; both sizes were checked above.
            Simd::Avx2 => unsafe { avx2::transpose(src, stride, rows, cols, dst) },
            Simd::Baseline => portable_transpose(src, stride, rows, cols, dst),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_transpose(src, stride, rows, cols, dst)
}

multiversion! {
    /// In 16×16 tiles so both sides stay in cache.
    fn portable_transpose(src: &[f32], stride: usize, rows: usize, cols: usize, dst: &mut [f32]) {
        const T: usize = 16;
        for r0 in (0..rows).step_by(T) {
            for c0 in (0..cols).step_by(T) {
                for r in r0..(r0 + T).min(rows) {
                    let row = &src[r * stride..][c0..(c0 + T).min(cols)];
                    for (i, &v) in row.iter().enumerate() {
                        dst[(c0 + i) * rows + r] = v;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Full 16×16 tiles in registers; the ragged right and bottom edges element by element.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose(src: &[f32], stride: usize, rows: usize, cols: usize, dst: &mut [f32]) {
        let (full_r, full_c) = (rows / 16 * 16, cols / 16 * 16);
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for r0 in (0..full_r).step_by(16) {
            for c0 in (0..full_c).step_by(16) {
                let mut v = [_mm512_setzero_ps(); 16];
                for (i, vi) in v.iter_mut().enumerate() {
                    *vi = _mm512_loadu_ps(s.add((r0 + i) * stride + c0));
                }
                let t = tile16(v);
                for (i, ti) in t.iter().enumerate() {
                    _mm512_storeu_ps(d.add((c0 + i) * rows + r0), *ti);
                }
            }
        }
        for r in 0..rows {
            let from = if r < full_r { full_c } else { 0 };
            for c in from..cols {
                *d.add(c * rows + r) = *s.add(r * stride + c);
            }
        }
    }

    /// Transpose of 16 rows of 16: within 128-bit lanes by unpacks and shuffles, then
    /// across lanes by two rounds of 128-bit block shuffles.
    #[inline(always)]
    unsafe fn tile16(r: [__m512; 16]) -> [__m512; 16] {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4j + k] holds, in 128-bit lane L, column 4L + k of rows 4j..4j+3.
        let mut u = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            u[4 * j] = _mm512_shuffle_ps::<0x44>(t[4 * j], t[4 * j + 2]);
            u[4 * j + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * j], t[4 * j + 2]);
            u[4 * j + 2] = _mm512_shuffle_ps::<0x44>(t[4 * j + 1], t[4 * j + 3]);
            u[4 * j + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * j + 1], t[4 * j + 3]);
        }
        let mut out = [_mm512_setzero_ps(); 16];
        for k in 0..4 {
            let v = _mm512_shuffle_f32x4::<0x88>(u[k], u[4 + k]);
            let w = _mm512_shuffle_f32x4::<0xDD>(u[k], u[4 + k]);
            let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + k], u[12 + k]);
            let w2 = _mm512_shuffle_f32x4::<0xDD>(u[8 + k], u[12 + k]);
            out[k] = _mm512_shuffle_f32x4::<0x88>(v, v2);
            out[8 + k] = _mm512_shuffle_f32x4::<0xDD>(v, v2);
            out[4 + k] = _mm512_shuffle_f32x4::<0x88>(w, w2);
            out[12 + k] = _mm512_shuffle_f32x4::<0xDD>(w, w2);
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Full 8×8 tiles in registers; the ragged right and bottom edges element by element.
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose(src: &[f32], stride: usize, rows: usize, cols: usize, dst: &mut [f32]) {
        let (full_r, full_c) = (rows / 8 * 8, cols / 8 * 8);
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for r0 in (0..full_r).step_by(8) {
            for c0 in (0..full_c).step_by(8) {
                let mut v = [_mm256_setzero_ps(); 8];
                for (i, vi) in v.iter_mut().enumerate() {
                    *vi = _mm256_loadu_ps(s.add((r0 + i) * stride + c0));
                }
                let t = tile8(v);
                for (i, ti) in t.iter().enumerate() {
                    _mm256_storeu_ps(d.add((c0 + i) * rows + r0), *ti);
                }
            }
        }
        for r in 0..rows {
            let from = if r < full_r { full_c } else { 0 };
            for c in from..cols {
                *d.add(c * rows + r) = *s.add(r * stride + c);
            }
        }
    }

    /// Transpose of 8 rows of 8: unpacks and shuffles within 128-bit halves, then one
    /// round of half swaps.
    #[inline(always)]
    unsafe fn tile8(r: [__m256; 8]) -> [__m256; 8] {
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4j + k] holds, in half H, column 4H + k of rows 4j..4j+3.
        let mut u = [_mm256_setzero_ps(); 8];
        for j in 0..2 {
            u[4 * j] = _mm256_shuffle_ps::<0x44>(t[4 * j], t[4 * j + 2]);
            u[4 * j + 1] = _mm256_shuffle_ps::<0xEE>(t[4 * j], t[4 * j + 2]);
            u[4 * j + 2] = _mm256_shuffle_ps::<0x44>(t[4 * j + 1], t[4 * j + 3]);
            u[4 * j + 3] = _mm256_shuffle_ps::<0xEE>(t[4 * j + 1], t[4 * j + 3]);
        }
        let mut out = [_mm256_setzero_ps(); 8];
        for k in 0..4 {
            out[k] = _mm256_permute2f128_ps::<0x20>(u[k], u[4 + k]);
            out[4 + k] = _mm256_permute2f128_ps::<0x31>(u[k], u[4 + k]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize) -> Vec<f32> {
        (0..len).map(|i| i as f32 * 0.5 - 7.0).collect()
    }

    #[test]
    fn transpose_matches_the_definition() {
        for (rows, cols) in [
            (1, 1),
            (16, 16),
            (16, 49),
            (32, 784),
            (17, 33),
            (5, 3),
            (128, 16),
            (8, 8),
            (9, 24),
        ] {
            let src = values(rows * cols);
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "{rows}×{cols} at {r},{c}"
                    );
                }
            }
            let mut portable = vec![f32::NAN; rows * cols];
            portable_transpose(&src, cols, rows, cols, &mut portable);
            assert_eq!(portable, dst);
            #[cfg(target_arch = "x86_64")]
            if crate::util::cpu::detected() >= crate::util::cpu::Simd::Avx2 {
                let mut ymm = vec![f32::NAN; rows * cols];
                // SAFETY: the CPU has AVX2; the sizes fit.
                unsafe { avx2::transpose(&src, cols, rows, cols, &mut ymm) };
                assert_eq!(ymm, dst, "avx2 {rows}×{cols}");
            }
        }
    }

    #[test]
    fn a_band_of_columns_transposes_as_its_part_of_the_whole() {
        let (rows, cols) = (37, 70);
        let src = values(rows * cols);
        let mut whole = vec![f32::NAN; rows * cols];
        transpose(&src, rows, cols, &mut whole);
        for (c0, c1) in [(0, 16), (16, 53), (53, 70), (5, 6)] {
            let mut band = vec![f32::NAN; rows * (c1 - c0)];
            transpose_block(&src[c0..], cols, rows, c1 - c0, &mut band);
            assert_eq!(band, whole[c0 * rows..c1 * rows], "columns {c0}..{c1}");
        }
    }
}
