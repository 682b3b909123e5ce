//! Seeded sample selection shared by the real-data loaders: which samples a capped split
//! keeps, and the split names in [`super::TaskData`] order. Seeds for each file and split
//! come from [`crate::util::seed::derive_seed`].

use crate::util::rng::SplitMix64;

/// The names of the three splits, in [`super::TaskData`] order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// Indices of the samples to keep out of `n`: all of them without a cap (or when the cap is
/// at least `n`), else the first `cap` of a seeded permutation. Always ascending.
pub fn select_indices(n: usize, cap: Option<usize>, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    match cap {
        Some(cap) if cap < n => {
            SplitMix64::new(seed).shuffle(&mut idx);
            idx.truncate(cap);
            idx.sort_unstable();
            idx
        }
        _ => idx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::seed::derive_seed;

    #[test]
    fn selection_is_deterministic_and_capped() {
        assert_eq!(select_indices(5, None, 1), [0, 1, 2, 3, 4]);
        assert_eq!(select_indices(5, Some(9), 1), [0, 1, 2, 3, 4]);
        let a = select_indices(1000, Some(10), 7);
        let b = select_indices(1000, Some(10), 7);
        let c = select_indices(1000, Some(10), 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(derive_seed(1, &["a"]), derive_seed(1, &["b"]));
        assert_ne!(derive_seed(1, &["ab", "c"]), derive_seed(1, &["a", "bc"]));
    }
}
