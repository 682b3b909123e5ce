//! Rendering one sample: turns a recipe's class into target objects and distractors,
//! drawn onto the modality's background.

use std::f32::consts::{PI, TAU};

use super::field::Field;
use super::knobs::Knobs;
use super::object::{apart, Object};
use super::recipe::{Recipe, SHAPES, TEXTURES};
use crate::util::rng::Xoshiro256;

/// A nuisance factor's level: random with probability `spread`, else the task's default,
/// so that easy data vary little beyond the label.
fn nuisance<T>(
    rng: &mut Xoshiro256,
    spread: f32,
    default: T,
    random: impl FnOnce(&mut Xoshiro256) -> T,
) -> T {
    if rng.chance(spread) {
        random(rng)
    } else {
        default
    }
}

pub(super) fn render(
    recipe: &Recipe,
    class: usize,
    size: usize,
    k: &Knobs,
    rng: &mut Xoshiro256,
    out: &mut [u8],
) {
    let spec = recipe.classes[class];
    let s = size as f32;
    let mut field = Field::background(recipe.modality, size, k, rng);

    // Target objects: the label lives here.
    let count = spec.count.map_or(1, |c| c + 1);
    let base_r = if count > 1 { 0.115 * s } else { 0.15 * s };
    let shape = spec
        .shape
        .unwrap_or_else(|| nuisance(rng, k.spread, recipe.default_shape, |r| r.below(SHAPES)));
    let texture = spec
        .texture
        .unwrap_or_else(|| nuisance(rng, k.spread, recipe.default_texture, |r| r.below(TEXTURES)));
    let strength = (k.strength * rng.range(1.0 - 0.3 * k.spread, 1.0 + 0.1 * k.spread)).min(1.0);
    // Copies of a counted object are identical but for position, so that counting is
    // about the number, not about telling the copies apart.
    let angle = match spec.orientation {
        Some(o) => o as f32 * PI / 4.0 + rng.range(-k.orient_jitter, k.orient_jitter),
        None => nuisance(
            rng,
            k.spread,
            recipe.default_orientation as f32 * PI / 4.0,
            |r| r.range(0.0, PI),
        ),
    };
    // A half turn keeps the orientation class but points triangles the other way.
    let angle = if rng.chance(0.5) { angle + PI } else { angle };
    let r = base_r * (rng.range(-1.0, 1.0) * 0.3 * k.spread).exp();
    let (period, phase) = grating(texture, s, rng);
    let template = Object {
        shape,
        cx: 0.0,
        cy: 0.0,
        r,
        angle,
        aspect: rng.range(1.6, 1.9),
        period,
        phase,
        alpha: strength,
    };
    let mut targets: Vec<Object> = Vec::with_capacity(count);
    for _ in 0..count {
        let mut obj = template;
        match spec.region {
            Some(q) => {
                let jitter = (0.06 + 0.1 * k.jitter) * s;
                obj.cx = if q % 2 == 0 { 0.3 } else { 0.7 } * s + rng.range(-jitter, jitter);
                obj.cy = if q < 2 { 0.3 } else { 0.7 } * s + rng.range(-jitter, jitter);
            }
            None if count == 1 => {
                let jitter = 0.3 * k.jitter * s;
                obj.cx = 0.5 * s + rng.range(-jitter, jitter);
                obj.cy = 0.5 * s + rng.range(-jitter, jitter);
            }
            None => {
                // Copies must stay apart to be countable; give up after a few tries rather
                // than loop, accepting a rare overlap.
                for _ in 0..50 {
                    obj.cx = rng.range(0.2, 0.8) * s;
                    obj.cy = rng.range(0.2, 0.8) * s;
                    if targets.iter().all(|t| apart(t, &obj, 1.0)) {
                        break;
                    }
                }
            }
        }
        targets.push(obj);
    }

    // Distractors: smaller, fainter, any primitive; they grow towards target size with
    // difficulty so that "the salient object" gets harder to pick out.
    let mut objects = targets.clone();
    for _ in 0..rng.below(k.max_distractors + 1) {
        let texture = rng.below(TEXTURES);
        let (period, phase) = grating(texture, s, rng);
        let mut obj = Object {
            shape: rng.below(SHAPES),
            cx: 0.0,
            cy: 0.0,
            r: base_r * rng.range(0.35, k.distractor_scale),
            angle: rng.range(0.0, TAU),
            aspect: rng.range(1.0, 1.7),
            period,
            phase,
            alpha: strength * rng.range(0.5, 0.7 + 0.3 * k.difficulty),
        };
        for _ in 0..12 {
            obj.cx = rng.range(0.1, 0.9) * s;
            obj.cy = rng.range(0.1, 0.9) * s;
            if targets.iter().all(|t| apart(t, &obj, 1.0)) {
                objects.push(obj);
                break;
            }
        }
    }

    let bright = (recipe.polarity > 0.0) != rng.chance(k.flip);
    let level = if bright { 0.92 } else { 0.05 };
    for obj in &objects {
        field.draw(obj, level);
    }
    field.finish(recipe.modality, k, rng, out);
}

fn grating(texture: usize, s: f32, rng: &mut Xoshiro256) -> (Option<f32>, f32) {
    let period = match texture {
        0 => None,
        1 => Some(s / 4.5),
        _ => Some(s / 8.0),
    };
    (period, rng.range(0.0, TAU))
}
