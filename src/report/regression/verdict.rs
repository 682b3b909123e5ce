//! The verdict of one cell: is tonight's mean worse than the baseline's by more than the
//! seeds' spread explains, and by more than a change anyone cares about?
//!
//! The test is Welch's: the difference of means with a two-sided confidence interval from
//! Student's t at the Welch–Satterthwaite degrees of freedom (each side keeps its own
//! variance; a code change may well change the spread). A cell is *regressed* when the
//! whole interval lies on the worse side of zero **and** the difference is at least the
//! minimum effect; *improved* symmetrically; otherwise *within noise*. This is criterion's
//! rule (a confidence interval of the change, plus a noise threshold) with seeds in place of
//! criterion's resamples: seeds are the replicates a researcher can afford.
//!
//! Fewer than two values on a side give no variance for it: the other side's variance then
//! stands for both (the spread of one code version is the best guess for the other's). With
//! one value on both sides (the foundation runs use one seed) the cell has no spread of its
//! own, and the caller passes the spread pooled over the sweep's other cells of the same
//! quantity ([`Pooled`]): without it one test image more or less (1 point at 96 images)
//! would read as a change on every machine whose last bits differ.
//! Identical values on both sides (a deterministic re-run) give a difference of exactly 0,
//! within noise whatever the spread.

use serde::Serialize;

use crate::util::student_t;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The run of a seed failed or diverged in this sweep.
    Failed,
    Regressed,
    Improved,
    WithinNoise,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Failed => "failed",
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::WithinNoise => "within noise",
        }
    }

    /// Whether the verdict makes `regress` exit 1.
    pub fn is_regression(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::Regressed)
    }
}

/// The difference of means (current − baseline) and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    pub diff: f64,
    pub low: f64,
    pub high: f64,
    /// Welch–Satterthwaite degrees of freedom (`inf` when there is no spread).
    pub df: f64,
    /// Whether a side's variance came from the other side, or neither side had one.
    pub spread: Spread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Both sides had two or more values.
    Both,
    /// One side had a single value; the other's variance was used for it.
    Borrowed,
    /// One value a side: the spread pooled over the sweep's other cells of the quantity.
    Pooled,
    /// One value a side and nothing to pool: only the minimum effect decides.
    None,
}

/// A variance pooled over many cells, with its degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooled {
    pub variance: f64,
    pub df: f64,
}

impl Pooled {
    /// Pools the sample variances of `groups` (each with two or more values), weighted by
    /// their degrees of freedom; `None` when no group has two values.
    pub fn of<'a>(groups: impl IntoIterator<Item = &'a [f64]>) -> Option<Pooled> {
        let (mut ss, mut df) = (0.0, 0.0);
        for g in groups {
            if let (_, Some(var)) = mean_var(g) {
                let k = (g.len() - 1) as f64;
                ss += var * k;
                df += k;
            }
        }
        (df > 0.0).then(|| Pooled {
            variance: ss / df,
            df,
        })
    }
}

fn mean_var(x: &[f64]) -> (f64, Option<f64>) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = (x.len() > 1).then(|| x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0));
    (mean, var)
}

/// Welch's interval for mean(current) − mean(baseline) at `confidence` (e.g. 0.95). Both
/// sides must be non-empty. `pooled` stands for the variance when neither side has one.
pub fn welch(
    baseline: &[f64],
    current: &[f64],
    confidence: f64,
    pooled: Option<Pooled>,
) -> Difference {
    let (mb, vb) = mean_var(baseline);
    let (mc, vc) = mean_var(current);
    let (nb, nc) = (baseline.len() as f64, current.len() as f64);
    let diff = mc - mb;
    // (variance, degrees of freedom) of each side: a borrowed variance keeps the degrees of
    // freedom of the side it came from; a pooled one is a single estimate for both sides.
    let ((vb, db), (vc, dc), spread) = match (vb, vc) {
        (Some(b), Some(c)) => ((b, nb - 1.0), (c, nc - 1.0), Spread::Both),
        (Some(b), None) => ((b, nb - 1.0), (b, nb - 1.0), Spread::Borrowed),
        (None, Some(c)) => ((c, nc - 1.0), (c, nc - 1.0), Spread::Borrowed),
        (None, None) => match pooled {
            Some(p) => ((p.variance, p.df), (p.variance, p.df), Spread::Pooled),
            None => ((0.0, 1.0), (0.0, 1.0), Spread::None),
        },
    };
    let (eb, ec) = (vb / nb, vc / nc);
    let se2 = eb + ec;
    if se2 <= 0.0 {
        return Difference {
            diff,
            low: diff,
            high: diff,
            df: f64::INFINITY,
            spread,
        };
    }
    let df = match spread {
        Spread::Pooled => db,
        _ => se2 * se2 / (eb * eb / db + ec * ec / dc),
    };
    let t = student_t::quantile(1.0 - (1.0 - confidence) / 2.0, df);
    let half = t * se2.sqrt();
    Difference {
        diff,
        low: diff - half,
        high: diff + half,
        df,
        spread,
    }
}

