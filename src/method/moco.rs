//! MoCo-MTL (Fernando et al., ICLR 2023; as LibMTL's `weighting/MoCo.py`): a moving
//! estimate Y (T × D) of the normalised per-task gradients and task weights λ updated
//! against Y Yᵀ. Each step k: ĝ_t = g_t / (‖g_t‖ + 1e-8) · L_t; Y ← Y − (β/k^{β_σ})(Y − Ĝ);
//! λ ← update(λ − (γ/k^{γ_σ})(Y Yᵀ + ρI)λ); shared gradient Yᵀλ. Defaults β = 0.5,
//! β_σ = 0.5, γ = 0.1, γ_σ = 0.5, ρ = 0. `update` is LibMTL's softmax (default here, as the
//! reference code) or the paper's Euclidean projection onto the simplex; k counts steps or
//! epochs.
//!
//! Rows are folded into Y one task at a time ([`MoCo::absorb`]), so a step holds Y, one
//! task's gradient and the result: T + 2 gradient-sized vectors, not 2T.
//! A task absent from a mixed batch contributes ĝ_t = 0.

use crate::spec::options::{LambdaUpdate, MocoConfig, StepDecay};

pub struct MoCo {
    cfg: MocoConfig,
    y: Vec<Vec<f32>>,
    lambda: Vec<f64>,
}

impl MoCo {
    pub fn new(cfg: MocoConfig, tasks: usize) -> Self {
        MoCo {
            cfg,
            y: vec![Vec::new(); tasks],
            lambda: vec![1.0 / tasks as f64; tasks],
        }
    }

    /// What the step sizes' k counts.
    pub fn decay(&self) -> StepDecay {
        self.cfg.decay
    }

    /// Fold task `t`'s gradient (loss `loss`) into Y at step `k` (1-based); `None` for a
    /// task absent from the batch.
    pub fn absorb(&mut self, t: usize, k: u64, grad: Option<(&[f32], f64)>, dim: usize) {
        let step = self.cfg.beta / (k as f64).powf(self.cfg.beta_sigma);
        let y = &mut self.y[t];
        if y.len() != dim {
            *y = vec![0.0; dim];
        }
        match grad {
            Some((g, loss)) => {
                let norm = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                let s = loss / (norm + 1e-8);
                for (yi, gi) in y.iter_mut().zip(g) {
                    let target = *gi as f64 * s;
                    *yi = (*yi as f64 - step * (*yi as f64 - target)) as f32;
                }
            }
            None => y
                .iter_mut()
                .for_each(|yi| *yi = (*yi as f64 * (1.0 - step)) as f32),
        }
    }

    /// Y (T × D, f32) and λ (T, f64), for the checkpoint; `None` before the first step.
    pub fn state(&self) -> Option<(Vec<f32>, usize, Vec<f64>)> {
        let dim = self.y.first().map_or(0, Vec::len);
        if dim == 0 || self.y.iter().any(|r| r.len() != dim) {
            return None;
        }
        Some((self.y.concat(), dim, self.lambda.clone()))
    }

    /// Restores [`MoCo::state`]; refuses a state of another task count.
    pub fn restore(&mut self, y: &[f32], dim: usize, lambda: &[f64]) -> Result<(), String> {
        let t = self.lambda.len();
        if lambda.len() != t || y.len() != t * dim {
            return Err(format!(
                "MoCo-MTL state for {} tasks and {} values, expected {t} tasks",
                lambda.len(),
                y.len()
            ));
        }
        self.y = y.chunks(dim.max(1)).map(<[f32]>::to_vec).collect();
        self.lambda = lambda.to_vec();
        Ok(())
    }

