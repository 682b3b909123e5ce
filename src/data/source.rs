//! Where a run's data come from: real files under the data root, or the synthetic
//! generator. This is the one place that dispatches on [`DataKind`], so the planner and the
//! runner never care which one they got.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use super::load::{load_real, real_fingerprint, RealLoadOptions};
use super::registry::{DatasetEntry, Registry};
use super::sampling::SPLITS;
use super::settings::{DataSettings, DataSpec, SplitCaps};
use super::synthetic::{self, SyntheticOptions, TaskShape};
use super::{DataKind, Dataset};
use crate::error::{Error, Result};

/// Per-task caps of the train, val and test splits used for synthetic data when a profile
/// sets none: synthetic stand-ins are meant to be small.
pub const DEFAULT_SYNTHETIC_CAPS: [usize; 3] = [500, 100, 200];

/// The synthetic generator's seed: fixed so that every training seed sees the same data and
/// seed-to-seed variance is training variance only.
pub const SYNTHETIC_DATA_SEED: u64 = 0;

fn entry<'a>(registry: &'a Registry, key: &str) -> Result<&'a DatasetEntry> {
    registry.dataset(key).ok_or_else(|| {
        Error::input(format!(
            "unknown data set `{key}` (known: {}; see {})",
            registry.keys().join(", "),
            registry.path.display()
        ))
    })
}

fn task_shapes(e: &DatasetEntry) -> Vec<TaskShape> {
    e.tasks
        .iter()
        .map(|t| TaskShape {
            key: t.key.clone(),
            name: t.name.clone(),
            modality: t.modality.clone(),
            labels: t.labels,
            images: t.images,
        })
        .collect()
}

fn synthetic_options(spec_caps: SplitCaps, image_size: usize, difficulty: f64) -> SyntheticOptions {
    let mut caps = DEFAULT_SYNTHETIC_CAPS;
    for (cap, split) in caps.iter_mut().zip(SPLITS) {
        if let Some(c) = spec_caps.for_split(split) {
            *cap = c;
        }
    }
    SyntheticOptions {
        image_size,
        caps,
        difficulty,
        seed: SYNTHETIC_DATA_SEED,
    }
}

/// Build the data part of a run spec, including the content fingerprint.
pub fn data_spec(
    registry: &Registry,
    dataset: &str,
    profile: &DataSettings,
    data_dir: &Path,
) -> Result<DataSpec> {
    let (kind, image_size, caps) = (profile.kind, profile.image_size, profile.caps);
    let e = entry(registry, dataset)?;
    let (fingerprint, difficulty) = match kind {
        DataKind::Synthetic => (
            synthetic::fingerprint(
                &e.key,
                &task_shapes(e),
                &synthetic_options(caps, image_size, profile.difficulty),
            ),
            Some(profile.difficulty),
        ),
        DataKind::Real => (real_fingerprint(e, data_dir)?, None),
    };
    Ok(DataSpec {
        kind,
        dataset: dataset.to_string(),
        image_size,
        caps,
        difficulty,
        normalize: profile.normalize,
        fingerprint,
    })
}

/// Load (or generate) the data a run spec names.
pub fn load(registry: &Registry, spec: &DataSpec, data_dir: &Path) -> Result<Arc<Dataset>> {
    let e = entry(registry, &spec.dataset)?;
    match spec.kind {
        DataKind::Synthetic => synthetic::generate_cached(
            &e.key,
            &task_shapes(e),
            &synthetic_options(spec.caps, spec.image_size, spec.difficulty.unwrap_or(0.5)),
        ),
        DataKind::Real => {
            // Real data sets are decoded once per process and shared by all runs using them.
            static CACHE: OnceLock<Mutex<HashMap<String, Arc<Dataset>>>> = OnceLock::new();
            let cache_key = serde_json::to_string(spec).unwrap_or_default();
            let cache = CACHE.get_or_init(Default::default);
            if let Some(d) = cache.lock().expect("data cache lock").get(&cache_key) {
                return Ok(d.clone());
            }
            let opts = RealLoadOptions {
                data_dir: data_dir.to_path_buf(),
                image_size: spec.image_size,
                caps: spec.caps,
                split_seed: 0,
            };
            let d = Arc::new(load_real(e, &opts)?);
            cache
                .lock()
                .expect("data cache lock")
                .insert(cache_key, d.clone());
            Ok(d)
        }
    }
}