/// The verdict of a difference where higher is better, with `min_effect` the smallest
/// change (in the difference's units, > 0) that counts.
pub fn judge(d: &Difference, min_effect: f64) -> Verdict {
    judge_between(d, -min_effect, min_effect)
}

/// As [`judge`], with separate thresholds: a drop counts at `diff <= worse` (< 0), a rise
/// at `diff >= better` (> 0). A ratio compared in log space needs these: 10 % slower is
/// ln 0.9, 10 % faster ln 1.1.
pub fn judge_between(d: &Difference, worse: f64, better: f64) -> Verdict {
    if d.high < 0.0 && d.diff <= worse {
        Verdict::Regressed
    } else if d.low > 0.0 && d.diff >= better {
        Verdict::Improved
    } else {
        Verdict::WithinNoise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scipy: `stats.ttest_ind(c, b, equal_var=False).confidence_interval(0.95)` and `.df`
    /// (tests/reference/welch.py).
    #[test]
    fn welch_matches_scipy() {
        let b = [71.0, 74.5, 69.0];
        let c = [65.0, 66.5, 61.25, 63.0];
        let d = welch(&b, &c, 0.95, None);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(d.diff, -7.5625), "{d:?}");
        assert!(close(d.df, 3.8850870677203004), "{d:?}");
        assert!(close(d.low, -13.109910021850668), "{d:?}");
        assert!(close(d.high, -2.015089978149332), "{d:?}");
        assert_eq!(d.spread, Spread::Both);
        assert_eq!(judge(&d, 1.0), Verdict::Regressed);
        // The same change is within noise when it is smaller than the minimum effect.
        assert_eq!(judge(&d, 8.0), Verdict::WithinNoise);
        let up = welch(&c, &b, 0.95, None);
        assert_eq!(judge(&up, 1.0), Verdict::Improved);
    }

    #[test]
    fn identical_values_are_within_noise_and_lone_values_need_the_minimum_effect() {
        let x = [70.0, 72.0, 71.0];
        let d = welch(&x, &x, 0.95, None);
        assert_eq!(d.diff, 0.0);
        assert!(d.low < 0.0 && d.low == -d.high, "{d:?}");
        assert_eq!(judge(&d, 1.0), Verdict::WithinNoise);
        let same = welch(&[80.0], &[80.0], 0.95, None);
        assert_eq!(judge(&same, 1.0), Verdict::WithinNoise);
        assert_eq!(same.spread, Spread::None);
        let lone = welch(&[80.0], &[78.5], 0.95, None);
        assert_eq!(judge(&lone, 1.0), Verdict::Regressed);
        assert_eq!(judge(&lone, 2.0), Verdict::WithinNoise);
        // With the sweep's pooled spread, one image's worth (1.04 points at 96 test images)
        // is within noise: variance 9 on 4 df gives ±2.776·√18 = ±11.8 points.
        let pooled = Pooled::of([&[1.0, 4.0, 7.0][..], &[2.0, 5.0, 8.0][..]]).unwrap();
        assert_eq!(
            pooled,
            Pooled {
                variance: 9.0,
                df: 4.0
            }
        );
        let one = welch(&[80.0], &[78.96], 0.95, Some(pooled));
        assert_eq!(one.spread, Spread::Pooled);
        assert!((one.high - one.diff - 2.7764451051977934 * 18f64.sqrt()).abs() < 1e-9);
        assert_eq!(judge(&one, 1.0), Verdict::WithinNoise);
        assert!(Pooled::of([&[1.0][..]]).is_none());
        // One seed tonight against three in the baseline: the baseline's spread is borrowed.
        let b = welch(&x, &[69.0], 0.95, None);
        assert_eq!(b.spread, Spread::Borrowed);
        // Both sides then have 2 degrees of freedom: df = (4/3)² / ((1/3)²/2 + 1²/2) = 3.2.
        assert!(
            b.low < b.diff && b.high > b.diff && (b.df - 3.2).abs() < 1e-12,
            "{b:?}"
        );
    }
}
