//! The channel bookkeeping of a ShuffleNetV2 unit as two custom ops: taking the second half
//! of the channels ([`second_half`]) and concatenating two halves with a 2-group channel
//! shuffle ([`interleave`]).
//!
//! Built from candle's `narrow`, `stack` and `reshape`, every unit's backward pass made
//! zero tensors and concatenations for each narrowed view and accumulated gradients
//! through four extra graph nodes; candle's gradient additions alone took 13% of a
//! ShuffleNetV2 training step. Each op here is one pass forward and one pass backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::buffers::{contiguous_f32, with_f32};
use crate::util::parallel;

/// `x[:, C/2:]` (a copy), for `x` of shape `(B, C, H, W)` with even `C`.
pub fn second_half(x: &Tensor) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if !c.is_multiple_of(2) {
        candle_core::bail!("second_half: {c} channels cannot be split in halves");
    }
    if !x.device().is_cpu() {
        return x.narrow(1, c / 2, c / 2);
    }
    x.contiguous()?.apply_op1(SecondHalf)
}

/// Output channel `2i` is `a[:, i]` and `2i + 1` is `b[:, i]`, for `i < Cb`, where `b` has
/// `Cb` channels and `a` has at least `Cb` (its later channels are not used). With `a` the
/// whole input of a stride-1 unit this is `shuffle(cat(x[:, :C/2], b))`.
pub fn interleave(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (na, ca, ha, wa) = a.dims4()?;
    let (nb, cb, hb, wb) = b.dims4()?;
    if (na, ha, wa) != (nb, hb, wb) || ca < cb {
        candle_core::bail!(
            "interleave: shapes {:?} and {:?} do not pair (same batch and size, at least as many channels in the first)",
            a.dims(),
            b.dims()
        );
    }
    if !a.device().is_cpu() {
        let a = a.narrow(1, 0, cb)?;
        return Tensor::stack(&[&a, b], 2)?.reshape((nb, 2 * cb, hb, wb));
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, Interleave)
}

struct SecondHalf;

impl CustomOp1 for SecondHalf {
    fn name(&self) -> &'static str {
        "second-half"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = contiguous_f32(s, l, "input")?;
        let (half, hw) = (c / 2, h * w);
        let mut y = vec![0f32; b * half * hw];
        parallel::for_each_chunk_mut(&mut y, half * hw, |bi, ys| {
            ys.copy_from_slice(&x[(bi * c + half) * hw..][..half * hw]);
        });
        Ok((CpuStorage::F32(y), Shape::from((b, half, h, w))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = x.dims4()?;
        let (half, hw) = (c / 2, h * w);
        with_f32([grad], |[g]| {
            let mut gx = vec![0f32; b * c * hw];
            parallel::for_each_chunk_mut(&mut gx, c * hw, |bi, gs| {
                gs[half * hw..].copy_from_slice(&g[bi * half * hw..][..half * hw]);
            });
            Tensor::from_vec(gx, x.dims(), x.device()).map(Some)
        })
    }
}

struct Interleave;

impl CustomOp2 for Interleave {
    fn name(&self) -> &'static str {
        "interleave-channels"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, ca, _, _) = l1.shape().dims4()?;
        let (n, cb, h, w) = l2.shape().dims4()?;
        let a = contiguous_f32(s1, l1, "first input")?;
        let b = contiguous_f32(s2, l2, "second input")?;
        let hw = h * w;
        let mut y = vec![0f32; n * 2 * cb * hw];
        parallel::for_each_chunk_mut(&mut y, 2 * cb * hw, |bi, ys| {
            for (i, pair) in ys.chunks_exact_mut(2 * hw).enumerate() {
                let (ya, yb) = pair.split_at_mut(hw);
                ya.copy_from_slice(&a[(bi * ca + i) * hw..][..hw]);
                yb.copy_from_slice(&b[(bi * cb + i) * hw..][..hw]);
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, 2 * cb, h, w))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, ca, _, _) = a.dims4()?;
        let (n, cb, h, w) = b.dims4()?;
        let hw = h * w;
        with_f32([grad], |[g]| {
            // Channels of `a` past `cb` took no part: their gradient is zero.
            let mut ga = vec![0f32; n * ca * hw];
            let mut gb = vec![0f32; n * cb * hw];
            let samples = ga.chunks_mut(ca * hw).zip(gb.chunks_mut(cb * hw));
            parallel::for_each_item(samples.enumerate().collect(), |(bi, (gas, gbs))| {
                let gs = &g[bi * 2 * cb * hw..][..2 * cb * hw];
                for (i, pair) in gs.chunks_exact(2 * hw).enumerate() {
                    gas[i * hw..][..hw].copy_from_slice(&pair[..hw]);
                    gbs[i * hw..][..hw].copy_from_slice(&pair[hw..]);
                }
            });
            Ok((
                Some(Tensor::from_vec(ga, a.dims(), a.device())?),
                Some(Tensor::from_vec(gb, b.dims(), b.device())?),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::kernels::test_support::max_abs_diff;

    /// Values and gradients equal candle's narrow / stack / reshape composition.
    #[test]
    fn channel_ops_match_candle_compositions() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 6, 3, 5), &dev).unwrap()).unwrap();
        let y = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 3, 5), &dev).unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 6, 3, 5), &dev).unwrap();
        let probe_half = Tensor::randn(0f32, 1.0, (2, 3, 3, 5), &dev).unwrap();
        let ours = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let out = interleave(x, y)?;
            (out * &probe)?.sum_all()? + (second_half(x)? * &probe_half)?.sum_all()?
        };
        let theirs = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let first = x.narrow(1, 0, 3)?;
            let out = Tensor::stack(&[&first, y], 2)?.reshape((2, 6, 3, 5))?;
            (out * &probe)?.sum_all()? + (x.narrow(1, 3, 3)? * &probe_half)?.sum_all()?
        };
        let (l1, l2) = (ours(&x, &y).unwrap(), theirs(&x, &y).unwrap());
        let close = |a: &Tensor, b: &Tensor| {
            let d = max_abs_diff(a, b);
            assert!(d < 1e-5, "differ by {d}");
        };
        close(&l1, &l2);
        let (g1, g2) = (l1.backward().unwrap(), l2.backward().unwrap());
        for v in [&x, &y] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap());
        }
    }
}
