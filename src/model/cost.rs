//! Inference cost of a network, measured by running it: every convolution and linear layer
//! (and the ViT's attention products) adds its multiply-accumulates to a per-thread counter
//! while [`count_macs`] is active. Normalisations, activations and pooling are not counted,
//! the usual convention (thop, fvcore) for "FLOPs" tables; the harness prints MACs and
//! FLOPs = 2 × MACs so either convention can be read off.

use std::cell::{Cell, RefCell};

thread_local! {
    static COUNTER: Cell<Option<u64>> = const { Cell::new(None) };
    static SHAPES: RefCell<Option<Vec<ConvShape>>> = const { RefCell::new(None) };
}

/// A groups = 1 convolution as it ran, in the terms of the supplement's cost model (Table
/// 2): the input width `d_in` = Cin·k² of its unfolded input, the output width `d_out` =
/// Cout, and the output positions `l` = H_out·W_out per image. These are the layers that
/// carry LoRKD's low-rank experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub d_in: usize,
    pub d_out: usize,
    pub positions: usize,
}

/// Note a groups = 1 convolution (no-op outside [`record_convs`]).
pub fn record_conv(shape: ConvShape) {
    SHAPES.with(|s| {
        if let Some(v) = s.borrow_mut().as_mut() {
            v.push(shape);
        }
    });
}

/// Run `f` and return its result with the groups = 1 convolutions it ran, in order.
pub fn record_convs<R>(f: impl FnOnce() -> R) -> (R, Vec<ConvShape>) {
    let outer = SHAPES.with(|s| s.replace(Some(Vec::new())));
    let r = f();
    let shapes = SHAPES.with(|s| s.replace(outer)).unwrap_or_default();
    (r, shapes)
}

/// Add `macs` to the active count (no-op outside [`count_macs`]).
pub fn record_macs(macs: u64) {
    COUNTER.with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + macs));
        }
    });
}

/// Run `f` and return its result with the multiply-accumulates its layers recorded.
pub fn count_macs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let outer = COUNTER.with(|c| c.replace(Some(0)));
    let r = f();
    let n = COUNTER.with(|c| c.replace(outer)).unwrap_or(0);
    // Nested counts also belong to the enclosing one.
    if outer.is_some() {
        record_macs(n);
    }
    (r, n)
}

/// Parameters and multiply-accumulates of one network at one input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub params: u64,
    /// Per image.
    pub macs: u64,
}

impl Cost {
    pub fn flops(&self) -> u64 {
        2 * self.macs
    }
}

/// `1234567` → `1.23 M`.
pub fn human(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} k", x / 1e3)
    } else {
        n.to_string()
    }
}

/// One image's pass through `model`'s backbone, as the scheduler and the memory check size
/// runs by before any training.
pub struct BackboneProbe {
    pub macs: u64,
    pub convs: Vec<ConvShape>,
}

/// Builds `model`'s backbone (freshly initialised, on the CPU) and runs one zero image of
/// side `size` through it, counting its multiply-accumulates and its convolutions.
pub fn probe_backbone(
    model: &crate::spec::run::ModelConfig,
    size: usize,
) -> crate::Result<BackboneProbe> {
    use candle_core::{DType, Device, Tensor};
    let map = candle_nn::VarMap::new();
    let vb = crate::model::init::SeededInit::var_builder(&map, 0, &Device::Cpu);
    let net = crate::model::build_backbone(model, vb)?;
    let x = Tensor::zeros(
        (1, crate::data::CHANNELS, size, size),
        DType::F32,
        &Device::Cpu,
    )?;
    let ((r, macs), convs) = record_convs(|| count_macs(|| net.forward_t(&x, false)));
    r?;
    Ok(BackboneProbe { macs, convs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_and_nests() {
        record_macs(5);
        let ((), outer) = count_macs(|| {
            record_macs(3);
            let ((), inner) = count_macs(|| record_macs(4));
            assert_eq!(inner, 4);
        });
        assert_eq!(outer, 7);
        assert_eq!(human(1_234_567), "1.23 M");
    }
}
