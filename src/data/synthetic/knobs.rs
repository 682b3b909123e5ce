//! The difficulty knob: everything that `difficulty` scales, derived in one place so that
//! the calibration stays together.

/// Everything the difficulty knob controls, derived once per data set.
///
/// The constants were calibrated against two references on MedMNIST-like tasks with 500
/// training images each: raw-pixel nearest-class-mean accuracy, and a ResNet of widths
/// 16/32/64/128 trained for 4 epochs. At 0.5 the ResNet averaged about 0.54 (0.39–0.73 on
/// tasks of up to 11 labels) against about 0.36 for nearest-class-mean; at 0 it reached
/// about 0.9, at 1 near chance. Changing them changes every synthetic result: bump
/// [`GENERATOR_VERSION`](super::GENERATOR_VERSION).
pub(super) struct Knobs {
    pub(super) difficulty: f32,
    /// Probability that an off-label shape, orientation or texture is random rather than
    /// the task's default; also scales size and contrast variation.
    pub(super) spread: f32,
    /// Position jitter as a fraction of its full range.
    pub(super) jitter: f32,
    /// Standard deviation of additive pixel noise (intensities in 0..1).
    pub(super) noise: f32,
    /// Opacity with which objects pull pixels towards their bright/dark level.
    pub(super) strength: f32,
    pub(super) max_distractors: usize,
    /// Upper bound of a distractor's radius relative to a target's.
    pub(super) distractor_scale: f32,
    /// Amplitude of the modality background's random variation.
    pub(super) background: f32,
    /// Probability that a sample's objects are dark instead of bright (or vice versa).
    pub(super) flip: f32,
    /// Half-width of the orientation jitter, radians.
    pub(super) orient_jitter: f32,
}

impl Knobs {
    pub(super) fn new(d: f32) -> Self {
        Knobs {
            difficulty: d,
            spread: 0.1 + 0.5 * d,
            jitter: 0.3 + 0.7 * d,
            noise: 0.02 + 0.08 * d,
            strength: 0.85 - 0.3 * d,
            max_distractors: (3.0 * d).round() as usize,
            distractor_scale: 0.4 + 0.3 * d,
            background: 0.12 + 0.25 * d,
            flip: 0.1 + 0.4 * d,
            orient_jitter: (4.0 + 14.0 * d).to_radians(),
        }
    }
}
