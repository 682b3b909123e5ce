//! The AVX2 + FMA kernel, with intrinsics: 16 ymm registers of 8 f32, so register tiles of
//! 6 rows × 16 columns (12 accumulators, 2 B vectors, 1 broadcast A value).

use super::{k_blocks, IndirectA, IndirectB, KC, MR};
use std::arch::x86_64::*;

/// Columns of a packed panel: one 6 × 16 register tile wide.
const NC: usize = 16;
/// Rows of the wide tile.
const RW: usize = 6;

thread_local! {
    static PANEL: std::cell::RefCell<Box<[f32; KC * NC]>> =
        std::cell::RefCell::new(Box::new([0f32; KC * NC]));
    /// A block of A packed tile by tile (see [`pack_a`]), reused by every strip.
    static A_PACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows of A's block in `RW`-row tiles, each tile `k × RW` with a reduction index's
/// `RW` values adjacent: the wide strips then broadcast from one sequential stream
/// instead of `RW` rows addressed through the offset tables. Rows past `m` repeat row
/// `m−1`, as the unpacked kernel reads them.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a(a: IndirectA, out: &mut Vec<f32>) {
    let (m, k) = (a.row_offsets.len(), a.k_offsets.len());
    let tiles = m.div_ceil(RW);
    if out.len() < tiles * k * RW {
        out.resize(tiles * k * RW, 0.0);
    }
    let ap = a.data.as_ptr();
    let mut dst = out.as_mut_ptr();
    for t in 0..tiles {
        let mut base = [0usize; RW];
        for (r, b) in base.iter_mut().enumerate() {
            *b = *a.row_offsets.get_unchecked((t * RW + r).min(m - 1));
        }
        for &ko in a.k_offsets {
            for (r, &b) in base.iter().enumerate() {
                *dst.add(r) = *ap.add(b + ko);
            }
            dst = dst.add(RW);
        }
    }
}

