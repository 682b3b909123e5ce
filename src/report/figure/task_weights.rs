//! The task weights of the gradient-balancing methods over the optimiser steps (MoCo-MTL's
//! λ on the simplex, Aligned-MTL's α, whose sum is its step scale): one plot per method,
//! side by side, one line per task (mean over seeds at each step), the legend beside them.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{draw_legend, legend_width, plot_height};
use super::{caption, frame, DrawResult, Figure, BANNER, CAPTION_LINE, FONT, PALETTE, TITLE};

/// One method's weights: per task (in `TaskWeights::tasks` order), (step, weight) points.
pub struct WeightPanel {
    pub title: String,
    pub lines: Vec<Vec<(u64, f64)>>,
}

pub struct TaskWeights {
    pub stem: String,
    pub title: String,
    /// Task labels, the lines' order.
    pub tasks: Vec<String>,
    pub panels: Vec<WeightPanel>,
    pub caption: Vec<String>,
    pub synthetic: bool,
}

const PLOT_W: u32 = 520;
const PLOT_H: u32 = 400;

/// Per task, the mean over runs (seeds) of the weight at each step.
pub fn mean_lines(
    tasks: &[String],
    runs: &[&[crate::store::task_weights::WeightRow]],
) -> Vec<Vec<(u64, f64)>> {
    tasks
        .iter()
        .map(|task| {
            let mut by_step: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
            for rows in runs {
                for r in rows.iter().filter(|r| &r.task == task) {
                    let e = by_step.entry(r.step).or_default();
                    e.0 += r.weight;
                    e.1 += 1;
                }
            }
            by_step
                .into_iter()
                .map(|(s, (sum, n))| (s, sum / n as f64))
                .collect()
        })
        .collect()
}

/// The window of [`smooth`] for lines of `steps` steps: a fiftieth of them (at least 1), so
/// the per-step noise of Aligned-MTL's α does not hide the trend.
pub fn smoothing_window(steps: usize) -> usize {
    (steps / 50).max(1)
}

/// Each point replaced by the mean of the `window` points ending at it (fewer at the start).
pub fn smooth(line: &[(u64, f64)], window: usize) -> Vec<(u64, f64)> {
    let mut sum = 0.0;
    line.iter()
        .enumerate()
        .map(|(i, &(step, v))| {
            sum += v;
            if i >= window {
                sum -= line[i - window].1;
            }
            (step, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

impl TaskWeights {
    fn legend_width(&self) -> u32 {
        legend_width(self.tasks.iter().map(String::as_str))
    }

    fn plot_height(&self) -> u32 {
        plot_height(self.tasks.len(), PLOT_H)
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &WeightPanel,
) -> DrawResult<DB> {
    let points = panel.lines.iter().flatten();
    let max_step = points.clone().map(|p| p.0).max().unwrap_or(1).max(2);
    // The data's own range: MoCo-MTL's λ may stay within a hair of 1/T.
    let hi = points.clone().map(|p| p.1).fold(f64::MIN, f64::max);
    let lo = points.map(|p| p.1).fold(f64::MAX, f64::min);
    let pad = ((hi - lo) * 0.08).max(1e-4);
    let (lo, hi) = if lo <= hi {
        (lo - pad, hi + pad)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .margin_top(30)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .caption(panel.title.as_str(), (FONT, 15))
        .build_cartesian_2d(1u64..max_step, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("optimiser step")
        .y_desc("task weight")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(RGBColor(236, 236, 236))
        .draw()?;
    for (k, line) in panel.lines.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        chart.draw_series(LineSeries::new(
            line.iter().copied(),
            colour.stroke_width(1),
        ))?;
    }
    Ok(())
}

impl Figure for TaskWeights {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        let caption = (CAPTION_LINE * self.caption.len() as i32 + 24) as u32;
        (
            PLOT_W * self.panels.len().max(1) as u32 + self.legend_width() + 20,
            (BANNER + TITLE) as u32 + self.plot_height() + caption,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = frame(root, self.synthetic, &self.title)?;
        let (plots, below) = body.split_vertically(self.plot_height());
        let mut rest = plots;
        for panel in &self.panels {
            let (area, right) = rest.split_horizontally(PLOT_W);
            draw_panel(&area, panel)?;
            rest = right;
        }
        let entries: Vec<(String, bool)> = self.tasks.iter().map(|t| (t.clone(), false)).collect();
        draw_legend(&rest, (16, 50), &entries)?;
        caption(&below, &self.caption, 8)
    }
}
