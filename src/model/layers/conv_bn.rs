//! A convolution followed by its batch norm (and its ReLU): on the CPU one fused op
//! ([`crate::kernels::conv_bn`]), which saves the zero-filled gradient node candle keeps for
//! every convolution output; the numbers are identical to running the two layers.
//!
//! The residual tail (`relu(bn(conv(x)) + residual)`) stays two ops: candle's custom ops
//! take at most three operands, and packing the weight with `[γ; β]` into one operand
//! copied every such weight on every step (the full-width ResNet-18's step peak rose from
//! 1.34× to 1.51× PyTorch's). Other devices also run the layers one after the other.

use candle_core::{Module, Result, Tensor};

use super::batch_norm::BatchNorm2d;
use crate::kernels::batch_norm::Tail;
use crate::kernels::conv_bn::ConvBn;
use crate::kernels::slice_conv::SliceConv;

/// A convolution layer that can run inside `conv_bn`.
pub trait FusableConv: Module {
    /// The CPU kernel for the input `x` and the weight in the layout it reads; `None` where
    /// the layer assembles its output from several convolutions (the batch norm then runs
    /// as a separate op).
    fn cpu_kernel(&self, x: &Tensor) -> Result<Option<(Box<dyn SliceConv>, Tensor)>>;
    /// Whether it is a groups = 1 convolution (the layers LoRKD's experts sit on; a
    /// depthwise one is not), for [`crate::model::cost::record_conv`].
    fn dense(&self) -> bool {
        true
    }
}

/// `tail(bn(conv(x)) [+ residual])`; the batch norm's running statistics are updated in
/// training mode exactly as by [`BatchNorm2d::forward_t`].
/// Runs a forward pass whose graph will be differentiated more than once (one backward
/// pass per task): its fused convolution + batch-norm ops keep the tensors they saved
/// instead of freeing them in the first backward pass.
pub fn keeping_saved_outputs<T>(forward: impl FnOnce() -> T) -> T {
    crate::kernels::conv_bn::keeping_saved_outputs(forward)
}

/// [`keeping_saved_outputs`] where `repeated` (the step's weighting differentiates once per
/// loss), else a plain call.
pub fn keeping_saved_outputs_if<T>(repeated: bool, forward: impl FnOnce() -> T) -> T {
    if repeated {
        keeping_saved_outputs(forward)
    } else {
        forward()
    }
}

pub(crate) fn conv_bn(
    conv: &dyn FusableConv,
    bn: &BatchNorm2d,
    x: &Tensor,
    residual: Option<&Tensor>,
    tail: Tail,
    train: bool,
) -> Result<Tensor> {
    let fused = if x.device().is_cpu() && tail != Tail::AddRelu {
        conv.cpu_kernel(x)?
    } else {
        None
    };
    let Some((kernel, weight)) = fused else {
        let y = conv.forward(x)?;
        return match tail {
            Tail::None => bn.forward_t(&y, train),
            Tail::Relu => bn.forward_relu(&y, train),
            Tail::AddRelu => match residual {
                Some(r) => bn.forward_add_relu(&y, r, train),
                None => candle_core::bail!("conv_bn: the residual tail needs a residual"),
            },
        };
    };
    let bn_op = bn.fused_op(tail, train)?;
    let stats = bn_op.stats.clone();
    let op = ConvBn::new(kernel, bn_op);
    let out = x
        .contiguous()?
        .apply_op3(&weight.contiguous()?, &bn.gamma_beta()?, op)?;
    let (b, c, h, w) = out.dims4()?;
    crate::model::cost::record_macs((out.elem_count() * weight.dim(1)?) as u64);
    if conv.dense() {
        crate::model::cost::record_conv(crate::model::cost::ConvShape {
            d_in: weight.dim(1)?,
            d_out: c,
            positions: h * w,
        });
    }
    bn.record(&stats, b * h * w, train)?;
    Ok(out)
}

// The fused forms of the batch norm live beside the dispatch they call, so the batch norm
// itself does not depend on convolutions.
impl BatchNorm2d {
    /// `bn(conv(x))` as one op on the CPU (see `conv_bn`).
    pub fn after_conv(&self, conv: &dyn FusableConv, x: &Tensor, train: bool) -> Result<Tensor> {
        conv_bn(conv, self, x, None, Tail::None, train)
    }

    /// `relu(bn(conv(x)))` as one op on the CPU.
    pub fn after_conv_relu(
        &self,
        conv: &dyn FusableConv,
        x: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        conv_bn(conv, self, x, None, Tail::Relu, train)
    }

