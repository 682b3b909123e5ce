//! `harness bench eks`: the training step (forward + backward) of one EKS convolution in
//! its three forms ([`EksForm`]) on a batch mixing many tasks, at the groups = 1
//! convolution shapes of the ShuffleNetV2 1.0× student (32 px, stride-1 stem). All forms
//! compute the same thing (tested in `model::lowrank`); this shows what each costs. The
//! forms run interleaved, round by round, so machine noise hits them alike.

use std::fmt::Write as _;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use serde::Serialize;

use super::{median, timed_repeats};
use crate::error::Result;
use crate::kernels::conv::ConvGeometry;
use crate::model::init::SeededInit;
use crate::model::layers::conv::conv2d_with;
use crate::model::layers::lowrank::{EksConv, EksForm, LowRank};

/// What `harness bench eks` measures.
#[derive(Debug, Clone, Serialize)]
pub struct EksBenchOptions {
    pub tasks: usize,
    pub batch: usize,
    pub rank: usize,
    pub alpha: f64,
    pub threads: usize,
    /// Seconds per form and round, at least.
    pub min_secs: f64,
    pub rounds: usize,
    /// Of the machine that measured (README "Speed on the CPU").
    pub instruction_set: String,
}

/// One convolution shape: `(key, cin, cout, k, stride, input size)`.
const SHAPES: [(&str, usize, usize, usize, usize, usize); 5] = [
    ("stem 3→24 3×3 32px", 3, 24, 3, 1, 32),
    ("stage2 1×1 58→58 16px", 58, 58, 1, 1, 16),
    ("stage3 1×1 116→116 8px", 116, 116, 1, 1, 8),
    ("stage4 1×1 232→232 4px", 232, 232, 1, 1, 4),
    ("conv5 1×1 464→1024 4px", 464, 1024, 1, 1, 4),
];

/// Median step seconds of each form at one shape.
#[derive(Debug, Clone, Serialize)]
pub struct EksShapeResult {
    pub shape: String,
    /// `(form, median seconds)` in [`EksForm::ALL`] order.
    pub seconds: Vec<(String, f64)>,
    /// The factorised form's median seconds (1×1 shapes only).
    pub factorised_s: Option<f64>,
    /// What the supplement's cost model picks for this shape (`EksForm::Auto`).
    pub cost_model_picks: String,
}

impl EksShapeResult {
    fn of(&self, form: EksForm) -> f64 {
        let i = EksForm::ALL.iter().position(|f| *f == form).unwrap_or(0);
        self.seconds[i].1
    }
}

/// Task of sample `i`: every task present, interleaved as a shuffled union would be.
fn task_ids(batch: usize, tasks: usize) -> Vec<usize> {
    (0..batch).map(|i| (i * 7 + i / tasks) % tasks).collect()
}

pub fn run(o: &EksBenchOptions, mut progress: impl FnMut(&str)) -> Result<Vec<EksShapeResult>> {
    let dev = Device::Cpu;
    let tasks = task_ids(o.batch, o.tasks);
    let mut out = Vec::new();
    for (key, cin, cout, k, stride, size) in SHAPES {
        progress(&format!("eks {key}…"));
        let map = VarMap::new();
        let vb = SeededInit::var_builder(&map, 0, &dev);
        let g = ConvGeometry {
            k,
            stride,
            padding: k / 2,
            dilation: 1,
        };
        let base = conv2d_with(cin, cout, g, vb.pp("conv"))?;
        let low = LowRank {
            rank: o.rank,
            alpha: o.alpha,
        };
        let conv = EksConv::new(base, o.tasks, low, vb.pp("conv"))?;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (o.batch, cin, size, size), &dev)?)?;
        let y = conv.forward(x.as_tensor(), &tasks, EksForm::TaskGrouped)?;
        let probe = Tensor::randn(0f32, 1.0, y.dims(), &dev)?;
        let step = |form: EksForm| -> candle_core::Result<()> {
            let y = conv.forward(x.as_tensor(), &tasks, form)?;
            (y * &probe)?.sum_all()?.backward().map(drop)
        };
        let mut forms = EksForm::ALL.to_vec();
        if k == 1 {
            forms.push(EksForm::Factorised);
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); forms.len()];
        for _ in 0..o.rounds {
            for (i, &form) in forms.iter().enumerate() {
                step(form)?;
                times[i].extend(timed_repeats(1, o.min_secs, || step(form))?);
            }
        }
        let mut seconds: Vec<(String, f64)> = forms
            .iter()
            .zip(times)
            .map(|(f, t)| (f.name().to_string(), median(t).unwrap_or(f64::NAN)))
            .collect();
        let factorised_s = (k == 1).then(|| seconds.pop().map(|(_, t)| t)).flatten();
        let picks = match conv.chosen_form(x.as_tensor(), &tasks)? {
            EksForm::Factorised => "factorised",
            _ => "merged",
        };
        out.push(EksShapeResult {
            shape: key.to_string(),
            seconds,
            factorised_s,
            cost_model_picks: picks.to_string(),
        });
    }
    Ok(out)
}

pub fn render_text(o: &EksBenchOptions, results: &[EksShapeResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "EKS convolution training step (forward + backward), batch {} over {} tasks, rank {}, α {}, {} threads, {}, median ms:",
        o.batch, o.tasks, o.rank, o.alpha, o.threads, o.instruction_set
    );
    let _ = writeln!(
        s,
        "{:<26} {:>10} {:>13} {:>11} {:>15} {:>16} {:>11} {:>16} {:>12}",
        "shape",
        "reference",
        "task-grouped",
        "LoRA-style",
        "ref/grouped",
        "LoRA/grouped",
        "factorised",
        "fact./grouped",
        "model picks"
    );
    let fact = |r: &EksShapeResult, b: f64| match r.factorised_s {
        Some(f) => (format!("{:.2}", f * 1e3), format!("{:.2}×", f / b)),
        None => ("—".to_string(), "—".to_string()),
    };
    let (mut total_ref, mut total_grouped, mut total_lora) = (0.0, 0.0, 0.0);
    for r in results {
        let (a, b, c) = (
            r.of(EksForm::Reference),
            r.of(EksForm::TaskGrouped),
            r.of(EksForm::LoraStyle),
        );
        total_ref += a;
        total_grouped += b;
        total_lora += c;
        let (f, fb) = fact(r, b);
        let _ = writeln!(
            s,
            "{:<26} {:>10.2} {:>13.2} {:>11.2} {:>14.2}× {:>15.2}× {:>11} {:>16} {:>12}",
            r.shape,
            a * 1e3,
            b * 1e3,
            c * 1e3,
            a / b,
            c / b,
            f,
            fb,
            r.cost_model_picks
        );
    }
    let _ = writeln!(
        s,
        "{:<26} {:>10.2} {:>13.2} {:>11.2} {:>14.2}× {:>15.2}×",
        "all shapes",
        total_ref * 1e3,
        total_grouped * 1e3,
        total_lora * 1e3,
        total_ref / total_grouped,
        total_lora / total_grouped
    );
    let _ = writeln!(
        s,
        "ratios > 1× mean the task-grouped form is faster; the reference form runs one convolution per sample (groups = batch); the factorised form ((x∗A_t)∗B_t) exists for 1×1 layers; \"model picks\": the supplement's cost model (merged when T·r/(b·l) + 1 ≤ r), which training follows"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_is_present_and_mixed() {
        let ids = task_ids(64, 10);
        for t in 0..10 {
            assert!(ids.contains(&t));
        }
        assert!(
            ids.windows(2).all(|w| w[0] != w[1]),
            "neighbours differ: {ids:?}"
        );
    }
}
