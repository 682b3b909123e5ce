//! One drawable object (target, distractor or texture dot) and the geometry of its
//! primitives: extent, spacing and signed distance functions.

#[derive(Debug, Clone, Copy)]
pub(super) struct Object {
    pub(super) shape: usize,
    /// Centre, pixels.
    pub(super) cx: f32,
    pub(super) cy: f32,
    /// Radius, pixels.
    pub(super) r: f32,
    pub(super) angle: f32,
    /// Stretch along the object's own axis; gives every shape a visible orientation.
    pub(super) aspect: f32,
    /// Grating period in pixels (`None`: solid fill) and its phase.
    pub(super) period: Option<f32>,
    pub(super) phase: f32,
    /// Opacity towards the object's level.
    pub(super) alpha: f32,
}

impl Object {
    pub(super) fn extent(&self) -> f32 {
        self.r * self.aspect
    }
}

pub(super) fn apart(a: &Object, b: &Object, margin: f32) -> bool {
    let (dx, dy) = (a.cx - b.cx, a.cy - b.cy);
    (dx * dx + dy * dy).sqrt() >= a.extent() + b.extent() + margin
}

/// Signed distance (pixels, negative inside) of a primitive of radius `r` at local point
/// (`u`, `v`).
pub(super) fn sdf(shape: usize, u: f32, v: f32, r: f32) -> f32 {
    match shape {
        0 => (u * u + v * v).sqrt() - r,
        1 => sd_box(u, v, 0.82 * r, 0.82 * r),
        2 => ((u * u + v * v).sqrt() - 0.7 * r).abs() - 0.28 * r,
        3 => sd_box(u, v, r, 0.3 * r).min(sd_box(u, v, 0.3 * r, r)),
        4 => sd_triangle(u, v, 0.95 * r),
        _ => sd_box(u, v, r, 0.3 * r),
    }
}

fn sd_box(u: f32, v: f32, hx: f32, hy: f32) -> f32 {
    let (qx, qy) = (u.abs() - hx, v.abs() - hy);
    (qx.max(0.0).hypot(qy.max(0.0))) + qx.max(qy).min(0.0)
}

/// Equilateral triangle with half side `h`, centred on its centroid, apex towards -v.
fn sd_triangle(u: f32, v: f32, h: f32) -> f32 {
    let k = 3f32.sqrt();
    let (mut px, mut py) = (u.abs() - h, -v + h / k);
    if px + k * py > 0.0 {
        (px, py) = ((px - k * py) / 2.0, (-k * px - py) / 2.0);
    }
    px -= px.clamp(-2.0 * h, 0.0);
    -(px.hypot(py)) * py.signum()
}