    /// `relu(bn(conv(x)) + residual)` as one op on the CPU.
    pub fn after_conv_add_relu(
        &self,
        conv: &dyn FusableConv,
        x: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        conv_bn(conv, self, x, Some(residual), Tail::AddRelu, train)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    use super::*;
    use crate::kernels::conv::ConvGeometry;
    use crate::model::init::SeededInit;
    use crate::model::layers::batch_norm::batch_norm2d;
    use crate::model::layers::conv::conv2d_no_bias;
    use crate::model::layers::depthwise::depthwise_conv2d;

    /// A layer pair built twice from the same seed: once run fused, once as two ops.
    struct Pair {
        map: VarMap,
        conv: Box<dyn FusableConv>,
        bn: BatchNorm2d,
    }

    fn pair(depthwise: bool, (cin, cout, k, stride): (usize, usize, usize, usize)) -> Pair {
        let map = VarMap::new();
        let vb = SeededInit::var_builder(&map, 7, &Device::Cpu);
        let conv: Box<dyn FusableConv> = if depthwise {
            let g = ConvGeometry {
                k,
                stride,
                padding: k / 2,
                dilation: 1,
            };
            Box::new(depthwise_conv2d(cin, g, vb.pp("conv")).unwrap())
        } else {
            Box::new(conv2d_no_bias(cin, cout, k, stride, k / 2, vb.pp("conv")).unwrap())
        };
        let bn = batch_norm2d(cout, vb.pp("bn")).unwrap();
        // Non-trivial γ and β, so their gradients and the tail are exercised.
        for (name, var) in map.data().lock().unwrap().iter() {
            if name.ends_with("bn.weight") || name.ends_with("bn.bias") {
                let n = var.elem_count();
                let v: Vec<f32> = (0..n).map(|i| 0.5 + 0.1 * i as f32).collect();
                var.set(&Tensor::from_vec(v, n, &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        Pair { map, conv, bn }
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Outputs, running statistics and the gradients of the input, the residual and every
    /// parameter equal the two separate ops bit for bit: convolutions (3×3, strided 1×1) and
    /// depthwise, every tail (the residual one runs unfused), training and evaluation mode.
    #[test]
    fn fused_conv_bn_equals_the_separate_ops() {
        let dev = Device::Cpu;
        let shapes = [
            (false, (3, 8, 3, 1)),
            (false, (4, 6, 1, 2)),
            (true, (6, 6, 3, 2)),
            (true, (5, 5, 3, 1)),
        ];
        for (depthwise, shape) in shapes {
            for tail in [Tail::None, Tail::Relu, Tail::AddRelu] {
                for train in [true, false] {
                    let (fused, plain) = (pair(depthwise, shape), pair(depthwise, shape));
                    let x = Var::from_tensor(
                        &Tensor::randn(0f32, 1.0, (3, shape.0, 9, 7), &dev).unwrap(),
                    )
                    .unwrap();
                    let probe_shape = fused.conv.forward(x.as_tensor()).unwrap().dims().to_vec();
                    let r = Var::from_tensor(
                        &Tensor::randn(0f32, 1.0, probe_shape.clone(), &dev).unwrap(),
                    )
                    .unwrap();
                    let probe = Tensor::randn(0f32, 1.0, probe_shape, &dev).unwrap();
                    let residual = (tail == Tail::AddRelu).then_some(r.as_tensor());
                    let a = conv_bn(
                        fused.conv.as_ref(),
                        &fused.bn,
                        x.as_tensor(),
                        residual,
                        tail,
                        train,
                    )
                    .unwrap();
                    let y = plain.conv.forward(x.as_tensor()).unwrap();
                    let b = match tail {
                        Tail::None => plain.bn.forward_t(&y, train),
                        Tail::Relu => plain.bn.forward_relu(&y, train),
                        Tail::AddRelu => plain.bn.forward_add_relu(&y, r.as_tensor(), train),
                    }
                    .unwrap();
                    let what = format!("depthwise {depthwise} {shape:?} {tail:?} train {train}");
                    assert_eq!(bits(&a), bits(&b), "output, {what}");
                    let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                    let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                    assert_eq!(
                        bits(ga.get(&x).unwrap()),
                        bits(gb.get(&x).unwrap()),
                        "dx, {what}"
                    );
                    if tail == Tail::AddRelu {
                        assert_eq!(
                            bits(ga.get(&r).unwrap()),
                            bits(gb.get(&r).unwrap()),
                            "dres, {what}"
                        );
                    }
                    let (fm, pm) = (
                        fused.map.data().lock().unwrap(),
                        plain.map.data().lock().unwrap(),
                    );
                    for (name, fv) in fm.iter() {
                        let pv = &pm[name];
                        assert_eq!(
                            bits(fv.as_tensor()),
                            bits(pv.as_tensor()),
                            "{name} value, {what}"
                        );
                        if !name.contains("running") {
                            let (g1, g2) = (ga.get(fv).unwrap(), gb.get(pv).unwrap());
                            assert_eq!(bits(g1), bits(g2), "{name} gradient, {what}");
                        }
                    }
                }
            }
        }
    }

    /// A graph differentiated twice (one backward pass per task) gets the same gradients
    /// both times, whether its ops kept their saved outputs (built inside
    /// `keeping_saved_outputs`) or freed them in the first pass and recompute them.
    #[test]
    fn a_graph_differentiated_twice_gives_the_same_gradients() {
        let dev = Device::Cpu;
        for keep in [false, true] {
            let p = pair(false, (3, 8, 3, 1));
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 5), &dev).unwrap()).unwrap();
            let forward = || {
                conv_bn(
                    p.conv.as_ref(),
                    &p.bn,
                    x.as_tensor(),
                    None,
                    Tail::Relu,
                    true,
                )
            };
            let y = if keep {
                keeping_saved_outputs(forward)
            } else {
                forward()
            }
            .unwrap();
            let probe = Tensor::randn(0f32, 1.0, y.dims(), &dev).unwrap();
            let loss = (&y * &probe).unwrap().sum_all().unwrap();
            let first = loss.backward().unwrap();
            let second = loss.backward().unwrap();
            assert_eq!(
                bits(first.get(&x).unwrap()),
                bits(second.get(&x).unwrap()),
                "dx, keep {keep}"
            );
            for (name, v) in p.map.data().lock().unwrap().iter() {
                if !name.contains("running") {
                    let (g1, g2) = (first.get(v).unwrap(), second.get(v).unwrap());
                    assert_eq!(bits(g1), bits(g2), "{name} gradient, keep {keep}");
                }
            }
        }
    }
}
