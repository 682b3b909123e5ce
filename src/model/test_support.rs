//! Helpers shared by the kernel tests: comparisons against f64 references and central
//! finite differences.

use candle_core::Tensor;

/// The elements of a tensor.
pub fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest `|a − b|` relative to the largest `|b|` (at least 1).
pub fn max_rel_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs() / scale)
        .fold(0.0, f64::max)
}

/// Central differences of `loss` around `at` (step 1e-2, large enough to dominate f32
/// rounding) against the `analytic` gradient at the given `indices`.
pub fn check_finite_differences(
    loss: impl Fn(&[f32]) -> f64,
    at: &[f32],
    analytic: &[f32],
    indices: &[usize],
    what: &str,
) {
    let eps = 1e-2f32;
    for &i in indices {
        let (mut up, mut down) = (at.to_vec(), at.to_vec());
        up[i] += eps;
        down[i] -= eps;
        let fd = (loss(&up) - loss(&down)) / (2.0 * eps as f64);
        let a = analytic[i] as f64;
        assert!(
            (fd - a).abs() < 2e-2 * a.abs().max(1.0),
            "{what}[{i}]: finite difference {fd} vs analytic {a}"
        );
    }
}
