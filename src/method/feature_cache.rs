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
        self.features_with(batch, |x| net.forward_t(x, false))
    }

    /// As [`FeatureCache::features`], with the rows computed by `compute` (images → `n ×
    /// dim`), which must be a function of each image alone.
    pub fn features_with(
        &self,
        batch: &Batch,
        compute: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
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
            let f = compute(&x)?.detach();
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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    use super::*;
    use crate::model::build_backbone;
    use crate::model::cost::count_macs;
    use crate::spec::run::{Arch, ModelConfig, Stem};

    fn batch(items: Vec<(usize, usize)>, x: &Tensor) -> Batch {
        Batch {
            x: x.clone(),
            groups: Vec::new(),
            size: items.len(),
            items,
            split: SplitName::Train,
        }
    }

    /// Each sample's feature is computed once: a second visit runs no layer, a batch of
    /// old and new samples runs only the new ones, and the values are the network's.
    #[test]
    fn computes_each_sample_once_with_the_networks_values() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let net = build_backbone(
            &ModelConfig::conv(Arch::Resnet, &[4], &[1], Stem::Cifar),
            vb,
        )
        .unwrap();
        let cache = FeatureCache::new(net.feature_dim(), DEFAULT_BUDGET_BYTES);
        let x = Tensor::randn(0f32, 1.0, (3, 3, 8, 8), &dev).unwrap();
        let first = batch(vec![(0, 0), (0, 1), (1, 0)], &x);
        let (f, macs) = count_macs(|| cache.features(net.as_ref(), &first).unwrap());
        assert!(macs > 0);
        let direct = net.forward_t(&x, false).unwrap();
        let d = (&f - &direct).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        let (again, macs_again) = count_macs(|| cache.features(net.as_ref(), &first).unwrap());
        assert_eq!(macs_again, 0);
        assert_eq!(again.to_vec2::<f32>().unwrap(), f.to_vec2::<f32>().unwrap());
        // Rows 0 and 2 are known; only row 1 (a new sample) is computed.
        let mixed = batch(vec![(0, 1), (2, 5), (1, 0)], &x);
        let (_, macs_mixed) = count_macs(|| cache.features(net.as_ref(), &mixed).unwrap());
        assert_eq!(macs_mixed * 3, macs);
        assert_eq!(cache.len(), 4);
        // A budget of one sample keeps one and still answers every row.
        let small = FeatureCache::new(net.feature_dim(), 4 * net.feature_dim());
        small.features(net.as_ref(), &first).unwrap();
        assert_eq!(small.len(), 1);
    }
}
