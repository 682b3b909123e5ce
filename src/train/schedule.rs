//! Learning-rate schedules, evaluated per optimiser step.

use crate::spec::run::{OptimConfig, Schedule};

/// Learning rate at `step` of `total_steps`, with linear warm-up over `warmup_steps`.
pub fn learning_rate(
    cfg: &OptimConfig,
    step: usize,
    total_steps: usize,
    warmup_steps: usize,
) -> f64 {
    if step < warmup_steps {
        return cfg.lr * (step + 1) as f64 / warmup_steps as f64;
    }
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Cosine => {
            let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
            let progress = ((step - warmup_steps) as f64 / span).min(1.0);
            0.5 * cfg.lr * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::run::OptimizerKind;

    fn cfg(schedule: Schedule) -> OptimConfig {
        OptimConfig {
            name: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule,
            warmup_epochs: 0,
        }
    }

    #[test]
    fn cosine_starts_at_lr_and_halves_midway() {
        let c = cfg(Schedule::Cosine);
        assert!((learning_rate(&c, 0, 100, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&c, 50, 100, 0) - 0.05).abs() < 1e-12);
        assert!(learning_rate(&c, 99, 100, 0) < 0.001);
        assert!((learning_rate(&c, 4, 100, 10) - 0.05).abs() < 1e-12);
        assert_eq!(learning_rate(&cfg(Schedule::Constant), 70, 100, 0), 0.1);
    }
}
