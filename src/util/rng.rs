//! Small deterministic generators, implemented here so that their streams never change
//! under us with a dependency's version: splitmix64 for training (shuffles, initialisation
//! seeds, data subsets), xoshiro256** with Box–Muller normals for the synthetic generator.
//! Every random choice in training is derived from (run seed, purpose, epoch) through
//! [`super::seed`], never from global state, so a resumed run replays exactly the same
//! sequence as an uninterrupted one.

use std::f32::consts::TAU;

use super::seed;

/// splitmix64 generator; good statistical quality for shuffles and cheap to seed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for a named purpose derived from a base seed and extra integers.
    pub fn derive(seed: u64, purpose: &str, extra: &[u64]) -> Self {
        Self::new(seed::derive(seed, purpose, extra))
    }

    pub fn next_u64(&mut self) -> u64 {
        seed::splitmix64(&mut self.state)
    }

    /// Uniform integer in `0..n` (n > 0), by rejection to avoid modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }
}

/// xoshiro256**, seeded through splitmix64 (the synthetic generator's stream).
pub struct Xoshiro256([u64; 4]);

impl Xoshiro256 {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        Xoshiro256(std::array::from_fn(|_| seed::splitmix64(&mut sm)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }

    /// Uniform in `0..n` (`n` > 0); the multiply-shift bias is far below anything we measure.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.f32() < p
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    pub fn unit_vector(&mut self) -> (f32, f32) {
        let (s, c) = self.range(0.0, TAU).sin_cos();
        (c, s)
    }
}

/// Box–Muller normals, using both values of each pair.
#[derive(Default)]
pub struct Normals(Option<f32>);

impl Normals {
    pub fn next_normal(&mut self, rng: &mut Xoshiro256) -> f32 {
        if let Some(z) = self.0.take() {
            return z;
        }
        let u1 = 1.0 - rng.f32();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = rng.range(0.0, TAU).sin_cos();
        self.0 = Some(r * s);
        r * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_and_deterministic() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        SplitMix64::derive(7, "x", &[1]).shuffle(&mut a);
        SplitMix64::derive(7, "x", &[1]).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, (0..100).collect::<Vec<_>>());
    }
}
