//! Centred kernel alignment (CKA) between two sets of features of the same samples: how
//! much two networks' representations agree, independent of rotation and scale. The
//! supplement's Figure 5 compares the experts of a decomposition this way; the paper gives no
//! code, so both estimators are written here from their papers and checked against numpy
//! (`tests/reference/cka.py`).
//!
//! * [`linear_cka`]: Kornblith et al. (2019), linear kernel, on all n rows at once:
//!   `‖Ỹᵀ X̃‖²_F / (‖X̃ᵀ X̃‖_F ‖Ỹᵀ Ỹ‖_F)` with column-centred X̃, Ỹ. It is biased upwards when the
//!   feature width is not small against n.
//! * [`minibatch_cka`]: Nguyen et al. (2021): the unbiased HSIC estimator (Song et al., 2012)
//!   summed over minibatches, `Σ HSIC₁(K, L) / √(Σ HSIC₁(K, K) · Σ HSIC₁(L, L))`, which needs
//!   only one m×m Gram matrix per batch in memory and is unbiased for the population CKA.
//!
//! Everything is f64: the features arrive as f32, but the Gram sums cancel heavily.

use crate::{Error, Result};

/// Features of n samples (rows) of width d (columns), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    rows: usize,
    cols: usize,
    values: Vec<f64>,
}

