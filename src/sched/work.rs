//! Each run's expected training work, in multiply-accumulates: what the scheduler orders
//! ready runs by (the longest chain first, `sched::local`) and what the progress lines'
//! time left is extrapolated from. Runs differ by far more than their counts: after the
//! 12-epoch teacher of a three-seed smoke quickstart (268 s; a bottleneck ResNet, twice as
//! deep as its students) the progress line, extrapolating by runs, put the time left at
//! 2h40m for 9.4 minutes of actual work.
//!
//! Work = epochs × training images (tasks × the per-task cap, else 1 000 a task) × (3 × the
//! network's multiply-accumulates an image, for the forward pass and a backward pass of
//! about twice it, + the teacher's for a distilling run, which only runs forward). It sets
//! the order in which runs start and the ETA, never what a run computes.

use std::collections::BTreeMap;

use super::dag::Plan;
use crate::model::cost::probe_backbone;
use crate::spec::run::RunSpec;

/// Training images a task is assumed to have where the profile sets no cap.
const UNCAPPED_IMAGES: u64 = 1_000;

/// The estimated work of every node of `plan`, in its order.
pub fn estimates(plan: &Plan) -> Vec<u64> {
    let mut macs = MacsCache::default();
    // By run id, so that a plan of many thousand runs does not search itself per run.
    let by_id: BTreeMap<&str, &RunSpec> = plan
        .nodes
        .iter()
        .map(|n| (n.run_id.as_str(), &n.spec))
        .collect();
    plan.nodes
        .iter()
        .map(|node| {
            let s = &node.spec;
            let teacher = s
                .teacher
                .as_ref()
                .and_then(|t| by_id.get(t.run_id.as_str()))
                .map_or(0, |t| macs.of(t));
            let per_image = 3u64.saturating_mul(macs.of(s)).saturating_add(teacher);
            images(s).saturating_mul(per_image).max(1)
        })
        .collect()
}

/// Images a run trains on over all its epochs.
fn images(s: &RunSpec) -> u64 {
    let per_task = s.data.caps.train.map_or(UNCAPPED_IMAGES, |c| c as u64);
    (s.train.epochs.max(1) as u64)
        .saturating_mul(s.tasks.len().max(1) as u64)
        .saturating_mul(per_task.max(1))
}

/// Multiply-accumulates of one image through a run's network, counted once per network.
#[derive(Default)]
struct MacsCache(BTreeMap<(String, usize), u64>);

impl MacsCache {
    fn of(&mut self, s: &RunSpec) -> u64 {
        let key = (
            serde_json::to_string(&s.model).unwrap_or_default(),
            s.data.image_size,
        );
        *self.0.entry(key).or_insert_with(|| {
            probe_backbone(&s.model, s.data.image_size).map_or(1, |p| p.macs.max(1))
        })
    }
}
