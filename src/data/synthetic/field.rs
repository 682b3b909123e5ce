//! The working image of one sample: each modality's background, drawing objects onto it,
//! and the final speckle, colour, noise and quantisation into bytes.

use std::f32::consts::TAU;

use super::knobs::Knobs;
use super::modality::Modality;
use super::noise::ValueNoise;
use super::object::{sdf, Object};
use crate::data::CHANNELS;
use crate::util::rng::{Normals, Xoshiro256};

/// Working image of one sample: luminance, plus hue mixing and object opacity for colour
/// modalities, plus the ultrasound fan mask.
pub(super) struct Field {
    size: usize,
    lum: Vec<f32>,
    /// Mix between the palette's two background colours (colour modalities only).
    hue: Vec<f32>,
    /// Largest object opacity per pixel, to tint objects (colour modalities only).
    obj: Vec<f32>,
    /// Ultrasound field of view, applied after speckle so the outside stays black.
    mask: Vec<f32>,
}

impl Field {
    pub(super) fn background(m: Modality, size: usize, k: &Knobs, rng: &mut Xoshiro256) -> Field {
        let n = size * size;
        let colour = m.palette().is_some();
        let mut f = Field {
            size,
            lum: vec![0.0; n],
            hue: if colour { vec![0.0; n] } else { Vec::new() },
            obj: if colour { vec![0.0; n] } else { Vec::new() },
            mask: Vec::new(),
        };
        let bv = k.background;
        let s = size as f32;
        let coords = move |i: usize| (((i % size) as f32 + 0.5) / s, ((i / size) as f32 + 0.5) / s);
        match m {
            Modality::Generic => {
                let noise = ValueNoise::new(rng, 3);
                let (gx, gy) = rng.unit_vector();
                for (i, p) in f.lum.iter_mut().enumerate() {
                    let (x, y) = coords(i);
                    *p = 0.42
                        + bv * (noise.at(x, y) - 0.5)
                        + 0.3 * bv * ((x - 0.5) * gx + (y - 0.5) * gy);
                }
            }
            Modality::Mri => {
                let coarse = ValueNoise::new(rng, 2);
                let fine = ValueNoise::new(rng, 4);
                let (cx, cy) = (0.5 + rng.range(-0.05, 0.05), 0.5 + rng.range(-0.05, 0.05));
                for (i, p) in f.lum.iter_mut().enumerate() {
                    let (x, y) = coords(i);
                    let tissue =
                        0.45 + bv * (coarse.at(x, y) - 0.5) + 0.4 * bv * (fine.at(x, y) - 0.5);
                    // The anatomy fills a round field of view on a dark background.
                    let rr = (x - cx).hypot(y - cy);
                    *p = tissue * (1.0 - (rr - 0.52).max(0.0) * 6.0).max(0.05);
                }
            }
            Modality::Ct => {
                let noise = ValueNoise::new(rng, 4);
                let (cx, cy) = (0.5 + rng.range(-0.03, 0.03), 0.52 + rng.range(-0.03, 0.03));
                let (ax, ay) = (rng.range(0.42, 0.47), rng.range(0.34, 0.41));
                let rim = 1.3 / s;
                let tissue = 0.42 + rng.range(-0.05, 0.05);
                for (i, p) in f.lum.iter_mut().enumerate() {
                    let (x, y) = coords(i);
                    let (ex, ey) = ((x - cx) / ax, (y - cy) / ay);
                    let e = (ex * ex + ey * ey).sqrt();
                    // Distance to the body outline, approximately in image units.
                    let d = (e - 1.0) * ax.min(ay);
                    let inside = (0.5 - d / rim).clamp(0.0, 1.0);
                    let skin = (-(d + 1.2 * rim).powi(2) / (rim * rim)).exp();
                    let soft = tissue + 0.6 * bv * (noise.at(x, y) - 0.5);
                    *p = 0.03 + inside * (soft - 0.03) + 0.3 * skin;
                }
            }
            Modality::Xray => {
                let noise = ValueNoise::new(rng, 3);
                let top_bright = rng.chance(0.5);
                let period = rng.range(0.15, 0.2);
                let curve = rng.range(0.3, 0.9);
                let phase = rng.range(0.0, TAU);
                let ribs = 0.1 + 0.15 * bv;
                for (i, p) in f.lum.iter_mut().enumerate() {
                    let (x, y) = coords(i);
                    let g = if top_bright { 1.0 - y } else { y };
                    let band = (TAU * (y + curve * (x - 0.5).powi(2)) / period + phase)
                        .sin()
                        .max(0.0);
                    *p = 0.2 + 0.3 * g + ribs * band * band + 0.5 * bv * (noise.at(x, y) - 0.5);
                }
            }
            Modality::Oct => {
                let top = rng.range(0.12, 0.22);
                let amp = rng.range(0.02, 0.06);
                let freq = rng.range(0.5, 1.2);
                let phase = rng.range(0.0, TAU);
                let layer = rng.range(0.09, 0.13);
                let noise = ValueNoise::new(rng, 4);
                for (i, p) in f.lum.iter_mut().enumerate() {
                    let (x, y) = coords(i);
                    let t = y - (top + amp * (TAU * freq * x + phase).sin());
                    let retina = 0.32
                        + 0.2 * (TAU * t / layer).cos() * (-1.5 * t).exp()
                        + 0.35 * (-((t - 0.45) / 0.035).powi(2)).exp();
                    let vitreous = 0.1;
                    let w = (t * s + 0.5).clamp(0.0, 1.0);
                    *p = vitreous + w * (retina - vitreous) + 0.4 * bv * (noise.at(x, y) - 0.5);
                }
            }
            Modality::Ultrasound => {
                let noise = ValueNoise::new(rng, 3);
                let (ax, ay) = (0.5 + rng.range(-0.04, 0.04), -0.25);
                let half = rng.range(0.72, 0.82);
                let edge = 1.0 / s;
                f.mask = vec![0.0; n];
                for (i, (p, m)) in f.lum.iter_mut().zip(f.mask.iter_mut()).enumerate() {
                    let (x, y) = coords(i);
                    let (dx, dy) = (x - ax, y - ay);
                    let rr = dx.hypot(dy);
                    let ang = dx.atan2(dy).abs();
                    let inside = ((half - ang) * rr / edge).clamp(0.0, 1.0)
                        * ((rr - 0.3) / edge).clamp(0.0, 1.0)
                        * ((1.22 - rr) / edge).clamp(0.0, 1.0);
                    *m = inside;
                    *p = 0.45 - 0.2 * (rr - 0.3) + 0.6 * bv * (noise.at(x, y) - 0.5);
                }
            }
            Modality::Pathology | Modality::Microscope | Modality::Dermatoscope | Modality::Rgb => {
                let grain = if m == Modality::Pathology { 7 } else { 4 };
                let lum_noise = ValueNoise::new(rng, grain);
                let hue_noise = ValueNoise::new(rng, grain.max(5) - 1);
                let vignette = match m {
                    Modality::Rgb => 1.6,
                    Modality::Dermatoscope => 0.8,
                    _ => 0.0,
                };
                for (i, (p, h)) in f.lum.iter_mut().zip(f.hue.iter_mut()).enumerate() {
                    let (x, y) = coords(i);
                    let rr = (x - 0.5).hypot(y - 0.5);
                    let dark = vignette * (rr - 0.45).max(0.0);
                    *p = 0.55 + 0.6 * bv * (lum_noise.at(x, y) - 0.5) - dark;
                    *h = 0.5 + 2.0 * bv * (hue_noise.at(x, y) - 0.5);
                }
                if m == Modality::Pathology {
                    // Scattered nuclei: a fine texture below the size of any primitive.
                    for _ in 0..rng.below(8) + 8 {
                        let dot = Object {
                            shape: 0,
                            cx: rng.range(0.0, s),
                            cy: rng.range(0.0, s),
                            r: rng.range(0.02, 0.035) * s,
                            angle: 0.0,
                            aspect: 1.0,
                            period: None,
                            phase: 0.0,
                            alpha: 0.35,
                        };
                        f.draw(&dot, 0.15);
                    }
                }
            }
        }
        f
    }

