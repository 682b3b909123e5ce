//! Value noise: the smooth random fields behind the modality backgrounds.

use crate::util::rng::Xoshiro256;

/// Smooth random field: a `(n+1)²` lattice of uniform values, smoothly interpolated.
pub(super) struct ValueNoise {
    n: usize,
    lattice: Vec<f32>,
}

impl ValueNoise {
    pub(super) fn new(rng: &mut Xoshiro256, n: usize) -> Self {
        let lattice = (0..(n + 1) * (n + 1)).map(|_| rng.f32()).collect();
        ValueNoise { n, lattice }
    }

    /// Value at `x`, `y` in `0..1`.
    pub(super) fn at(&self, x: f32, y: f32) -> f32 {
        let (gx, gy) = (x * self.n as f32, y * self.n as f32);
        let (ix, iy) = ((gx as usize).min(self.n - 1), (gy as usize).min(self.n - 1));
        let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
        let (tx, ty) = (smooth(gx - ix as f32), smooth(gy - iy as f32));
        let row = self.n + 1;
        let at = |i: usize, j: usize| self.lattice[j * row + i];
        let top = at(ix, iy) + (at(ix + 1, iy) - at(ix, iy)) * tx;
        let bottom = at(ix, iy + 1) + (at(ix + 1, iy + 1) - at(ix, iy + 1)) * tx;
        top + (bottom - top) * ty
    }
}