/// Lane mask for the first `width` (≤ 8 counts all) lanes of a ymm vector.
#[target_feature(enable = "avx2")]
unsafe fn mask(width: usize) -> __m256i {
    let w = width.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(w),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn nn(
    n: usize,
    a: IndirectA,
    b: IndirectB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    PANEL.with_borrow_mut(|panel| {
        A_PACK.with_borrow_mut(|apack| nn_with_panel(n, a, b, c, ldc, accumulate, (panel, apack)))
    })
}

#[target_feature(enable = "avx2,fma")]
unsafe fn nn_with_panel(
    n: usize,
    a: IndirectA,
    b: IndirectB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    (panel, apack): (&mut [f32; KC * NC], &mut Vec<f32>),
) {
    let bp = b.data.as_ptr();
    k_blocks(a, b, accumulate, |a, b, acc| {
        let b_offs = b.k_offsets;
        // As in the AVX-512 copy: packing pays when several row blocks reuse the panel,
        // and removes the cache-set conflicts of power-of-two row strides.
        let pack = a.row_offsets.len() > 2 * RW;
        // A's block pays for its packing when enough wide strips read it.
        let a_src = if n >= 8 * NC {
            pack_a(a, apack);
            Some(apack.as_ptr())
        } else {
            None
        };
        let mut j = 0;
        while j < n {
            let w = (n - j).min(NC);
            let masks = [mask(w), mask(w.saturating_sub(8))];
            let src = if pack {
                let pp = panel.as_mut_ptr();
                for (t, &off) in b_offs.iter().enumerate() {
                    let row = bp.add(off + j);
                    let dst = pp.add(t * NC);
                    if w == NC {
                        _mm256_storeu_ps(dst, _mm256_loadu_ps(row));
                        _mm256_storeu_ps(dst.add(8), _mm256_loadu_ps(row.add(8)));
                    } else {
                        _mm256_storeu_ps(dst, _mm256_maskload_ps(row, masks[0]));
                        _mm256_storeu_ps(dst.add(8), _mm256_maskload_ps(row.add(8), masks[1]));
                    }
                }
                Source::Packed(panel.as_ptr())
            } else {
                Source::Direct(bp.add(j), b_offs)
            };
            let full = w == NC || w == 8;
            let pa = a_src.unwrap_or(std::ptr::null());
            match (w > 8, full, a_src.is_some()) {
                (true, true, true) => strip::<2, RW, true, true>(j, masks, a, pa, src, c, ldc, acc),
                (true, true, false) => {
                    strip::<2, RW, true, false>(j, masks, a, pa, src, c, ldc, acc)
                }
                (true, false, true) => {
                    strip::<2, RW, false, true>(j, masks, a, pa, src, c, ldc, acc)
                }
                (true, false, false) => {
                    strip::<2, RW, false, false>(j, masks, a, pa, src, c, ldc, acc)
                }
                (false, true, _) => strip::<1, MR, true, false>(j, masks, a, pa, src, c, ldc, acc),
                (false, false, _) => {
                    strip::<1, MR, false, false>(j, masks, a, pa, src, c, ldc, acc)
                }
            }
            j += w;
        }
    });
}

#[derive(Clone, Copy)]
enum Source<'a> {
    /// A packed panel, `NC` floats per row.
    Packed(*const f32),
    /// In place: the strip's first column plus the row offsets.
    Direct(*const f32, &'a [usize]),
}

/// Columns `j0..j0 + 8·V` of C (masked unless `FULL`), `R` rows at a time. Rows past
/// `m` in the last block re-read row `m−1` (valid memory) and are not stored.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn strip<const V: usize, const R: usize, const FULL: bool, const PACKED_A: bool>(
    j0: usize,
    masks: [__m256i; 2],
    a: IndirectA,
    a_packed: *const f32,
    src: Source,
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
        // The tile's packed block of A (only read when `PACKED_A`).
        let a_tile = a_packed.wrapping_add((i0 / R) * k * R);
        let mut accs = [[_mm256_setzero_ps(); V]; R];
        for kk in 0..k {
            let ao = *a.k_offsets.get_unchecked(kk);
            let mut bv = [_mm256_setzero_ps(); V];
            match src {
                Source::Packed(p) => {
                    let brow = p.add(kk * NC);
                    for (v, b) in bv.iter_mut().enumerate() {
                        *b = _mm256_loadu_ps(brow.add(8 * v));
                    }
                }
                Source::Direct(p, offs) => {
                    let brow = p.add(*offs.get_unchecked(kk));
                    for (v, b) in bv.iter_mut().enumerate() {
                        *b = if FULL {
                            _mm256_loadu_ps(brow.add(8 * v))
                        } else {
                            _mm256_maskload_ps(brow.add(8 * v), masks[v])
                        };
                    }
                }
            }
            for r in 0..R {
                let av = if PACKED_A {
                    _mm256_broadcast_ss(&*a_tile.add(kk * R + r))
                } else {
                    _mm256_broadcast_ss(&*ap.add(row_base[r] + ao))
                };
                for v in 0..V {
                    accs[r][v] = _mm256_fmadd_ps(av, bv[v], accs[r][v]);
                }
            }
        }
        for (r, acc_row) in accs.iter().enumerate().take(rows) {
            let dst = cp.add((i0 + r) * ldc + j0);
            for v in 0..V {
                let d = dst.add(8 * v);
                if FULL {
                    let out = if accumulate {
                        _mm256_add_ps(_mm256_loadu_ps(d), acc_row[v])
                    } else {
                        acc_row[v]
                    };
                    _mm256_storeu_ps(d, out);
                } else {
                    let out = if accumulate {
                        _mm256_add_ps(_mm256_maskload_ps(d, masks[v]), acc_row[v])
                    } else {
                        acc_row[v]
                    };
                    _mm256_maskstore_ps(d, masks[v], out);
                }
            }
        }
        i0 += R;
    }
}
