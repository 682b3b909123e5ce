//! The layers networks are built from, each a plain struct of tensors with a constructor
//! that fetches its named weights from a `VarBuilder` (as candle-nn's): convolutions (plain,
//! depthwise, and LoRKD's low-rank expert convolution), batch norm and its fusion with the
//! convolution before it, task heads, pooling and stage bookkeeping.

pub mod batch_norm;
pub mod conv;
pub mod conv_bn;
pub mod conv_layer;
pub mod depthwise;
pub mod heads;
pub mod lowrank;
pub mod pool;
pub mod stages;
