//! When a run writes its checkpoint (`--checkpoint-every`, `--checkpoint-interval`): every N
//! epochs, after the last, and once an interval has passed, between two steps if need be.

/// When a run writes its checkpoint. Results do not depend on it: a run resumed from an
/// earlier checkpoint recomputes the epochs after it exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointPolicy {
    pub every_epochs: u32,
    /// Also once this long has passed since the last checkpoint, inside an epoch too.
    pub interval: Option<std::time::Duration>,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_epochs: 1,
            interval: None,
        }
    }
}

impl CheckpointPolicy {
    /// Whether to checkpoint after `epochs_done` of `total` epochs, `since` the last one.
    pub fn due(&self, epochs_done: u32, total: u32, since: std::time::Duration) -> bool {
        epochs_done >= total
            || epochs_done.is_multiple_of(self.every_epochs.max(1))
            || self.interval.is_some_and(|i| since >= i)
    }
}

#[cfg(test)]
mod tests {
    use super::CheckpointPolicy;
    use std::time::Duration;

    #[test]
    fn checkpoints_every_n_epochs_after_an_interval_and_at_the_end() {
        let p = CheckpointPolicy {
            every_epochs: 3,
            interval: Some(Duration::from_secs(60)),
        };
        let short = Duration::from_secs(1);
        let due: Vec<u32> = (1..=7).filter(|&e| p.due(e, 7, short)).collect();
        assert_eq!(due, [3, 6, 7]);
        assert!(p.due(1, 7, Duration::from_secs(61)));
        let every = CheckpointPolicy::default();
        assert!((1..=7).all(|e| every.due(e, 7, short)));
    }
}