    /// Pulls the pixels under `obj` towards `level`, anti-aliased by the signed distance.
    pub(super) fn draw(&mut self, obj: &Object, level: f32) {
        let size = self.size as isize;
        let reach = 1.25 * obj.extent() + 1.5;
        let lo = |c: f32| ((c - reach).floor() as isize).clamp(0, size) as usize;
        let hi = |c: f32| ((c + reach).ceil() as isize).clamp(0, size) as usize;
        let (sin, cos) = obj.angle.sin_cos();
        for py in lo(obj.cy)..hi(obj.cy) {
            for px in lo(obj.cx)..hi(obj.cx) {
                let dx = px as f32 + 0.5 - obj.cx;
                let dy = py as f32 + 0.5 - obj.cy;
                let u = dx * cos + dy * sin;
                let v = -dx * sin + dy * cos;
                let cover = (0.5 - sdf(obj.shape, u / obj.aspect, v, obj.r)).clamp(0.0, 1.0);
                if cover <= 0.0 {
                    continue;
                }
                let fill = match obj.period {
                    Some(period) => {
                        0.15 + 0.85 * (0.5 + 0.5 * (TAU * u / period + obj.phase).cos())
                    }
                    None => 1.0,
                };
                let a = cover * fill * obj.alpha;
                let i = py * self.size + px;
                self.lum[i] += a * (level - self.lum[i]);
                if let Some(o) = self.obj.get_mut(i) {
                    *o = o.max(a);
                }
            }
        }
    }

