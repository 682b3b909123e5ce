//! Mean off-diagonal CKA per backbone stage, one line per method: the supplement claims
//! LoRKD decomposes shallow as well as deep knowledge, which shows here as its experts
//! drifting apart (CKA falling below MTL's) from the first stages on, or only at the end.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{
    caption, frame, text, text_width, DrawResult, Figure, BANNER, CAPTION_LINE, FONT, PALETTE,
    TITLE,
};
use crate::report::similarity::CkaMatrix;

pub struct CkaStages {
    stem: String,
    title: String,
    /// Layer names, shallow first.
    layers: Vec<String>,
    /// (method title, mean off-diagonal CKA per layer of `layers`; NaN where missing).
    series: Vec<(String, Vec<f64>)>,
    caption: Vec<String>,
    synthetic: bool,
}

/// `stage1` < `stage2` < … < `final`.
fn layer_rank(layer: &str) -> (u32, String) {
    match layer.strip_prefix("stage").and_then(|n| n.parse().ok()) {
        Some(n) => (n, String::new()),
        None if layer == "final" => (u32::MAX, String::new()),
        None => (u32::MAX - 1, layer.to_string()),
    }
}

const WIDTH: u32 = 900;
const PLOT_HEIGHT: u32 = 430;

impl CkaStages {
    /// From each method's matrices (one per layer), in the order given; `None` when there
    /// is nothing to draw.
    pub fn new(
        stem: String,
        title: String,
        matrices: Vec<(String, &CkaMatrix)>,
        caption: Vec<String>,
    ) -> Option<CkaStages> {
        let mut layers: Vec<String> = Vec::new();
        for (_, m) in &matrices {
            if !layers.contains(&m.layer) {
                layers.push(m.layer.clone());
            }
        }
        layers.sort_by_key(|l| layer_rank(l));
        let mut order: Vec<String> = Vec::new();
        let mut by_method: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (title, m) in &matrices {
            if !order.contains(title) {
                order.push(title.clone());
            }
            let values = by_method
                .entry(title.clone())
                .or_insert_with(|| vec![f64::NAN; layers.len()]);
            if let Some(i) = layers.iter().position(|l| l == &m.layer) {
                values[i] = m.mean_off_diagonal();
            }
        }
        if order.is_empty() {
            return None;
        }
        let synthetic = matrices.iter().any(|(_, m)| m.synthetic);
        Some(CkaStages {
            stem,
            title,
            layers,
            series: order
                .into_iter()
                .map(|t| {
                    let v = by_method.remove(&t).unwrap_or_default();
                    (t, v)
                })
                .collect(),
            caption,
            synthetic,
        })
    }
}

impl Figure for CkaStages {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        let caption = CAPTION_LINE * self.caption.len() as i32 + 20;
        let widest = self
            .caption
            .iter()
            .map(|c| text_width(c, 13.0) + 40)
            .max()
            .unwrap_or(0);
        (
            WIDTH.max(widest as u32),
            (BANNER + TITLE) as u32 + PLOT_HEIGHT + caption as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let plot = frame(root, self.synthetic, &self.title)?;
        let (plot, below) = plot.split_vertically(PLOT_HEIGHT);
        let last = self.layers.len().saturating_sub(1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.3f64..last + 0.3, 0.0f64..1.05)?;
        let layers = self.layers.clone();
        chart
            .configure_mesh()
            .x_labels(self.layers.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    layers.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("mean off-diagonal CKA")
            .x_desc("backbone stage (shallow → deep)")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (k, (name, values)) in self.series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| (i as f64, *v))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 5, colour.filled())),
            )?;
            // Values beside the points, above for the first series and below for the
            // others, so two close lines do not print over each other; never below the
            // axis labels.
            chart.draw_series(points.iter().map(|&(x, y)| {
                let dy = if k == 0 || y < 0.12 {
                    -14 - 14 * k as i32
                } else {
                    14
                };
                EmptyElement::at((x, y))
                    + Text::new(
                        format!("{y:.3}"),
                        (0, dy),
                        text(12.0, colour, HPos::Center, VPos::Center),
                    )
            }))?;
        }
        let all: Vec<f64> = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        let high = all.iter().sum::<f64>() / all.len().max(1) as f64 > 0.5;
        chart
            .configure_series_labels()
            // Where the lines are not: CKA near 1 leaves the bottom free, near 0 the top.
            .position(if high {
                SeriesLabelPosition::LowerLeft
            } else {
                SeriesLabelPosition::UpperLeft
            })
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 13))
            .draw()?;
        caption(&below, &self.caption, 10)
    }
}
