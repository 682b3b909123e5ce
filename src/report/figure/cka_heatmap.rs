//! The supplement's Figure 5: the CKA task-similarity matrices of several methods' experts
//! side by side (MTL and LoRKD in `cka.toml`), on one colour scale with one colour bar, task
//! names on both axes, every cell's value written in it, and under them the mean
//! off-diagonal CKA of each matrix and the protocol the numbers were made under.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontTransform;

use super::{banner, bold, caption, text, text_width, DrawResult, Figure, BANNER, CAPTION_LINE};
use crate::report::similarity::CkaMatrix;

/// One panel: a method's matrix and its title.
pub struct Panel<'a> {
    pub title: String,
    pub matrix: &'a CkaMatrix,
}

pub struct CkaHeatmap<'a> {
    pub stem: String,
    pub title: String,
    pub panels: Vec<Panel<'a>>,
    /// Axis labels, in the matrices' task order.
    pub labels: Vec<String>,
    /// Lines under the figure: the means, the protocol, n, the estimator, the runs.
    pub caption: Vec<String>,
}

const GAP: i32 = 40;
const BAR: i32 = 18;
const LABEL_FONT: f64 = 13.0;
const CAPTION_FONT: f64 = 13.0;

impl CkaHeatmap<'_> {
    fn tasks(&self) -> usize {
        self.labels.len()
    }

    fn cell(&self) -> i32 {
        (520 / self.tasks().max(1) as i32).clamp(20, 46)
    }

    fn label_room(&self) -> i32 {
        self.labels
            .iter()
            .map(|l| text_width(l, LABEL_FONT))
            .max()
            .unwrap_or(0)
            + 10
    }

    fn synthetic(&self) -> bool {
        self.panels.iter().any(|p| p.matrix.synthetic)
    }

    /// The colour scale: [lo, 1], lo the smallest value rounded down to a tenth.
    fn scale(&self) -> (f64, f64) {
        let lo = self
            .panels
            .iter()
            .flat_map(|p| p.matrix.values.iter().flatten())
            .copied()
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::min);
        (((lo * 10.0).floor() / 10.0).clamp(0.0, 0.9), 1.0)
    }

    fn layout(&self) -> Layout {
        let cell = self.cell();
        let side = cell * self.tasks() as i32;
        let left = 20 + self.label_room();
        let top = BANNER + 78;
        let panels = self.panels.len() as i32;
        let bar_x = left + panels * side + (panels - 1) * GAP + 30;
        let width = bar_x + BAR + 60;
        let caption_width = self
            .caption
            .iter()
            .map(|c| text_width(c, CAPTION_FONT))
            .max()
            .unwrap_or(0)
            + 40;
        let bottom = top + side + self.label_room() + 16;
        Layout {
            cell,
            side,
            left,
            top,
            bar_x,
            width: width.max(caption_width),
            height: bottom + CAPTION_LINE * self.caption.len() as i32 + 16,
            bottom,
        }
    }
}

struct Layout {
    cell: i32,
    side: i32,
    left: i32,
    top: i32,
    bar_x: i32,
    width: i32,
    height: i32,
    /// Where the caption starts.
    bottom: i32,
}

fn colour(v: f64, (lo, hi): (f64, f64)) -> RGBColor {
    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    ViridisRGB::get_color_normalized(t, 0.0, 1.0)
}

impl Figure for CkaHeatmap<'_> {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        let l = self.layout();
        (l.width as u32, l.height as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let l = self.layout();
        let scale = self.scale();
        root.fill(&WHITE)?;
        banner(root, self.synthetic(), BANNER)?;
        root.draw(&Text::new(
            self.title.as_str(),
            (l.width / 2, BANNER + 22),
            bold(17.0, BLACK, HPos::Center, VPos::Center),
        ))?;
        let t = self.tasks();
        let value_font = (l.cell as f64 * 0.30).clamp(8.0, 12.0);
        for (p, panel) in self.panels.iter().enumerate() {
            let x0 = l.left + p as i32 * (l.side + GAP);
            root.draw(&Text::new(
                format!(
                    "{}  (mean off-diagonal {:.3})",
                    panel.title,
                    panel.matrix.mean_off_diagonal()
                ),
                (x0 + l.side / 2, l.top - 18),
                bold(15.0, BLACK, HPos::Center, VPos::Center),
            ))?;
            for i in 0..t {
                for j in 0..t {
                    let v = panel.matrix.values[i][j];
                    let (x, y) = (x0 + j as i32 * l.cell, l.top + i as i32 * l.cell);
                    let fill = if v.is_finite() {
                        colour(v, scale)
                    } else {
                        RGBColor(220, 220, 220)
                    };
                    root.draw(&Rectangle::new(
                        [(x, y), (x + l.cell, y + l.cell)],
                        fill.filled(),
                    ))?;
                    let ink = if v.is_finite() && (v - scale.0) / (scale.1 - scale.0) > 0.6 {
                        BLACK
                    } else {
                        WHITE
                    };
                    let shown = if v.is_finite() {
                        format!("{v:.2}")
                    } else {
                        "–".into()
                    };
                    root.draw(&Text::new(
                        shown,
                        (x + l.cell / 2, y + l.cell / 2),
                        text(value_font, ink, HPos::Center, VPos::Center),
                    ))?;
                }
            }
            root.draw(&Rectangle::new(
                [(x0, l.top), (x0 + l.side, l.top + l.side)],
                BLACK.stroke_width(1),
            ))?;
            // Columns below each panel (rotated), rows left of the first.
            for (j, label) in self.labels.iter().enumerate() {
                let x = x0 + j as i32 * l.cell + l.cell / 2;
                root.draw(&Text::new(
                    label.as_str(),
                    (x, l.top + l.side + 6),
                    text(LABEL_FONT, BLACK, HPos::Right, VPos::Center)
                        .transform(FontTransform::Rotate270),
                ))?;
            }
            if p == 0 {
                for (i, label) in self.labels.iter().enumerate() {
                    root.draw(&Text::new(
                        label.as_str(),
                        (x0 - 6, l.top + i as i32 * l.cell + l.cell / 2),
                        text(LABEL_FONT, BLACK, HPos::Right, VPos::Center),
                    ))?;
                }
            }
        }
        // The colour bar, top = 1.
        let steps = l.side.max(1);
        for s in 0..steps {
            let v = scale.1 - (scale.1 - scale.0) * s as f64 / steps as f64;
            root.draw(&Rectangle::new(
                [(l.bar_x, l.top + s), (l.bar_x + BAR, l.top + s + 1)],
                colour(v, scale).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(l.bar_x, l.top), (l.bar_x + BAR, l.top + l.side)],
            BLACK.stroke_width(1),
        ))?;
        for k in 0..=4 {
            let v = scale.0 + (scale.1 - scale.0) * k as f64 / 4.0;
            let y = l.top + l.side - (l.side as f64 * k as f64 / 4.0) as i32;
            root.draw(&PathElement::new(
                vec![(l.bar_x + BAR, y), (l.bar_x + BAR + 4, y)],
                BLACK,
            ))?;
            root.draw(&Text::new(
                format!("{v:.2}"),
                (l.bar_x + BAR + 7, y),
                text(12.0, BLACK, HPos::Left, VPos::Center),
            ))?;
        }
        root.draw(&Text::new(
            "CKA",
            (l.bar_x + BAR / 2, l.top - 18),
            bold(13.0, BLACK, HPos::Center, VPos::Center),
        ))?;
        caption(root, &self.caption, l.bottom)
    }
}
