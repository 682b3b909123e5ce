//! Helpers shared by the kernel tests: comparisons against f64 references and central
//! finite differences.

use candle_core::Tensor;

use super::conv::ConvGeometry;

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

/// Direct-loop grouped convolution in f64 and its gradients for the loss `Σ y·probe`: a
/// reference independent of candle and of the fused kernels. `x` is `(b, cin, h, w)`, the
/// weight `(cout, cin/groups, k, k)`; returns `(y, dx, dw)`.
pub fn direct_conv(
    x: &[f32],
    (b, cin, h, wd): (usize, usize, usize, usize),
    w: &[f32],
    cout: usize,
    groups: usize,
    g: ConvGeometry,
    probe: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (k, s, p, d) = (g.k, g.stride, g.padding, g.dilation);
    let (ho, wo) = (g.out_len(h).unwrap(), g.out_len(wd).unwrap());
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let mut y = vec![0f64; b * cout * ho * wo];
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; w.len()];
    for bi in 0..b {
        for co in 0..cout {
            let first_c = co / cout_g * cin_g;
            for oy in 0..ho {
                for ox in 0..wo {
                    let yi = ((bi * cout + co) * ho + oy) * wo + ox;
                    for cg in 0..cin_g {
                        for ki in 0..k {
                            for kj in 0..k {
                                let iy = (oy * s + ki * d) as isize - p as isize;
                                let ix = (ox * s + kj * d) as isize - p as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let c = first_c + cg;
                                let xi = ((bi * cin + c) * h + iy as usize) * wd + ix as usize;
                                let wi = ((co * cin_g + cg) * k + ki) * k + kj;
                                y[yi] += x[xi] as f64 * w[wi] as f64;
                                dx[xi] += w[wi] as f64 * probe[yi] as f64;
                                dw[wi] += x[xi] as f64 * probe[yi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

/// Largest absolute entry of an f32 tensor.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.max_all())
        .and_then(|m| m.to_scalar::<f32>())
        .expect("f32 tensor")
}

/// Largest absolute difference between two f32 tensors of one shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).expect("same shapes"))
}

/// Asserts that a kernel's output, input gradient and weight gradient match reference
/// values (f64) to `1e-5` relative.
pub fn assert_matches(what: &str, got: [&Tensor; 3], want: [&[f64]; 3]) {
    for ((g, w), name) in got
        .iter()
        .zip(want)
        .zip(["forward", "input gradient", "weight gradient"])
    {
        assert!(max_rel_diff(&vec(g), w) < 1e-5, "{what}: {name}");
    }
}

/// The elements of a tensor as f64 (to compare against candle's own ops).
pub fn as64(t: &Tensor) -> Vec<f64> {
    vec(t).iter().map(|&v| v as f64).collect()
}

/// `Σ y·probe` in f64, the loss the gradient checks differentiate.
pub fn probe_loss(y: &Tensor, probe: &Tensor) -> f64 {
    vec(&(y * probe).expect("same shapes"))
        .iter()
        .map(|&v| v as f64)
        .sum()
}