    /// Update λ at step `k` and return (λ, shared gradient Yᵀλ).
    pub fn finish(&mut self, k: u64) -> (Vec<f64>, Vec<f32>) {
        let t = self.y.len();
        let dim = self.y.iter().map(Vec::len).max().unwrap_or(0);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
        };
        let mut yyt = vec![0.0; t * t];
        for i in 0..t {
            for j in i..t {
                let d = dot(&self.y[i], &self.y[j]);
                yyt[i * t + j] = d;
                yyt[j * t + i] = d;
            }
        }
        let rate = self.cfg.gamma / (k as f64).powf(self.cfg.gamma_sigma);
        let stepped: Vec<f64> = (0..t)
            .map(|i| {
                let mv: f64 = (0..t)
                    .map(|j| {
                        (yyt[i * t + j] + if i == j { self.cfg.rho } else { 0.0 }) * self.lambda[j]
                    })
                    .sum();
                self.lambda[i] - rate * mv
            })
            .collect();
        self.lambda = match self.cfg.lambda_update {
            LambdaUpdate::Softmax => softmax(&stepped),
            LambdaUpdate::Simplex => simplex_projection(&stepped),
        };
        let mut shared = vec![0.0f32; dim];
        for (row, l) in self.y.iter().zip(&self.lambda) {
            for (s, y) in shared.iter_mut().zip(row) {
                *s += (*y as f64 * l) as f32;
            }
        }
        (self.lambda.clone(), shared)
    }
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Euclidean projection onto the probability simplex (Duchi et al., 2008).
pub fn simplex_projection(v: &[f64]) -> Vec<f64> {
    let mut u = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let mut css = 0.0;
    let mut theta = 0.0;
    for (i, ui) in u.iter().enumerate() {
        css += ui;
        let t = (css - 1.0) / (i + 1) as f64;
        if ui - t > 0.0 {
            theta = t;
        }
    }
    v.iter().map(|x| (x - theta).max(0.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const G_FULL: [[f32; 4]; 3] = [[1., 2., 0., 1.], [0., 1., 1., -1.], [2., 0., 1., 1.]];
    const G_RANK2: [[f32; 4]; 3] = [[1., 0., 1., 0.], [2., 0., 2., 0.], [0., 1., 0., 1.]];

    fn close(got: &[f64], want: &[f64], tol: f64) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < tol, "{got:?} vs {want:?}");
        }
    }

    /// Three MoCo steps against `tests/reference/weightings.py` (LibMTL's update in float64
    /// PyTorch), with both λ updates.
    #[test]
    fn three_steps_match_pytorch() {
        let gs: Vec<Vec<Vec<f32>>> = vec![
            G_FULL.iter().map(|r| r.to_vec()).collect(),
            G_FULL
                .iter()
                .zip(&G_RANK2)
                .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * 0.5 + y).collect())
                .collect(),
            G_FULL
                .iter()
                .zip(&G_RANK2)
                .map(|(a, b)| a.iter().zip(b).map(|(x, y)| y - x).collect())
                .collect(),
        ];
        let ls = [[1.0, 2.0, 0.5], [0.8, 1.5, 0.7], [0.6, 1.2, 0.9]];
        let want_softmax = [
            (
                [0.334719711951, 0.327136277388, 0.338144010661],
                [
                    0.137347731675,
                    0.325520966352,
                    0.223383895151,
                    -0.086036163476,
                ],
            ),
            (
                [0.334684429575, 0.326663449701, 0.338652120724],
                [
                    0.300971743831,
                    0.320798915429,
                    0.340735957162,
                    -0.000254799433,
                ],
            ),
            (
                [0.334415151866, 0.327865523074, 0.337719325060],
                [
                    0.228351007023,
                    0.174026456353,
                    0.273684686149,
                    0.018513482230,
                ],
            ),
        ];
        let want_simplex = [
            (
                [0.337579431817, 0.314662765450, 0.347757802734],
                [
                    0.139893876627,
                    0.319486856660,
                    0.217163513258,
                    -0.077269636631,
                ],
            ),
            (
                [0.340125358415, 0.301312381778, 0.358562259807],
                [
                    0.299526960615,
                    0.313771203885,
                    0.324223498333,
                    0.017135725729,
                ],
            ),
            (
                [0.341957732992, 0.292196800139, 0.365845466869],
                [
                    0.211591624389,
                    0.173557102095,
                    0.250037818394,
                    0.030718324640,
                ],
            ),
        ];
        for (update, want) in [
            (LambdaUpdate::Softmax, want_softmax),
            (LambdaUpdate::Simplex, want_simplex),
        ] {
            let mut m = MoCo::new(
                MocoConfig {
                    lambda_update: update,
                    ..Default::default()
                },
                3,
            );
            for (k, (g, l)) in gs.iter().zip(&ls).enumerate() {
                let k = k as u64 + 1;
                for t in 0..3 {
                    m.absorb(t, k, Some((&g[t], l[t])), 4);
                }
                let (lambda, shared) = m.finish(k);
                let (wl, wg) = want[k as usize - 1];
                // Y is kept in f32 (it is gradient-sized), the reference in f64.
                close(&lambda, &wl, 1e-7);
                let shared: Vec<f64> = shared.iter().map(|x| *x as f64).collect();
                close(&shared, &wg, 1e-6);
            }
        }
    }

    #[test]
    fn simplex_projection_is_a_distribution() {
        let p = simplex_projection(&[0.9, -0.3, 0.8]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p.iter().all(|x| *x >= 0.0));
        assert_eq!(simplex_projection(&[0.2, 0.3, 0.5]), vec![0.2, 0.3, 0.5]);
    }
}
