//! Raw f32 buffers of candle CPU tensors, as every kernel reads and writes them: borrowing
//! the elements of a contiguous storage, making operands contiguous for a backward pass, and
//! allocating an output the kernel overwrites completely.

use candle_core::{Result, Tensor};

/// The f32 elements of a contiguous CPU tensor (for the fused CPU kernels).
pub fn contiguous_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(d), Some((a, b))) => Ok(&d[a..b]),
        _ => candle_core::bail!("fused CPU kernel needs a contiguous f32 {what}"),
    }
}

/// Run `f` on the f32 elements of CPU tensors (as the backward passes of the fused kernels
/// need them), copying only those that are not contiguous.
pub fn with_f32<const N: usize, R>(
    tensors: [&Tensor; N],
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let owned = tensors
        .iter()
        .map(|t| {
            if t.is_contiguous() {
                Ok((*t).clone())
            } else {
                t.contiguous()
            }
        })
        .collect::<Result<Vec<Tensor>>>()?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(N);
    for (storage, layout) in &guards {
        match &**storage {
            candle_core::Storage::Cpu(s) => slices.push(contiguous_f32(s, layout, "tensor")?),
            _ => candle_core::bail!("fused CPU kernel called on a non-CPU tensor"),
        }
    }
    let slices: [&[f32]; N] = slices.try_into().expect("one slice per tensor");
    f(slices)
}

/// A vector of `len` floats for a kernel to overwrite completely, without first filling it
/// with zeros (which cost about 5% of a training step, as candle's own CPU backend found).
///
/// # Safety
/// The caller writes every element before reading any, and before the vector leaves the
/// kernel.
// The lint guards against reading such a vector; the contract above forbids exactly that.
#[allow(clippy::uninit_vec)]
pub unsafe fn output_f32(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: the capacity is `len`; f32 has no invalid bit patterns and, by the caller's
    // contract, no element is read before it is written.
    unsafe { v.set_len(len) };
    v
}
