//! A tiny deterministic PRNG (splitmix64). Every random choice in training (shuffles,
//! initialisation seeds) is derived from (run seed, purpose, epoch), never from global state,
//! so a resumed run replays exactly the same sequence as an uninterrupted one.

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
        let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in purpose.bytes() {
            s = mix(s ^ b as u64);
        }
        for &e in extra {
            s = mix(s ^ e);
        }
        Self::new(s)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
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

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
