//! The SGD-with-momentum update in place, in two passes over each parameter, split between
//! the threads: `buf ← buf·μ + (g + w·λ)`, then `w ← w − buf·lr`.
//!
//! The optimiser used to build it from candle's element-wise ops: seven passes per
//! parameter, each allocating its result, all on one thread (candle's own pool is kept at
//! one thread), which on two cores left the other idle for about a tenth of a ResNet-18
//! step. The arithmetic is theirs operation for operation — a scalar multiply is candle's
//! affine `v·a + 0` in f32, then the adds in the same order — so the updated weights and
//! buffers are the same bits, and every element is computed on its own, so the thread
//! count changes nothing.

use candle_core::{bail, CpuStorage, InplaceOp2, InplaceOp3, Layout, Result};

/// Elements per rayon task; a parameter below it is updated on the calling thread.
const CHUNK: usize = 1 << 14;

/// `buf ← buf·momentum + g'`, where `g' = g + w·weight_decay` (just `g` without decay), as
/// an in-place op on the momentum buffer with the gradient and the weights as sources.
pub struct MomentumStep {
    pub momentum: f32,
    pub weight_decay: Option<f32>,
}

/// `w ← w − buf·lr`, as an in-place op on the weights with the momentum buffer as source.
pub struct DescentStep {
    pub lr: f32,
}

fn dst_f32<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(d), Some((a, b))) => Ok(&mut d[a..b]),
        _ => bail!("SGD update needs a contiguous f32 {what}"),
    }
}

fn src_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str, len: usize) -> Result<&'a [f32]> {
    let v = match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(d), Some((a, b))) => &d[a..b],
        _ => bail!("SGD update needs a contiguous f32 {what}"),
    };
    if v.len() != len {
        bail!(
            "SGD update: the {what} has {} elements, the parameter {len}",
            v.len()
        );
    }
    Ok(v)
}

/// Scalar multiply as candle's affine computes it (`v * mul + add`, `add = 0`): adding zero
/// is not a no-op for `-0.0`, so it stays.
#[inline(always)]
fn scale(v: f32, by: f32) -> f32 {
    v * by + 0.0
}

/// `f(dst part, the sources' same parts)` over the whole of `dst`: on the calling thread for
/// a small parameter, else in chunks of [`CHUNK`] split between the threads (each element is
/// computed on its own, so the split changes no result).
fn in_chunks<const N: usize>(
    dst: &mut [f32],
    srcs: [&[f32]; N],
    f: impl Fn(&mut [f32], [&[f32]; N]) + Sync,
) {
    if dst.len() < 2 * CHUNK {
        f(dst, srcs);
        return;
    }
    crate::util::parallel::for_each_chunk_mut(dst, CHUNK, |i, part| {
        let at = i * CHUNK;
        f(part, srcs.map(|s| &s[at..at + part.len()]));
    });
}

impl MomentumStep {
    fn apply(&self, buf: &mut [f32], g: &[f32], w: &[f32]) {
        let mom = self.momentum;
        match self.weight_decay {
            Some(wd) => {
                for ((b, &g), &w) in buf.iter_mut().zip(g).zip(w) {
                    *b = scale(*b, mom) + (g + scale(w, wd));
                }
            }
            None => {
                for (b, &g) in buf.iter_mut().zip(g) {
                    *b = scale(*b, mom) + g;
                }
            }
        }
    }
}

impl InplaceOp3 for MomentumStep {
    fn name(&self) -> &'static str {
        "sgd-momentum"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<()> {
        let buf = dst_f32(dst, dst_l, "momentum buffer")?;
        let g = src_f32(g, gl, "gradient", buf.len())?;
        let w = src_f32(w, wl, "weight", buf.len())?;
        in_chunks(buf, [g, w], |b, [g, w]| self.apply(b, g, w));
        Ok(())
    }
}

impl DescentStep {
    fn apply(&self, w: &mut [f32], buf: &[f32]) {
        for (w, &b) in w.iter_mut().zip(buf) {
            *w -= scale(b, self.lr);
        }
    }
}

impl InplaceOp2 for DescentStep {
    fn name(&self) -> &'static str {
        "sgd-descent"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        buf: &CpuStorage,
        bl: &Layout,
    ) -> Result<()> {
        let w = dst_f32(dst, dst_l, "weight")?;
        let buf = src_f32(buf, bl, "momentum buffer", w.len())?;
        in_chunks(w, [buf], |w, [b]| self.apply(w, b));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Values chosen to hit the signed-zero case of the affine's `+ 0`, spread over several
    /// chunks so the threaded path runs.
    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8;
                match x % 7 {
                    0 => -0.0,
                    1 => 0.0,
                    _ => (x % 2001) as f32 / 1000.0 - 1.0,
                }
            })
            .collect()
    }

    #[test]
    fn the_fused_update_gives_the_bits_of_candles_ops() {
        let dev = Device::Cpu;
        let n = 3 * CHUNK + 17;
        for (wd, mom, lr) in [(1e-4f64, 0.9f64, 0.05f64), (0.0, 0.9, 0.1)] {
            let w = Tensor::from_vec(vals(n, 1), n, &dev).unwrap();
            let g = Tensor::from_vec(vals(n, 2), n, &dev).unwrap();
            let buf = Tensor::from_vec(vals(n, 3), n, &dev).unwrap();
            // The optimiser's former expression, in candle's ops.
            let g2 = if wd > 0.0 {
                (&g + (&w * wd).unwrap()).unwrap()
            } else {
                g.clone()
            };
            let want_buf = ((&buf * mom).unwrap() + &g2).unwrap();
            let want_w = (&w - (&want_buf * lr).unwrap()).unwrap();

            let step = MomentumStep {
                momentum: mom as f32,
                weight_decay: (wd > 0.0).then_some(wd as f32),
            };
            buf.inplace_op3(&g, &w, &step).unwrap();
            w.inplace_op2(&buf, &DescentStep { lr: lr as f32 }).unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                t.to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(&buf), bits(&want_buf), "wd {wd}");
            assert_eq!(bits(&w), bits(&want_w), "wd {wd}");
        }
    }

    #[test]
    fn a_gradient_of_the_wrong_size_is_an_error() {
        let dev = Device::Cpu;
        let buf = Tensor::zeros(8, candle_core::DType::F32, &dev).unwrap();
        let g = Tensor::zeros(7, candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros(8, candle_core::DType::F32, &dev).unwrap();
        let step = MomentumStep {
            momentum: 0.9,
            weight_decay: None,
        };
        let err = buf.inplace_op3(&g, &w, &step).unwrap_err().to_string();
        assert!(err.contains("gradient has 7 elements"), "{err}");
    }
}
