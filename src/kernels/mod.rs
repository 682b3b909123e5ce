//! The hand-written CPU kernels: convolutions (groups = 1 and depthwise), batch norm, the
//! fused convolution + batch norm, ShuffleNetV2's channel operations, and the GEMM, lane
//! sums and layout changes under them, as candle custom ops (forward and backward) on raw
//! f32 buffers. They know nothing of networks, methods or runs: `model` builds layers on
//! them (and decides when to use them), `bench` times them.
//!
//! Every `unsafe` line of the crate outside the allocator, the fork-join (`util::parallel`)
//! and `main` lives here, each with a `SAFETY` comment: vector intrinsics behind run-time
//! feature checks, and outputs allocated without zero-filling.
#![allow(unsafe_code)]

pub mod batch_norm;
pub mod buffers;
pub mod channel_ops;
pub mod conv;
pub mod conv_bn;
pub mod depthwise;
pub mod gemm;
mod lane_sums;
mod layout;
mod simd;
pub mod slice_conv;
pub mod task_conv;
#[cfg(test)]
pub(crate) mod test_support;
