//! Aligned-MTL (Senushkin et al., CVPR 2023; as LibMTL's `weighting/Aligned_MTL.py`): the
//! per-task gradients of the shared parameters, G (T × D), are replaced by the closest
//! matrix with condition number 1. With M = G Gᵀ = V Λ Vᵀ (eigenvalues above
//! max(Λ)·T·ε_f32 kept, σ_min the square root of the smallest kept one),
//! B = σ_min · V Λ^{-1/2} Vᵀ, the task weights are α = B·1 (they can be negative) and the
//! shared gradient is Σ_t α_t g_t. No hyperparameters. All-zero gradients (rank 0) get
//! unit weights instead of a division by zero.

use crate::util::linalg::symmetric_eigen;

/// What one Aligned-MTL step computes from G.
#[derive(Debug, Clone, PartialEq)]
pub struct Aligned {
    /// α, one weight per row of G.
    pub weights: Vec<f64>,
    /// B (T × T, row-major): the aligned gradients are B·G.
    pub b: Vec<f64>,
    pub rank: usize,
}

/// Aligned-MTL weights of the rows of `g` (all rows of one length).
pub fn aligned(g: &[Vec<f32>]) -> Aligned {
    let t = g.len();
    let mut m = vec![0.0f64; t * t];
    for i in 0..t {
        for j in i..t {
            let dot: f64 = g[i]
                .iter()
                .zip(&g[j])
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            m[i * t + j] = dot;
            m[j * t + i] = dot;
        }
    }
    let (lambda, v) = symmetric_eigen(&m, t);
    let max = lambda.iter().copied().fold(0.0f64, f64::max);
    let tol = max * t as f64 * f32::EPSILON as f64;
    let kept: Vec<usize> = (0..t).filter(|&i| lambda[i] > tol).collect();
    if kept.is_empty() {
        let mut b = vec![0.0; t * t];
        for i in 0..t {
            b[i * t + i] = 1.0;
        }
        return Aligned {
            weights: vec![1.0; t],
            b,
            rank: 0,
        };
    }
    let sigma_min = kept
        .iter()
        .map(|&i| lambda[i])
        .fold(f64::INFINITY, f64::min)
        .sqrt();
    let mut b = vec![0.0; t * t];
    for &k in &kept {
        let inv = sigma_min / lambda[k].sqrt();
        for i in 0..t {
            for j in 0..t {
                b[i * t + j] += inv * v[i * t + k] * v[j * t + k];
            }
        }
    }
    let weights = (0..t).map(|j| (0..t).map(|i| b[i * t + j]).sum()).collect();
    Aligned {
        weights,
        b,
        rank: kept.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::linalg::symmetric_eigen;

    fn rows(v: &[[f32; 4]]) -> Vec<Vec<f32>> {
        v.iter().map(|r| r.to_vec()).collect()
    }

    fn combine(w: &[f64], g: &[Vec<f32>]) -> Vec<f64> {
        (0..g[0].len())
            .map(|d| w.iter().zip(g).map(|(a, r)| a * r[d] as f64).sum())
            .collect()
    }

    fn close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    }

    /// Singular values of B·G (square roots of the eigenvalues of (BG)(BG)ᵀ).
    fn singular_values(a: &Aligned, g: &[Vec<f32>]) -> Vec<f64> {
        let t = g.len();
        let bg: Vec<Vec<f64>> = (0..t)
            .map(|i| combine(&a.b[i * t..(i + 1) * t], g))
            .collect();
        let m: Vec<f64> = (0..t)
            .flat_map(|i| {
                let bg = &bg;
                (0..t).map(move |j| bg[i].iter().zip(&bg[j]).map(|(x, y)| x * y).sum())
            })
            .collect();
        let (mut l, _) = symmetric_eigen(&m, t);
        l.sort_by(|a, b| b.total_cmp(a));
        l.iter().map(|x| x.max(0.0).sqrt()).collect()
    }

    /// Against `tests/reference/weightings.py` (LibMTL's formulas in float64 PyTorch):
    /// a full-rank and a rank-deficient G, and the aligned matrix's condition number 1.
    #[test]
    fn matches_pytorch_reference() {
        let full = rows(&[[1., 2., 0., 1.], [0., 1., 1., -1.], [2., 0., 1., 1.]]);
        let a = aligned(&full);
        assert_eq!(a.rank, 3);
        close(
            &a.weights,
            &[0.403004289039, 0.829645866479, 0.540126904172],
        );
        close(
            &combine(&a.weights, &full),
            &[
                1.483258097383,
                1.635654444557,
                1.369772770651,
                0.113485326732,
            ],
        );
        let sv = singular_values(&a, &full);
        close(&sv, &[1.501618727468; 3]);
        assert!(
            (sv[0] / sv[2] - 1.0).abs() < 1e-9,
            "condition number {}",
            sv[0] / sv[2]
        );

        let rank2 = rows(&[[1., 0., 1., 0.], [2., 0., 2., 0.], [0., 1., 0., 1.]]);
        let a = aligned(&rank2);
        assert_eq!(a.rank, 2);
        close(&a.weights, &[0.268328157300, 0.536656314600, 1.0]);
        close(
            &combine(&a.weights, &rank2),
            &[1.341640786500, 1.0, 1.341640786500, 1.0],
        );
        let sv = singular_values(&a, &rank2);
        // The reference prints 1.414213562373 = √2.
        close(&sv[..2], &[std::f64::consts::SQRT_2; 2]);
        assert!(sv[2] < 1e-6);
    }

    #[test]
    fn all_zero_gradients_get_unit_weights() {
        let a = aligned(&[vec![0.0; 5], vec![0.0; 5]]);
        assert_eq!(a.rank, 0);
        assert_eq!(a.weights, vec![1.0, 1.0]);
    }
}
