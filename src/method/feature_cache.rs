//! Pooled features of a frozen network (a teacher, or a loaded tower under linear probes),
//! computed once per sample and kept across epochs. This is exact because the network is
//! in evaluation mode (its batch norms use running statistics, so a sample's feature does
//! not depend on the rest of its batch) and the input pipeline has no random augmentation:
//! the same sample always gives the same image.
//!
//! The cache is bounded: past its budget, features are computed on every visit instead of
//! stored, so paper-scale data sets cannot exhaust memory.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{Result, Tensor};

use crate::data::batch::{Batch, SplitName};
use crate::model::Backbone;

/// Default memory budget of one cache.
pub const DEFAULT_BUDGET_BYTES: usize = 2 << 30;

pub struct FeatureCache {
    dim: usize,
    max_entries: usize,
    rows: Mutex<HashMap<(SplitName, usize, usize), Vec<f32>>>,
}

impl FeatureCache {
    pub fn new(dim: usize, budget_bytes: usize) -> Self {
        Self {
            dim,
            max_entries: budget_bytes / (4 * dim.max(1)),
            rows: Mutex::new(HashMap::new()),
        }
    }

    /// `B × dim` features of the batch's rows from `net` in evaluation mode, without
    /// gradient; only rows not seen before are computed.
    pub fn features(&self, net: &dyn Backbone, batch: &Batch) -> Result<Tensor> {
        let key = |i: usize| (batch.split, batch.items[i].0, batch.items[i].1);
        let missing: Vec<u32> = {
            let rows = self.rows.lock().expect("feature cache");
            (0..batch.size)
                .filter(|&i| !rows.contains_key(&key(i)))
                .map(|i| i as u32)
                .collect()
        };
        let mut fresh: HashMap<usize, Vec<f32>> = HashMap::new();
        if !missing.is_empty() {
            let idx = Tensor::from_slice(&missing, missing.len(), batch.x.device())?;
            let x = batch.x.index_select(&idx, 0)?;
            let f = net.forward_t(&x, false)?.detach();
            if f.dim(1)? != self.dim {
                candle_core::bail!(
                    "frozen network gives {} features, expected {}",
                    f.dim(1)?,
                    self.dim
                );
            }
            for (row, values) in missing.iter().zip(f.to_vec2::<f32>()?) {
                fresh.insert(*row as usize, values);
            }
        }
        let mut rows = self.rows.lock().expect("feature cache");
        let mut out = Vec::with_capacity(batch.size * self.dim);
        for i in 0..batch.size {
            match fresh.remove(&i) {
                Some(v) => {
                    out.extend_from_slice(&v);
                    if rows.len() < self.max_entries {
                        rows.insert(key(i), v);
                    }
                }
                None => out.extend_from_slice(&rows[&key(i)]),
            }
        }
        Tensor::from_vec(out, (batch.size, self.dim), batch.x.device())
    }

    /// Number of cached samples.
    pub fn len(&self) -> usize {
        self.rows.lock().expect("feature cache").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
