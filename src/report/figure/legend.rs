//! A legend drawn in a column of its own beside the plots, so that a dozen series never
//! cover the lines they name.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{text, text_width, DrawResult, PALETTE};

/// Line height of a legend entry.
pub const ENTRY: i32 = 22;

/// Width of the legend column for entries named `names`.
pub fn legend_width<'a>(names: impl Iterator<Item = &'a str>) -> u32 {
    names.map(|n| text_width(n, 13.0)).max().unwrap_or(0) as u32 + 60
}

/// Height of plots beside a legend of `entries` lines: at least `least`, tall enough for it.
pub fn plot_height(entries: usize, least: u32) -> u32 {
    least.max(entries as u32 * ENTRY as u32 + 40)
}

/// Draws `entries` (name, dashed), coloured by [`PALETTE`] in order, from `(x, y)` down.
pub fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    entries: &[(String, bool)],
) -> DrawResult<DB> {
    for (k, (name, dashed)) in entries.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let yk = y + k as i32 * ENTRY;
        let segments: &[(i32, i32)] = if *dashed {
            &[(0, 7), (10, 17), (20, 26)]
        } else {
            &[(0, 26)]
        };
        for &(a, b) in segments {
            root.draw(&PathElement::new(
                vec![(x + a, yk), (x + b, yk)],
                colour.stroke_width(3),
            ))?;
        }
        root.draw(&Text::new(
            name.as_str(),
            (x + 34, yk),
            text(13.0, BLACK, HPos::Left, VPos::Center),
        ))?;
    }
    Ok(())
}
