//! MTL: one shared student with a head per task, trained on mixed batches of all tasks with
//! equal task weighting. The expert for task t is the shared backbone plus head_t.

use candle_nn::VarBuilder;

use super::hard_sharing::HardSharing;
use super::weighting::{Equal, Weighting};
use super::{BuildContext, Granularity, Method, TaskModel};

pub struct Mtl;

impl Method for Mtl {
    fn key(&self) -> &'static str {
        "mtl"
    }
    fn granularity(&self) -> Granularity {
        Granularity::Joint
    }
    fn build(&self, ctx: &BuildContext, vb: VarBuilder) -> candle_core::Result<Box<dyn TaskModel>> {
        Ok(Box::new(HardSharing::new(ctx, vb)?))
    }
    fn weighting(&self) -> Box<dyn Weighting> {
        Box::new(Equal)
    }
}
