//! Figures of a report, drawn with plotters into an RGB buffer (encoded as PNG by `image`)
//! and as SVG, written under `reports/<experiment>/`. Text goes through ab_glyph with the
//! bundled DejaVu Sans ([`dejavu`]), so no system font is needed. Every figure made even
//! partly from synthetic data carries the synthetic banner, drawn into the image, and the
//! protocol it was made under is printed in it: a figure travels without its report.
//!
//! [`cka_heatmap`] draws the supplement's Figure 5 (CKA matrices side by side),
//! [`cka_stages`] the mean off-diagonal CKA per backbone stage; [`cka`] makes both from the
//! experiments' matrices. [`curves`] draws training curves, [`task_weights`] the task
//! weights of the gradient-balancing methods over the steps; [`legend`] is their legend.

pub mod cka;
pub mod cka_heatmap;
pub mod cka_stages;
pub mod curves;
pub mod legend;
pub mod task_weights;
pub mod training;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::util::fs::write_atomic;

/// The one font family of every figure.
pub const FONT: &str = "sans-serif";

/// The banner of figures made from synthetic data.
pub const SYNTHETIC_BANNER: &str =
    "SYNTHETIC DATA: kdbench stand-ins, not the paper's data; NOT a reproduction of the paper";

/// Line colours, in series order: Okabe–Ito's colour-blind-safe set, then darker tones.
pub const PALETTE: [RGBColor; 16] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(120, 60, 150),
    RGBColor(110, 110, 110),
    RGBColor(160, 40, 40),
    RGBColor(40, 90, 40),
    RGBColor(0, 60, 130),
    RGBColor(150, 150, 0),
    RGBColor(0, 170, 170),
    RGBColor(200, 0, 200),
];

/// Red of the synthetic banner.
pub const BANNER_RED: RGBColor = RGBColor(178, 24, 43);

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled bytes are a valid TrueType font; a failure would show as missing text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// The error type of drawing on backend `DB`.
pub type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure: its size in pixels and how to draw it on any backend.
pub trait Figure {
    /// File name without extension, e.g. `cka_same-probe`.
    fn stem(&self) -> String;
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Writes `<dir>/<stem>.png` and `<dir>/<stem>.svg` of `figure` (atomically).
pub fn write_figure(dir: &Path, figure: &impl Figure) -> Result<Vec<PathBuf>> {
    register_fonts();
    let (w, h) = figure.size();
    let stem = figure.stem();
    let failed = |e: &dyn std::fmt::Debug| Error::Failed(format!("drawing figure {stem}: {e:?}"));

    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        figure.draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    let image = image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| failed(&"pixel buffer of the wrong size"))?;
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| failed(&e))?;
    let png_path = dir.join(format!("{stem}.png"));
    write_atomic(&png_path, &png)?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        figure.draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    let svg_path = dir.join(format!("{stem}.svg"));
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// A text style of the figure font.
pub fn text(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

/// Like [`text`], bold.
pub fn bold(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .style(FontStyle::Bold)
        .color(&color)
        .pos(Pos::new(h, v))
}

/// Draws the synthetic banner across the top of `root` (`height` pixels) when `synthetic`.
pub fn banner<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    synthetic: bool,
    height: i32,
) -> DrawResult<DB> {
    if !synthetic {
        return Ok(());
    }
    let (w, _) = root.dim_in_pixel();
    root.draw(&Rectangle::new(
        [(0, 0), (w as i32, height)],
        BANNER_RED.filled(),
    ))?;
    root.draw(&Text::new(
        SYNTHETIC_BANNER,
        (w as i32 / 2, height / 2),
        bold(15.0, WHITE, HPos::Center, VPos::Center),
    ))
}

/// Height of the synthetic banner, and of the title line under it.
pub const BANNER: i32 = 30;
pub const TITLE: i32 = 44;
/// Line height of captions.
pub const CAPTION_LINE: i32 = 19;

/// Fills `root` white and draws the banner (when `synthetic`) and the bold `title`; gives
/// the area below them.
pub fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    synthetic: bool,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let (w, _) = root.dim_in_pixel();
    root.fill(&WHITE)?;
    banner(root, synthetic, BANNER)?;
    root.draw(&Text::new(
        title,
        (w as i32 / 2, BANNER + 22),
        bold(17.0, BLACK, HPos::Center, VPos::Center),
    ))?;
    Ok(root.margin((BANNER + TITLE) as u32, 0, 0, 0))
}

/// Draws caption `lines` on `area`, from `(20, top)` down.
pub fn caption<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
    top: i32,
) -> DrawResult<DB> {
    for (k, line) in lines.iter().enumerate() {
        area.draw(&Text::new(
            line.as_str(),
            (20, top + k as i32 * CAPTION_LINE),
            text(13.0, BLACK, HPos::Left, VPos::Top),
        ))?;
    }
    Ok(())
}

/// Width in pixels of `s` in the figure font at `size` (for layout).
pub fn text_width(s: &str, size: f64) -> i32 {
    register_fonts();
    (FONT, size)
        .into_font()
        .box_size(s)
        .map(|(w, _)| w as i32)
        .unwrap_or((s.len() as f64 * size * 0.6) as i32)
}
