//! Resampling images to the network's input layout: `H × W × C` interleaved `u8` (gray, RGB
//! or RGBA) to planar `3 × S × S`, with an antialiased bilinear filter when the size
//! differs. Shared by every real-data format loader.

use super::CHANNELS;

/// One axis of a separable resampler: for each output pixel, the first input pixel and the
/// weights of the input pixels it averages.
#[derive(Debug, Clone)]
struct AxisKernel {
    starts: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

impl AxisKernel {
    /// Triangle (bilinear) filter with pixel centres at `i + 0.5`. When shrinking, the
    /// filter is widened by the scale factor so every input pixel contributes (antialiased
    /// bilinear, as PIL does); when enlarging it is plain bilinear interpolation.
    fn new(input: usize, output: usize) -> Self {
        let scale = input as f64 / output as f64;
        let support = scale.max(1.0);
        let mut starts = Vec::with_capacity(output);
        let mut weights = Vec::with_capacity(output);
        for o in 0..output {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0)) as usize;
            let hi = ((centre + support).ceil() as usize).min(input);
            let mut w: Vec<f32> = Vec::with_capacity(hi.saturating_sub(lo));
            let mut total = 0.0f64;
            for x in lo..hi {
                let d = ((x as f64 + 0.5 - centre) / support).abs();
                let v = (1.0 - d).max(0.0);
                total += v;
                w.push(v as f32);
            }
            if total > 0.0 {
                for v in &mut w {
                    *v = (f64::from(*v) / total) as f32;
                }
                starts.push(lo);
                weights.push(w);
            } else {
                // Cannot happen for input >= 1, but keep the nearest pixel to be safe.
                let nearest = (centre.floor() as usize).min(input - 1);
                starts.push(nearest);
                weights.push(vec![1.0]);
            }
        }
        AxisKernel { starts, weights }
    }
}

/// Converts `H × W × C` interleaved `u8` images (C = 1 gray, 3 RGB, 4 RGBA; alpha dropped)
/// to planar `3 × S × S`, resampling when the size differs. Built once per input size.
#[derive(Debug, Clone)]
pub struct Resampler {
    in_h: usize,
    in_w: usize,
    out: usize,
    rows: Option<AxisKernel>,
    cols: Option<AxisKernel>,
}

impl Resampler {
    pub fn new(in_h: usize, in_w: usize, out: usize) -> Self {
        let same = in_h == out && in_w == out;
        Resampler {
            in_h,
            in_w,
            out,
            rows: (!same).then(|| AxisKernel::new(in_h, out)),
            cols: (!same).then(|| AxisKernel::new(in_w, out)),
        }
    }

    /// Writes one image into `dst` (length `3 × S × S`).
    pub fn to_chw(&self, src: &[u8], channels: usize, dst: &mut [u8]) {
        let (h, w, s) = (self.in_h, self.in_w, self.out);
        debug_assert_eq!(src.len(), h * w * channels);
        debug_assert_eq!(dst.len(), CHANNELS * s * s);
        let plane = s * s;
        for c in 0..CHANNELS {
            // Gray images are replicated; RGBA drops alpha.
            let sc = if channels == 1 { 0 } else { c };
            let out = &mut dst[c * plane..(c + 1) * plane];
            match (&self.rows, &self.cols) {
                (Some(rows), Some(cols)) => {
                    // Horizontal pass into f32, then vertical pass with rounding.
                    let mut tmp = vec![0.0f32; h * s];
                    for y in 0..h {
                        let line = &src[y * w * channels..(y + 1) * w * channels];
                        for (ox, (start, ws)) in cols.starts.iter().zip(&cols.weights).enumerate() {
                            let mut acc = 0.0f32;
                            for (k, wt) in ws.iter().enumerate() {
                                acc += wt * f32::from(line[(start + k) * channels + sc]);
                            }
                            tmp[y * s + ox] = acc;
                        }
                    }
                    for (oy, (start, ws)) in rows.starts.iter().zip(&rows.weights).enumerate() {
                        for ox in 0..s {
                            let mut acc = 0.0f32;
                            for (k, wt) in ws.iter().enumerate() {
                                acc += wt * tmp[(start + k) * s + ox];
                            }
                            out[oy * s + ox] = (acc + 0.5).clamp(0.0, 255.0) as u8;
                        }
                    }
                }
                _ => {
                    for (i, px) in out.iter_mut().enumerate() {
                        *px = src[i * channels + sc];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampler_identity_gray_and_rgba() {
        let src: Vec<u8> = (0..4u8).collect(); // 2×2 gray
        let mut dst = vec![0u8; 3 * 4];
        Resampler::new(2, 2, 2).to_chw(&src, 1, &mut dst);
        assert_eq!(dst, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);

        // RGBA drops alpha; 1×2 → 1×1 averages the two pixels (resampling path).
        let rgba = [10u8, 20, 30, 255, 11, 21, 31, 0];
        let mut one = [0u8; 3];
        Resampler::new(1, 2, 1).to_chw(&rgba, 4, &mut one);
        assert_eq!(one, [11, 21, 31]);
        Resampler::new(1, 1, 1).to_chw(&rgba[..4], 4, &mut one);
        assert_eq!(one, [10, 20, 30]);
    }

    #[test]
    fn resampler_shrinks_by_averaging_and_keeps_constants() {
        // 4×4 checkerboard of 0/200 shrunk to 2×2: every output is a blend near 100, where
        // point sampling would give 0 or 200.
        let src: Vec<u8> = (0..16)
            .map(|i| if (i / 4 + i % 4) % 2 == 0 { 0 } else { 200 })
            .collect();
        let mut dst = vec![0u8; 3 * 4];
        Resampler::new(4, 4, 2).to_chw(&src, 1, &mut dst);
        assert!(dst.iter().all(|&v| (80..=120).contains(&v)), "{dst:?}");

        let flat = vec![77u8; 28 * 28 * 3];
        let mut big = vec![0u8; 3 * 64 * 64];
        Resampler::new(28, 28, 64).to_chw(&flat, 3, &mut big);
        assert!(big.iter().all(|&v| v == 77));
    }
}
