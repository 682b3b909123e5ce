//! The loss terms of KF (Factorizing Knowledge, Yang, Ye and Wang, ECCV 2022; METHODS.md
//! "KF") that no other method uses: InfoMax between the projected teacher features and the
//! common knowledge network's, InfoMin on each task-specific network's features, and the
//! label-smoothed cross-entropy of its predictions. Checked against float64 PyTorch values
//! and gradients from `tests/reference/kf_losses.py`.

use candle_core::{Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// Rows scaled to unit length (PyTorch's `F.normalize`, norm floored at 1e-12).
fn normalize_rows(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    x.broadcast_div(&norm)
}

/// InfoMax: with â, b̂ the row-normalised `(B, N)` inputs and S = â b̂ᵀ,
/// `−(trace(S)/B² − log mean(exp(S ⊙ (1 − I))))`. Matched pairs (the diagonal) are pulled
/// together, the others pushed apart.
pub fn info_max(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() || a.rank() != 2 {
        candle_core::bail!(
            "InfoMax needs two (batch, width) matrices of one shape, got {:?} and {:?}",
            a.dims(),
            b.dims()
        );
    }
    let n = a.dim(0)?;
    let (a, b) = (normalize_rows(a)?, normalize_rows(b)?);
    let e_j = ((&a * &b)?.sum_all()? / (n * n) as f64)?;
    let s = a.matmul(&b.t()?)?;
    let off_diagonal =
        (Tensor::ones((n, n), s.dtype(), s.device())? - Tensor::eye(n, s.dtype(), s.device())?)?;
    let e_m = (s * off_diagonal)?.exp()?.mean_all()?;
    e_m.log()? - e_j
}

/// InfoMin: the KL divergence of the batch statistics of `z` `(B, N)` to N(0, I),
/// `−½ · mean(1 + log σ² − μ² − σ²)` with μ, σ² per column (σ² the biased variance).
pub fn info_min(z: &Tensor) -> Result<Tensor> {
    let mu = z.mean(0)?;
    let var = z.broadcast_sub(&mu)?.sqr()?.mean(0)?;
    let inner = ((var.log()? + 1.0)? - mu.sqr()?)? - &var;
    inner?.mean_all()? * -0.5
}

/// Cross-entropy against `(1 − ε)·onehot + ε/C` targets (PyTorch's `label_smoothing`).
pub fn label_smoothed_ce(logits: &Tensor, labels: &Tensor, epsilon: f64) -> Result<Tensor> {
    let logp = log_softmax(logits, D::Minus1)?;
    let nll = candle_nn::loss::nll(&logp, labels)?;
    let smooth = (logp.mean(D::Minus1)?.mean_all()? * -1.0)?;
    (nll * (1.0 - epsilon))? + (smooth * epsilon)?
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn vals(n: usize, off: f64, scale: f64, shape: (usize, usize)) -> Tensor {
        let v: Vec<f64> = (0..n)
            .map(|i| scale * (0.7 * i as f64 + off).sin())
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn check(value: &Tensor, grad: &Tensor, want: f64, want_grad: &[f64]) {
        let v = value.to_scalar::<f64>().unwrap();
        assert!((v - want).abs() < 1e-10, "{v} vs {want}");
        let g = grad.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for (a, b) in g.iter().zip(want_grad) {
            assert!((a - b).abs() < 1e-10, "{g:?}");
        }
    }

    #[test]
    fn info_max_matches_pytorch() {
        let a = Var::from_tensor(&vals(12, 0.3, 1.5, (4, 3))).unwrap();
        let b = vals(12, 1.1, 0.8, (4, 3));
        let im = info_max(a.as_tensor(), &b).unwrap();
        let g = im.backward().unwrap();
        check(
            &im,
            g.get(a.as_tensor()).unwrap(),
            -0.129033636770,
            &[
                -0.004721724972,
                -0.001393739901,
                0.002589742823,
                0.065153312356,
                0.093779246938,
                0.078299336344,
                0.030908021987,
                -0.012819943039,
                -0.050518488536,
                -0.005065021050,
                -0.001452362762,
                0.002843364426,
            ],
        );
    }

    #[test]
    fn info_min_matches_pytorch() {
        let z = Var::from_tensor(&vals(15, 0.5, 2.0, (5, 3))).unwrap();
        let l = info_min(z.as_tensor()).unwrap();
        let g = l.backward().unwrap();
        check(
            &l,
            g.get(z.as_tensor()).unwrap(),
            0.177394623685,
            &[
                0.037788651214,
                0.067424083871,
                0.075081220948,
                0.039248229839,
                0.001647003718,
                -0.056401647502,
                -0.022063767671,
                -0.035474216186,
                -0.012038310201,
                0.038382899921,
                0.067783870500,
                0.074651242203,
                0.038662368091,
                0.000646204740,
                -0.057241860779,
            ],
        );
    }

    #[test]
    fn label_smoothed_ce_matches_pytorch() {
        let logits = Var::from_tensor(&vals(12, 2.0, 3.0, (3, 4))).unwrap();
        let labels = Tensor::from_slice(&[1u32, 3, 0], 3, &Device::Cpu).unwrap();
        let l = label_smoothed_ce(logits.as_tensor(), &labels, 0.1).unwrap();
        let g = l.backward().unwrap();
        check(
            &l,
            g.get(logits.as_tensor()).unwrap(),
            1.020998553231,
            &[
                0.253814973733,
                -0.246579394433,
                -0.000373605444,
                -0.006861973857,
                -0.005797768790,
                -0.002269821385,
                0.030904520107,
                -0.022836929932,
                -0.144451379983,
                0.126212223899,
                0.022597168508,
                -0.004358012424,
            ],
        );
    }
}