    /// Speckle, colour, noise and quantisation into `out` (`CHANNELS × size × size`).
    pub(super) fn finish(mut self, m: Modality, k: &Knobs, rng: &mut Xoshiro256, out: &mut [u8]) {
        let n = self.size * self.size;
        if m == Modality::Ultrasound {
            // Fully developed speckle: Rayleigh-distributed amplitude with unit mean.
            let mix = 0.3 + 0.3 * k.difficulty;
            for (p, mask) in self.lum.iter_mut().zip(&self.mask) {
                let u = 1.0 - rng.f32();
                let rayleigh = (-2.0 * u.ln()).sqrt() / 1.2533;
                *p *= mask * (1.0 - mix + mix * rayleigh);
            }
        }
        let quantise = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        // CT adds a fine grain on top of the common noise, like reconstruction noise.
        let sigma = if m == Modality::Ct {
            k.noise + 0.015
        } else {
            k.noise
        };
        match m.palette() {
            None => {
                let (gray, rest) = out.split_at_mut(n);
                let mut noise = Normals::default();
                for (o, &p) in gray.iter_mut().zip(&self.lum) {
                    *o = quantise(p + sigma * noise.next_normal(rng));
                }
                for c in rest.chunks_exact_mut(n) {
                    c.copy_from_slice(gray);
                }
            }
            Some([a, b, lesion]) => {
                let mut noise = Normals::default();
                for c in 0..CHANNELS {
                    let plane = &mut out[c * n..(c + 1) * n];
                    for (i, o) in plane.iter_mut().enumerate() {
                        let mix = self.hue[i];
                        let bg = a[c] + (b[c] - a[c]) * mix;
                        // Objects take the palette's object hue at the background's
                        // brightness: brightness is the luminance field's job, and a dark
                        // hue on a bright object would cancel its contrast.
                        let bg_luma = luma(a) + (luma(b) - luma(a)) * mix;
                        let hue = lesion[c] * bg_luma / luma(lesion);
                        let tint = bg + (hue - bg) * 0.85 * self.obj[i];
                        // Compressed so that bright objects on light palettes do not clip.
                        let v = tint * (0.3 + self.lum[i]) / 0.85;
                        *o = quantise(v + sigma * noise.next_normal(rng));
                    }
                }
            }
        }
    }
}

fn luma(rgb: [f32; 3]) -> f32 {
    (rgb[0] + rgb[1] + rgb[2]) / 3.0
}
