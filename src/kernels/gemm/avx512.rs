//! The AVX-512 kernel, with intrinsics.

use super::{k_blocks, IndirectA, IndirectB, KC, MR};
use std::arch::x86_64::*;

fn mask(width: usize) -> __mmask16 {
    if width >= 16 {
        0xffff
    } else {
        ((1u32 << width) - 1) as __mmask16
    }
}

/// Columns of a packed panel.
const NC: usize = 64;

thread_local! {
    /// The packing buffer, one per thread: zeroing 32 KiB on every call cost more than
    /// the small per-sample products it serves.
    static PANEL: std::cell::RefCell<Box<[f32; KC * NC]>> =
        std::cell::RefCell::new(Box::new([0f32; KC * NC]));
}

#[target_feature(enable = "avx512f")]
pub unsafe fn nn(
    n: usize,
    a: IndirectA,
    b: IndirectB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    PANEL.with_borrow_mut(|panel| nn_with_panel(n, a, b, c, ldc, accumulate, panel))
}

#[target_feature(enable = "avx512f")]
unsafe fn nn_with_panel(
    n: usize,
    a: IndirectA,
    b: IndirectB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    panel: &mut [f32; KC * NC],
) {
    // B rows are often a power-of-two number of floats apart (im2col rows, image
    // channels), which maps a whole panel onto a few cache sets; copying the panel into
    // one contiguous block avoids those conflict misses.
    let bp = b.data.as_ptr();
    k_blocks(a, b, accumulate, |a, b, acc| {
        let b_offs = b.k_offsets;
        // Packing pays when several row blocks of A reuse the panel.
        let pack = a.row_offsets.len() > 2 * MR;
        // Few rows that are a multiple of 4 (16- and 32-channel layers): 4-row tiles leave
        // no ragged block, where 6-row tiles would compute up to 12% padding rows.
        let m4 = a.row_offsets.len() <= 32 && a.row_offsets.len().is_multiple_of(4);
        let mut j = 0;
        while j < n {
            let w = (n - j).min(NC);
            let masks = [
                mask(w),
                mask(w.saturating_sub(16)),
                mask(w.saturating_sub(32)),
                mask(w.saturating_sub(48)),
            ];
            let src = if pack {
                let pp = panel.as_mut_ptr();
                // Masked vector copies: a `copy_nonoverlapping` of a run-time length is
                // a `memcpy` call per row, which cost more than the packing itself.
                let vecs = w.div_ceil(16);
                for (t, &off) in b_offs.iter().enumerate() {
                    let row = bp.add(off + j);
                    for (v, &mk) in masks.iter().enumerate().take(vecs) {
                        _mm512_storeu_ps(
                            pp.add(t * NC + 16 * v),
                            _mm512_maskz_loadu_ps(mk, row.add(16 * v)),
                        );
                    }
                }
                BSource::Packed(panel.as_ptr())
            } else {
                BSource::Direct(bp.add(j), b_offs)
            };
            // Register tiles of 24 (or 16), 16 and 16 accumulators: 6 (or 4) rows × 64 columns where
            // the strip is wide, fewer columns and more rows where it is not.
            if w > 32 && m4 {
                strip::<4, 4>(j, masks, a, src, c, ldc, acc);
            } else if w > 32 {
                strip::<4, 6>(j, masks, a, src, c, ldc, acc);
            } else if w > 16 {
                strip::<2, MR>(j, masks, a, src, c, ldc, acc);
            } else {
                strip::<1, { 2 * MR }>(j, masks, a, src, c, ldc, acc);
            }
            j += w;
        }
    });
}

/// Where a strip reads row `kk` of its B columns.
#[derive(Clone, Copy)]
enum BSource<'a> {
    /// A packed panel, `NC` floats per row.
    Packed(*const f32),
    /// In place: the strip's first column plus the row offsets.
    Direct(*const f32, &'a [usize]),
}

/// Columns `j0..j0 + 16·V` (masked) of C, `R` rows at a time. Rows past `m` in the last block re-read row `m−1` (valid
/// memory) and are not stored.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn strip<const V: usize, const R: usize>(
    j0: usize,
    masks: [__mmask16; 4],
    a: IndirectA,
    src: BSource,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let m = a.row_offsets.len();
    let ap = a.data.as_ptr();
    let cp = c.as_mut_ptr();
    let k = a.k_offsets.len();
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(R);
        let mut row_base = [0usize; R];
        for (r, base) in row_base.iter_mut().enumerate() {
            *base = *a.row_offsets.get_unchecked(i0 + r.min(rows - 1));
        }
        let mut accs = [[_mm512_setzero_ps(); V]; R];
        for kk in 0..k {
            let ao = *a.k_offsets.get_unchecked(kk);
            let mut bv = [_mm512_setzero_ps(); V];
            match src {
                // A packed row is NC floats wide: whole-vector loads stay inside it, and
                // the lanes past the strip are never stored.
                BSource::Packed(p) => {
                    let brow = p.add(kk * NC);
                    for (v, b) in bv.iter_mut().enumerate() {
                        *b = _mm512_loadu_ps(brow.add(16 * v));
                    }
                }
                BSource::Direct(p, offs) => {
                    let brow = p.add(*offs.get_unchecked(kk));
                    for (v, b) in bv.iter_mut().enumerate() {
                        *b = _mm512_maskz_loadu_ps(masks[v], brow.add(16 * v));
                    }
                }
            }
            for r in 0..R {
                let av = _mm512_set1_ps(*ap.add(row_base[r] + ao));
                for v in 0..V {
                    accs[r][v] = _mm512_fmadd_ps(av, bv[v], accs[r][v]);
                }
            }
        }
        for (r, acc_row) in accs.iter().enumerate().take(rows) {
            let dst = cp.add((i0 + r) * ldc + j0);
            for v in 0..V {
                let out = if accumulate {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], dst.add(16 * v)), acc_row[v])
                } else {
                    acc_row[v]
                };
                _mm512_mask_storeu_ps(dst.add(16 * v), masks[v], out);
            }
        }
        i0 += R;
    }
}
