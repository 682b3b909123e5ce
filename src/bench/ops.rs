//! Per-operation timings: every distinct convolution and batch norm of a workload, timed
//! forward alone and forward + backward, so a slow training step can be traced to the layer
//! shapes that cause it. The PyTorch reference times the same list.

use candle_core::{Device, Module, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::workload::Workload;
use super::{median, timed_repeats};
use crate::model::init::SeededInit;
use crate::model::layers::batch_norm::batch_norm2d;
use crate::model::layers::conv::conv2d_no_bias;
use crate::spec::run::Arch;

/// One operation at one shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OpSpec {
    pub key: String,
    /// `conv`, `dwconv` (depthwise, groups = channels) or `bn`.
    pub kind: &'static str,
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub size: usize,
    /// Whether the input needs a gradient (false for the stem, which sees the images).
    pub input_grad: bool,
}

/// Median seconds of the forward and of forward + backward.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct OpTimes {
    pub forward_s: f64,
    pub forward_backward_s: f64,
}

fn conv(
    batch: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    size: usize,
    input_grad: bool,
) -> OpSpec {
    OpSpec {
        key: format!("conv{k}x{k} {cin}->{cout} {size}px s{stride}"),
        kind: "conv",
        batch,
        cin,
        cout,
        k,
        stride,
        padding: k / 2,
        size,
        input_grad,
    }
}

fn bn(batch: usize, c: usize, size: usize) -> OpSpec {
    OpSpec {
        key: format!("bn {c}ch {size}px"),
        kind: "bn",
        batch,
        cin: c,
        cout: c,
        k: 1,
        stride: 1,
        padding: 0,
        size,
        input_grad: true,
    }
}

/// Depthwise convolutions at the shapes of a ShuffleNetV2 1.0× student on 32 px images
/// (stride-1 stem, no max-pool), batch 64: each stage's stride-2 and stride-1 3×3 filters.
pub fn depthwise() -> Vec<OpSpec> {
    [
        (24, 32, 2),
        (58, 32, 2),
        (58, 16, 1),
        (116, 16, 2),
        (116, 8, 1),
        (232, 8, 2),
        (232, 4, 1),
    ]
    .into_iter()
    .map(|(c, size, stride)| OpSpec {
        key: format!("dwconv3x3 {c}ch {size}px s{stride}"),
        kind: "dwconv",
        batch: 64,
        cin: c,
        cout: c,
        k: 3,
        stride,
        padding: 1,
        size,
        input_grad: true,
    })
    .collect()
}

/// The distinct convolutions and batch norms of a ResNet workload, in network order. Other
/// architectures have none listed here: ShuffleNetV2's distinctive operations are the
/// [`depthwise`] ones, timed in their own section.
pub fn of(w: &Workload) -> Vec<OpSpec> {
    if w.arch != Arch::Resnet {
        return Vec::new();
    }
    let b = w.batch_size;
    let mut size = w.image_size;
    let w0 = w.widths[0];
    let mut out = vec![conv(b, 3, w0, 3, 1, size, false), bn(b, w0, size)];
    let mut cin = w0;
    for (stage, &width) in w.widths.iter().enumerate() {
        let stride = if stage > 0 { 2 } else { 1 };
        out.push(conv(b, cin, width, 3, stride, size, true));
        if stride != 1 || cin != width {
            out.push(conv(b, cin, width, 1, stride, size, true));
        }
        size = (size - 1) / stride + 1;
        out.push(conv(b, width, width, 3, 1, size, true));
        out.push(bn(b, width, size));
        cin = width;
    }
    let mut seen = Vec::new();
    out.retain(|o| {
        let new = !seen.contains(&o.key);
        seen.push(o.key.clone());
        new
    });
    out
}

/// `Σ y·probe`, whose backward hands `probe` (times the incoming scalar) to `y`.
///
/// The backward pass being timed is the layer's, seeded with a random output gradient, as
/// PyTorch's `(layer(x) * probe).sum().backward()` does, in one contiguous pass (candle's
/// `mul` + `sum_all` would seed it through a stride-0 broadcast and a strided product).
/// What remains on our side beyond the layer's kernels is candle's gradient bookkeeping:
/// a zero-filled tensor and an addition for every gradient it accumulates.
struct ProbeDot(Tensor);

impl candle_core::CustomOp1 for ProbeDot {
    fn name(&self) -> &'static str {
        "probe-dot"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let y = crate::kernels::buffers::contiguous_f32(s, l, "output")?;
        let probe = self.0.flatten_all()?.to_vec1::<f32>()?;
        if probe.len() != y.len() {
            candle_core::bail!(
                "probe of {} values for an output of {}",
                probe.len(),
                y.len()
            );
        }
        let dot: f64 = y
            .iter()
            .zip(&probe)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        Ok((
            candle_core::CpuStorage::F32(vec![dot as f32]),
            candle_core::Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad.to_scalar::<f32>()? as f64;
        Ok(Some(self.0.affine(g, 0.0)?))
    }
}

/// Median seconds of `f` (after two warm-up calls) over at least 5 calls and `min_secs`.
fn time(min_secs: f64, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    f()?;
    let times = timed_repeats(5, min_secs, f)?;
    Ok(median(times).expect("at least one call"))
}

/// A layer's forward, boxed so convolutions and batch norms time through one path.
type LayerFn = dyn Fn(&Tensor) -> candle_core::Result<Tensor>;

/// Time one operation with the harness's layers.
pub fn measure(op: &OpSpec, min_secs: f64) -> crate::Result<OpTimes> {
    let dev = Device::Cpu;
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 0, &dev);
    let x = Tensor::randn(0f32, 1.0, (op.batch, op.cin, op.size, op.size), &dev)?;
    let x = if op.input_grad {
        Var::from_tensor(&x)?.as_tensor().clone()
    } else {
        x
    };
    let forward: Box<LayerFn> = match op.kind {
        "dwconv" => {
            let geometry = crate::kernels::conv::ConvGeometry {
                k: op.k,
                stride: op.stride,
                padding: op.padding,
                dilation: 1,
            };
            let c =
                crate::model::layers::depthwise::depthwise_conv2d(op.cin, geometry, vb.pp("op"))?;
            Box::new(move |x| c.forward(x))
        }
        "conv" => {
            let c = conv2d_no_bias(op.cin, op.cout, op.k, op.stride, op.padding, vb.pp("op"))?;
            Box::new(move |x| c.forward(x))
        }
        _ => {
            let b = batch_norm2d(op.cin, vb.pp("op"))?;
            Box::new(move |x| b.forward_t(x, true))
        }
    };
    let y = forward(&x)?;
    let probe = Tensor::randn(0f32, 1.0, y.dims(), &dev)?;
    let forward_s = time(min_secs, || forward(&x).map(drop))?;
    let forward_backward_s = time(min_secs, || {
        forward(&x)?
            .apply_op1(ProbeDot(probe.clone()))?
            .backward()
            .map(drop)
    })?;
    Ok(OpTimes {
        forward_s,
        forward_backward_s,
    })
}
