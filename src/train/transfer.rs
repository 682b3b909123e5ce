//! Starting a transfer run: the weights its network begins with, the finished source run's
//! expert or shared network ([`crate::method::expert_source`]), loaded into the new network
//! by name; the new head keeps its seeded initialisation.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::method::expert_source::FinishedRun;
use crate::spec::run::RunSpec;

/// The starting weights of transfer run `spec` (empty for a run from scratch): its
/// source's expert of `transfer.expert`, or the source's shared network.
pub fn start_weights(
    spec: &RunSpec,
    results_dir: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let Some(t) = &spec.transfer else {
        return Ok(BTreeMap::new());
    };
    let Some(source_id) = &t.source else {
        return Ok(BTreeMap::new());
    };
    FinishedRun::open(results_dir, source_id, device)?.expert_weights(t.expert.as_deref())
}
