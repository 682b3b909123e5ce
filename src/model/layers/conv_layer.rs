//! How a network gets its groups = 1 convolutions. The same ResNet or ShuffleNetV2 code
//! builds a plain student (one [`super::conv::Conv2d`] per layer) or a LoRKD student, where every such
//! convolution carries per-task low-rank experts ([`EksConv`]) and applies them to a mixed
//! batch according to the batch's task ids ([`Routing`]). Depthwise convolutions are never
//! decomposed (METHODS.md, "Low-rank expert modules").
//!
//! The task ids reach the layers through a shared [`Routing`] cell rather than through
//! every `forward` signature: the networks stay the plain `Backbone`s the rest of the
//! harness knows, and the owner of the network sets the routing before each forward.

use std::sync::{Arc, RwLock};

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::conv2d_no_bias;
use super::conv_bn::FusableConv;
use super::lowrank::{EksConv, EksForm, LowRank};
use crate::kernels::slice_conv::SliceConv;

/// A convolution layer of a network: plain, or with low-rank experts.
pub type ConvLayer = Box<dyn FusableConv + Send + Sync>;

/// The task of every row of the batch going through a LoRKD network, and the form in
/// which the EKS convolutions apply the experts ([`EksForm::Auto`]: each layer's cheaper
/// form by the supplement's cost model, unless a check asks for another of the equivalent
/// forms).
#[derive(Clone)]
pub struct Routing(Arc<RwLock<(Vec<usize>, EksForm)>>);

impl Default for Routing {
    fn default() -> Self {
        Routing(Arc::new(RwLock::new((Vec::new(), EksForm::Auto))))
    }
}

impl Routing {
    /// Route the next forward passes: row `i` belongs to task `tasks[i]`.
    pub fn set(&self, tasks: Vec<usize>) {
        self.0.write().expect("routing lock").0 = tasks;
    }

    /// Apply the experts in `form` from now on.
    pub fn set_form(&self, form: EksForm) {
        self.0.write().expect("routing lock").1 = form;
    }

    fn get(&self) -> (Vec<usize>, EksForm) {
        self.0.read().expect("routing lock").clone()
    }
}

/// Which kind of convolution a network is built with.
#[derive(Clone)]
pub enum ConvKind {
    Plain,
    /// Every groups = 1 convolution gets `tasks` low-rank experts.
    LowRank {
        tasks: usize,
        low: LowRank,
        routing: Routing,
    },
}

impl ConvKind {
    /// A bias-free convolution named `vb` (`weight`, plus `lora_A.t`/`lora_B.t` for experts).
    pub fn conv(
        &self,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<ConvLayer> {
        let base = conv2d_no_bias(cin, cout, k, stride, padding, vb.clone())?;
        Ok(match self {
            ConvKind::Plain => Box::new(base),
            ConvKind::LowRank {
                tasks,
                low,
                routing,
            } => Box::new(RoutedEks {
                eks: EksConv::new(base, *tasks, *low, vb)?,
                routing: routing.clone(),
            }),
        })
    }
}

/// An EKS convolution reading its batch's task ids from the network's [`Routing`].
struct RoutedEks {
    eks: EksConv,
    routing: Routing,
}

impl Module for RoutedEks {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (tasks, form) = self.routing.get();
        self.eks.forward(x, &tasks, form)
    }
}

impl FusableConv for RoutedEks {
    /// The merged (task-grouped) form is one kernel; the other forms assemble their output
    /// from several convolutions, and the batch norm after them runs as its own op.
    fn cpu_kernel(&self, x: &Tensor) -> Result<Option<(Box<dyn SliceConv>, Tensor)>> {
        let (tasks, form) = self.routing.get();
        self.eks.merged_kernel(x, &tasks, form)
    }
}