impl FeatureMatrix {
    /// A matrix from its row-major values; `values.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, values: Vec<f64>) -> Result<Self> {
        if values.len() != rows * cols {
            return Err(Error::Failed(format!(
                "CKA: a {rows}×{cols} feature matrix needs {} values, got {}",
                rows * cols,
                values.len()
            )));
        }
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Failed(format!(
                "CKA: feature value {} (row {}, column {}) is not finite",
                values[at],
                at / cols.max(1),
                at % cols.max(1)
            )));
        }
        Ok(FeatureMatrix { rows, cols, values })
    }

    /// A matrix from f32 features (as a network produces them), widened to f64.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self> {
        Self::new(rows, cols, values.iter().map(|&v| f64::from(v)).collect())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }

    /// The matrix with each column's mean subtracted.
    fn centred(&self) -> FeatureMatrix {
        let mut means = vec![0.0; self.cols];
        for i in 0..self.rows {
            for (m, v) in means.iter_mut().zip(self.row(i)) {
                *m += v;
            }
        }
        for m in &mut means {
            *m /= self.rows as f64;
        }
        let mut values = self.values.clone();
        for row in values.chunks_mut(self.cols.max(1)) {
            for (v, m) in row.iter_mut().zip(&means) {
                *v -= m;
            }
        }
        FeatureMatrix {
            rows: self.rows,
            cols: self.cols,
            values,
        }
    }

    /// The m×m Gram matrix `X Xᵀ` of the rows in `range`, row-major.
    fn gram(&self, range: std::ops::Range<usize>) -> Vec<f64> {
        let m = range.len();
        let mut k = vec![0.0; m * m];
        for (a, i) in range.clone().enumerate() {
            for (b, j) in range.clone().enumerate().skip(a) {
                let dot = dot(self.row(i), self.row(j));
                k[a * m + b] = dot;
                k[b * m + a] = dot;
            }
        }
        k
    }

    /// `Aᵀ B` (a.cols × b.cols), for two matrices with the same rows.
    fn cross(a: &FeatureMatrix, b: &FeatureMatrix) -> Vec<f64> {
        let mut out = vec![0.0; a.cols * b.cols];
        for i in 0..a.rows {
            let (ra, rb) = (a.row(i), b.row(i));
            for (p, &va) in ra.iter().enumerate() {
                let dst = &mut out[p * b.cols..(p + 1) * b.cols];
                for (o, &vb) in dst.iter_mut().zip(rb) {
                    *o += va * vb;
                }
            }
        }
        out
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn same_rows(x: &FeatureMatrix, y: &FeatureMatrix, least: usize, what: &str) -> Result<()> {
    if x.rows != y.rows {
        return Err(Error::Failed(format!(
            "CKA: the two feature matrices must describe the same samples, got {} and {} rows",
            x.rows, y.rows
        )));
    }
    if x.rows < least {
        return Err(Error::Failed(format!(
            "CKA: {what} needs at least {least} samples, got {}",
            x.rows
        )));
    }
    Ok(())
}

fn ratio(num: f64, xx: f64, yy: f64) -> Result<f64> {
    let den = (xx * yy).sqrt();
    if den.is_nan() || den <= 0.0 || den.is_infinite() {
        return Err(Error::Failed(
            "CKA is undefined: one of the feature matrices is constant over the samples \
             (a dead or collapsed expert?)"
                .into(),
        ));
    }
    Ok(num / den)
}

/// Linear CKA of all n rows at once (Kornblith et al., 2019). Works in whichever space is
/// smaller: the d×d cross-covariances when d ≤ n, the n×n Gram matrices otherwise; both give
/// the same number because `‖Ỹᵀ X̃‖²_F = ⟨X̃X̃ᵀ, ỸỸᵀ⟩_F`.
pub fn linear_cka(x: &FeatureMatrix, y: &FeatureMatrix) -> Result<f64> {
    same_rows(x, y, 2, "linear CKA")?;
    let (x, y) = (x.centred(), y.centred());
    let n = x.rows;
    let feature_cost = x.cols.max(y.cols).pow(2);
    let (num, xx, yy) = if feature_cost <= n * n {
        let sq = |v: Vec<f64>| v.iter().map(|a| a * a).sum::<f64>();
        (
            sq(FeatureMatrix::cross(&y, &x)),
            sq(FeatureMatrix::cross(&x, &x)),
            sq(FeatureMatrix::cross(&y, &y)),
        )
    } else {
        let (k, l) = (x.gram(0..n), y.gram(0..n));
        (dot(&k, &l), dot(&k, &k), dot(&l, &l))
    };
    ratio(num, xx, yy)
}

/// The unbiased HSIC estimator of two m×m Gram matrices (Song et al., 2012), m ≥ 4; their
/// diagonals are ignored (treated as zero), as the estimator requires.
pub fn unbiased_hsic(k: &[f64], l: &[f64], m: usize) -> f64 {
    debug_assert!(m >= 4 && k.len() == m * m && l.len() == m * m);
    let off = |g: &[f64], i: usize, j: usize| if i == j { 0.0 } else { g[i * m + j] };
    let (mut trace_kl, mut sum_k, mut sum_l) = (0.0, 0.0, 0.0);
    let mut row_k = vec![0.0; m];
    let mut row_l = vec![0.0; m];
    for i in 0..m {
        for j in 0..m {
            let (a, b) = (off(k, i, j), off(l, i, j));
            trace_kl += a * b;
            row_k[i] += a;
            row_l[i] += b;
        }
        sum_k += row_k[i];
        sum_l += row_l[i];
    }
    // 1ᵀ K L 1 = Σ_j (K1)_j (L1)_j, as K is symmetric.
    let kl_ones = dot(&row_k, &row_l);
    let mf = m as f64;
    (trace_kl + sum_k * sum_l / ((mf - 1.0) * (mf - 2.0)) - 2.0 / (mf - 2.0) * kl_ones)
        / (mf * (mf - 3.0))
}

/// Minibatch CKA from unbiased HSIC (Nguyen et al., 2021). The rows are cut, in their order,
/// into `ceil(n / batch)` consecutive batches whose sizes differ by at most one (so none is
/// left with fewer than 4 rows); callers shuffle the rows beforehand with a seeded order.
pub fn minibatch_cka(x: &FeatureMatrix, y: &FeatureMatrix, batch: usize) -> Result<f64> {
    same_rows(x, y, 4, "minibatch CKA")?;
    if batch < 4 {
        return Err(Error::Failed(format!(
            "CKA: minibatches need at least 4 samples for the unbiased HSIC, got {batch}"
        )));
    }
    let n = x.rows;
    let batches = n.div_ceil(batch);
    let (mut kl, mut kk, mut ll) = (0.0, 0.0, 0.0);
    let mut start = 0;
    for b in 0..batches {
        let len = n / batches + usize::from(b < n % batches);
        let range = start..start + len;
        start += len;
        let (k, l) = (x.gram(range.clone()), y.gram(range));
        kl += unbiased_hsic(&k, &l, len);
        kk += unbiased_hsic(&k, &k, len);
        ll += unbiased_hsic(&l, &l, len);
    }
    ratio(kl, kk, ll)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed pair of `tests/reference/cka.py`.
    fn reference_pair() -> (FeatureMatrix, FeatureMatrix) {
        let n = 12;
        let x: Vec<f64> = (0..n)
            .flat_map(|i| {
                (0..5).map(move |j| {
                    (0.7 * i as f64 + 1.1 * j as f64 + 0.3).sin() + 0.05 * (i % 3) as f64
                })
            })
            .collect();
        let y: Vec<f64> = (0..n)
            .flat_map(|i| {
                let x = &x;
                (0..4)
                    .map(move |j| (0.45 * i as f64 - 0.8 * j as f64).cos() + 0.3 * x[i * 5 + j % 5])
            })
            .collect();
        (
            FeatureMatrix::new(n, 5, x).unwrap(),
            FeatureMatrix::new(n, 4, y).unwrap(),
        )
    }

    /// A seeded standard-normal matrix (Box–Muller over a SplitMix64 stream).
    fn gaussian(rows: usize, cols: usize, seed: u64) -> FeatureMatrix {
        let mut state = seed;
        let mut uniform = || {
            ((crate::util::seed::splitmix64(&mut state) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let values = (0..rows * cols)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        FeatureMatrix::new(rows, cols, values).unwrap()
    }

    /// `X M` for a `cols × out` matrix `m` (row-major).
    fn times(x: &FeatureMatrix, m: &[f64], out: usize) -> FeatureMatrix {
        let mut values = vec![0.0; x.rows * out];
        for i in 0..x.rows {
            for (p, &v) in x.row(i).iter().enumerate() {
                for q in 0..out {
                    values[i * out + q] += v * m[p * out + q];
                }
            }
        }
        FeatureMatrix::new(x.rows, out, values).unwrap()
    }

    /// A random orthogonal d×d matrix: Gram–Schmidt on a Gaussian one.
    fn orthogonal(d: usize, seed: u64) -> Vec<f64> {
        let g = gaussian(d, d, seed);
        let mut q: Vec<Vec<f64>> = Vec::new();
        for i in 0..d {
            let mut v = g.row(i).to_vec();
            for u in &q {
                let p = dot(&v, u);
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
            }
            let norm = dot(&v, &v).sqrt();
            v.iter_mut().for_each(|a| *a /= norm);
            q.push(v);
        }
        q.concat()
    }

    /// Y = tanh(X A / √d) + ½ noise: related to X, but not linearly.
    fn related(x: &FeatureMatrix, seed: u64) -> FeatureMatrix {
        let d = x.cols;
        let a = gaussian(d, d, seed);
        let noise = gaussian(x.rows, d, seed + 1);
        let mixed = times(x, &a.values, d);
        let values = mixed
            .values
            .iter()
            .zip(&noise.values)
            .map(|(m, e)| (m / (d as f64).sqrt()).tanh() + 0.5 * e)
            .collect();
        FeatureMatrix::new(x.rows, d, values).unwrap()
    }

    #[test]
    fn matches_numpy_on_the_reference_pair() {
        // Printed by `python3 tests/reference/cka.py`.
        let (x, y) = reference_pair();
        assert!((linear_cka(&x, &y).unwrap() - 0.665056523425524).abs() < 1e-12);
        let hsic = unbiased_hsic(&x.gram(0..12), &y.gram(0..12), 12);
        assert!((hsic - 2.006567733970987).abs() < 1e-10, "{hsic}");
        let mb = minibatch_cka(&x, &y, 6).unwrap();
        assert!((mb - 0.929732008477295).abs() < 1e-12, "{mb}");
    }

    #[test]
    fn a_representation_is_identical_to_itself() {
        let x = gaussian(40, 7, 1);
        assert!((linear_cka(&x, &x).unwrap() - 1.0).abs() < 1e-12);
        assert!((minibatch_cka(&x, &x, 10).unwrap() - 1.0).abs() < 1e-12);
        // Wider than the sample count: the Gram-matrix path.
        let wide = gaussian(10, 30, 2);
        assert!((linear_cka(&wide, &wide).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn both_computation_spaces_agree() {
        let x = gaussian(9, 12, 3);
        let y = related(&x, 4);
        let by_gram = linear_cka(&x, &y).unwrap(); // 12² > 9²: Gram matrices
        let (xc, yc) = (x.centred(), y.centred());
        let sq = |v: Vec<f64>| v.iter().map(|a| a * a).sum::<f64>();
        let by_features = sq(FeatureMatrix::cross(&yc, &xc))
            / (sq(FeatureMatrix::cross(&xc, &xc)).sqrt()
                * sq(FeatureMatrix::cross(&yc, &yc)).sqrt());
        assert!(
            (by_gram - by_features).abs() < 1e-12,
            "{by_gram} vs {by_features}"
        );
    }

    #[test]
    fn invariant_to_orthogonal_maps_and_isotropic_scaling() {
        let x = gaussian(60, 8, 5);
        let y = related(&x, 6);
        let base = linear_cka(&x, &y).unwrap();
        let rotated = times(&x, &orthogonal(8, 7), 8);
        let mut scaled = y.clone();
        scaled.values.iter_mut().for_each(|v| *v *= 3.7);
        assert!((linear_cka(&rotated, &scaled).unwrap() - base).abs() < 1e-12);
        let mb = minibatch_cka(&x, &y, 20).unwrap();
        assert!((minibatch_cka(&rotated, &scaled, 20).unwrap() - mb).abs() < 1e-12);
    }

    #[test]
    fn not_invariant_to_an_invertible_non_orthogonal_map() {
        let x = gaussian(60, 4, 8);
        let y = related(&x, 9);
        // Upper triangular with a non-zero diagonal: invertible, far from orthogonal.
        let m = [
            1.0, 5.0, -2.0, 0.5, //
            0.0, 0.2, 3.0, 1.0, //
            0.0, 0.0, 4.0, -6.0, //
            0.0, 0.0, 0.0, 0.1,
        ];
        let base = linear_cka(&x, &y).unwrap();
        let mapped = linear_cka(&times(&x, &m, 4), &y).unwrap();
        assert!((base - mapped).abs() > 0.05, "{base} vs {mapped}");
    }

    #[test]
    fn minibatch_estimate_is_close_to_the_full_one_at_n_2000() {
        // At a width small against n the full (biased) estimate is near the population CKA,
        // which the unbiased minibatch sum estimates; wider features bias the full one up.
        let x = gaussian(2000, 16, 10);
        let y = related(&x, 11);
        let full = linear_cka(&x, &y).unwrap();
        for batch in [100, 250, 500] {
            let mb = minibatch_cka(&x, &y, batch).unwrap();
            assert!((full - mb).abs() < 0.01, "batch {batch}: {full} vs {mb}");
        }
        // One batch of all rows is the unbiased full estimate; small batches agree with it.
        let x = gaussian(2000, 64, 12);
        let y = related(&x, 13);
        let unbiased_full = minibatch_cka(&x, &y, 2000).unwrap();
        let mb = minibatch_cka(&x, &y, 200).unwrap();
        assert!((unbiased_full - mb).abs() < 0.01, "{unbiased_full} vs {mb}");
    }

    #[test]
    fn batches_split_evenly_and_degenerate_inputs_are_errors() {
        let x = gaussian(10, 3, 14);
        // 10 rows at batch 9: two batches of 5, not 9 + 1.
        assert!(minibatch_cka(&x, &x, 9).is_ok());
        assert!(minibatch_cka(&x, &x, 3).is_err());
        assert!(linear_cka(&x, &gaussian(11, 3, 15)).is_err());
        let constant = FeatureMatrix::new(10, 2, vec![1.5; 20]).unwrap();
        let err = linear_cka(&x, &constant).unwrap_err().to_string();
        assert!(err.contains("constant"), "{err}");
        assert!(FeatureMatrix::new(2, 2, vec![0.0, f64::NAN, 1.0, 2.0]).is_err());
        assert!(FeatureMatrix::new(2, 2, vec![0.0; 3]).is_err());
    }
}
