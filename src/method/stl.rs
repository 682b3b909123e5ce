//! STL: one independent student per task, trained only on that task; its expert is the
//! whole model.

use candle_nn::VarBuilder;

use super::hard_sharing::HardSharing;
use super::weighting::{Equal, Weighting};
use super::{BuildContext, Granularity, Method, TaskModel};

pub struct Stl;

impl Method for Stl {
    fn key(&self) -> &'static str {
        "stl"
    }
    fn granularity(&self) -> Granularity {
        Granularity::PerTask
    }
    fn build(&self, ctx: &BuildContext, vb: VarBuilder) -> candle_core::Result<Box<dyn TaskModel>> {
        Ok(Box::new(HardSharing::new(ctx, vb)?))
    }
    fn weighting(&self) -> Box<dyn Weighting> {
        Box::new(Equal)
    }
}
