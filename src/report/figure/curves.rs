//! Training curves: the training loss and the validation accuracy per epoch, one line per
//! method (mean over seeds) with a band of ± one standard deviation where there are
//! several seeds, the two plots side by side and the legend in its own column.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{draw_legend, legend_width, plot_height};
use super::{caption, frame, DrawResult, Figure, BANNER, CAPTION_LINE, FONT, PALETTE, TITLE};
use crate::report::curves::{Curve, CurveQuantity};

/// One method's curves.
pub struct CurveSeries {
    pub name: String,
    /// Reference rows (foundation models) are dashed.
    pub dashed: bool,
    pub loss: Curve,
    pub accuracy: Curve,
}

pub struct TrainingCurves {
    pub stem: String,
    pub title: String,
    pub series: Vec<CurveSeries>,
    pub caption: Vec<String>,
    pub synthetic: bool,
}

const PLOT_W: u32 = 520;
const PLOT_H: u32 = 420;

impl TrainingCurves {
    fn legend_width(&self) -> u32 {
        legend_width(self.series.iter().map(|s| s.name.as_str()))
    }

    fn plot_height(&self) -> u32 {
        plot_height(self.series.len(), PLOT_H)
    }
}

fn draw_plot<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[CurveSeries],
    quantity: CurveQuantity,
) -> DrawResult<DB> {
    let curve = |s: &CurveSeries| match quantity {
        CurveQuantity::TrainLoss => s.loss.summary(),
        CurveQuantity::ValAccuracy => s.accuracy.summary(),
    };
    let all: Vec<(u32, f64, f64, usize)> = series.iter().flat_map(curve).collect();
    let max_epoch = all.iter().map(|p| p.0).max().unwrap_or(1).max(2);
    let (lo, hi) = match quantity {
        CurveQuantity::ValAccuracy => (0.0, 100.0),
        CurveQuantity::TrainLoss => {
            let hi = all
                .iter()
                .map(|p| p.1 + p.2)
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max);
            (0.0, (hi * 1.05).max(1e-3))
        }
    };
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .margin_top(30)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .caption(quantity.label(), (FONT, 15))
        .build_cartesian_2d(1u32..max_epoch, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(RGBColor(236, 236, 236))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let points = curve(s);
        if points.iter().any(|p| p.3 > 1) {
            let mut band: Vec<(u32, f64)> = points.iter().map(|p| (p.0, p.1 + p.2)).collect();
            band.extend(points.iter().rev().map(|p| (p.0, p.1 - p.2)));
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                colour.mix(0.18).filled(),
            )))?;
        }
        let line = points.iter().map(|p| (p.0, p.1));
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(line, 8, 5, colour.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(line, colour.stroke_width(2)))?;
        }
    }
    Ok(())
}

impl Figure for TrainingCurves {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        let caption = (CAPTION_LINE * self.caption.len() as i32 + 24) as u32;
        (
            2 * PLOT_W + self.legend_width() + 20,
            (BANNER + TITLE) as u32 + self.plot_height() + caption,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = frame(root, self.synthetic, &self.title)?;
        let (plots, below) = body.split_vertically(self.plot_height());
        let (loss, rest) = plots.split_horizontally(PLOT_W);
        let (accuracy, legend) = rest.split_horizontally(PLOT_W);
        draw_plot(&loss, &self.series, CurveQuantity::TrainLoss)?;
        draw_plot(&accuracy, &self.series, CurveQuantity::ValAccuracy)?;
        let entries: Vec<(String, bool)> = self
            .series
            .iter()
            .map(|s| (s.name.clone(), s.dashed))
            .collect();
        draw_legend(&legend, (16, 50), &entries)?;
        caption(&below, &self.caption, 8)
    }
}
