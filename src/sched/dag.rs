//! The plan: runs as nodes of a DAG whose edges are stage dependencies (foundation →
//! decompose → transfer → analysis). Nodes know whether their result is already in the store.

use std::path::Path;

use crate::error::Result;
use crate::spec::run::RunSpec;
use crate::store::artefacts::{self, Depth};
use crate::store::run_dir::RunDir;
use crate::store::status::State;

/// The run ids a run needs finished first: a distilling run its teacher's foundation run,
/// a transfer run the run it fine-tunes, an analysis run the runs whose experts it compares.
pub fn dependencies(spec: &RunSpec) -> Vec<&String> {
    let teacher = spec.teacher.iter().map(|t| &t.run_id);
    let source = spec.transfer.iter().filter_map(|t| t.source.as_ref());
    let compared = spec.analysis.iter().flat_map(|a| &a.sources);
    teacher.chain(source).chain(compared).collect()
}

pub struct PlanNode {
    pub spec: RunSpec,
    pub run_id: String,
    /// Indices of nodes that must finish (successfully) first.
    pub deps: Vec<usize>,
    /// State found in the store when the plan was made (`None`: never started).
    pub stored: Option<State>,
}

pub struct Plan {
    pub nodes: Vec<PlanNode>,
}

impl Plan {
    /// Build the plan for a list of runs, looking up each run's stored state.
    pub fn new(specs: Vec<RunSpec>, results_dir: &Path) -> Result<Plan> {
        let ids: Vec<String> = specs.iter().map(|s| s.run_id()).collect();
        let mut nodes = Vec::with_capacity(specs.len());
        for (spec, run_id) in specs.into_iter().zip(ids.iter().cloned()) {
            let dir = RunDir::new(results_dir, &run_id);
            // A finished run whose files fail their checksums, or whose status cannot be
            // read, is redone (its files set aside first), never used.
            let bad = artefacts::folder_problems(&dir, Depth::Plan);
            let stored = if bad.is_empty() {
                dir.effective_state()?
            } else {
                eprintln!(
                    "warning: run {run_id} ({}) will be redone: {}",
                    spec.label(),
                    bad.join("; ")
                );
                Some(State::Pending)
            };
            let mut deps: Vec<usize> = dependencies(&spec)
                .iter()
                .filter_map(|dep| ids.iter().position(|id| *id == **dep))
                .collect();
            deps.sort_unstable();
            deps.dedup();
            nodes.push(PlanNode {
                spec,
                run_id,
                deps,
                stored,
            });
        }
        Ok(Plan { nodes })
    }

    pub fn is_cached(&self, i: usize) -> bool {
        self.nodes[i].stored == Some(State::Done)
    }

    /// Node indices in a dependency-respecting order (Kahn's algorithm, stable by index).
    pub fn topological_order(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let mut indeg: Vec<usize> = self.nodes.iter().map(|nd| nd.deps.len()).collect();
        let mut order = Vec::with_capacity(n);
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for (j, nd) in self.nodes.iter().enumerate() {
                if nd.deps.contains(&i) {
                    indeg[j] -= 1;
                    if indeg[j] == 0 {
                        ready.insert(j);
                    }
                }
            }
        }
        order
    }
}
