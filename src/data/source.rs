//! Where a run's data come from: real files under the data root, or the synthetic
//! generator. This is the one place that dispatches on [`DataKind`], so the planner and the
//! runner never care which one they got; it also tells the generator which pre-training
//! task each downstream task is kin to (`kin`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use super::load::{load_real, real_fingerprint, RealLoadOptions};
use super::registry::{DatasetEntry, Registry, Role, TaskEntry};
use super::sampling::SPLITS;
use super::settings::{DataSettings, DataSpec, SplitCaps};
use super::synthetic::{self, Kin, SyntheticOptions, TaskShape};
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

fn task_shapes(registry: &Registry, e: &DatasetEntry) -> Vec<TaskShape> {
    e.tasks
        .iter()
        .map(|t| TaskShape {
            key: t.key.clone(),
            name: t.name.clone(),
            modality: t.modality.clone(),
            labels: t.labels,
            images: t.images,
            kin: if e.role == Role::Downstream {
                kin(registry, t)
            } else {
                None
            },
        })
        .collect()
}

/// The pre-training task whose synthetic primitives a downstream task's stand-in shares
/// (our protocol; the paper gives none): among the pre-training sets whose `expert_for`
/// (supplement Table 1) names the downstream task, in registry order, the first whose
/// matched task has the downstream task's modality (case-insensitive), else the first at
/// all, else none. A derived set (`extends`) comes after its parent in the file, so the
/// parent is considered first.
fn kin(registry: &Registry, downstream: &TaskEntry) -> Option<Kin> {
    let matches: Vec<(&DatasetEntry, &TaskEntry)> = registry
        .datasets
        .iter()
        .filter(|d| d.role == Role::Pretrain)
        .filter_map(|d| {
            let id = *d.expert_for.get(&downstream.key)?;
            Some((d, d.tasks.iter().find(|t| t.id == id)?))
        })
        .collect();
    let (d, t) = matches
        .iter()
        .find(|(_, t)| t.modality.eq_ignore_ascii_case(&downstream.modality))
        .or(matches.first())?;
    Some(Kin {
        dataset: d.key.clone(),
        task: t.key.clone(),
        labels: t.labels,
    })
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
                &task_shapes(registry, e),
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
            &task_shapes(registry, e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::settings::Normalize;

    fn real() -> Registry {
        Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml"))
            .expect("the repository's datasets.toml parses")
    }

    fn kins(registry: &Registry, dataset: &str) -> Vec<(String, Option<(String, String)>)> {
        task_shapes(registry, registry.dataset(dataset).unwrap())
            .into_iter()
            .map(|t| (t.key, t.kin.map(|k| (k.dataset, k.task))))
            .collect()
    }

    #[test]
    fn downstream_tasks_are_kin_to_the_table_1_expert_of_their_modality() {
        let reg = real();
        let expected = [
            ("covid", "radimagenet", "lung_ct"),
            ("btc", "radimagenet", "brain_mr"),
            ("ad", "radimagenet", "brain_mr"),
            ("mura_shoulder", "radimagenet", "shoulder_mr"),
            ("auitd", "radimagenet", "thyroid_us"),
            ("ham10000", "medmnist", "skin"),
            // RadImageNet's expert for DET10 is a CT task; MedMNIST's is X-ray, like DET10.
            ("det10", "medmnist", "chest"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(t, d, k)| (t.to_string(), Some((d.to_string(), k.to_string()))))
            .collect();
        assert_eq!(kins(&reg, "downstream"), expected);
        // The kin carries its task's real label count.
        for t in task_shapes(&reg, reg.dataset("downstream").unwrap()) {
            let k = t.kin.unwrap();
            assert_eq!(
                k.labels,
                reg.dataset(&k.dataset)
                    .unwrap()
                    .task(&k.task)
                    .unwrap()
                    .labels
            );
        }
    }

    #[test]
    fn kin_prefers_the_modality_then_registry_order_and_may_be_none() {
        let task = |id: usize, key: &str, modality: &str| {
            format!(
                "[[dataset.task]]\nid = {id}\nkey = \"{key}\"\nname = \"{key}\"\n\
                 modality = \"{modality}\"\nregion = \"r\"\nlabels = 3\nimages = 10\n\
                 format = \"npz\"\npath = \"{key}.npz\"\n"
            )
        };
        let set = |key: &str, role: &str, expert_for: &str| {
            format!(
                "[[dataset]]\nkey = \"{key}\"\nname = \"{key}\"\nrole = \"{role}\"\n\
                 source = \"test\"\n{expert_for}\n"
            )
        };
        let text = [
            set(
                "pre1",
                "pretrain",
                "expert_for = { d_xray = 1, d_mri = 1, d_one = 2 }",
            ),
            task(1, "ct", "CT"),
            task(2, "xray", "Xray"),
            set(
                "pre2",
                "pretrain",
                "expert_for = { d_xray = 1, d_mri = 1, d_one = 1 }",
            ),
            task(1, "xray", "xray"),
            set("down", "downstream", ""),
            task(1, "d_xray", "XRAY"),
            task(2, "d_mri", "MRI"),
            task(3, "d_one", "Xray"),
            task(4, "d_none", "CT"),
        ]
        .concat();
        let reg = Registry::from_str(&text, Path::new("reg.toml")).unwrap();
        let k = |d: &str, t: &str| Some((d.to_string(), t.to_string()));
        assert_eq!(
            kins(&reg, "down"),
            vec![
                // The modality (case-insensitive) beats registry order ...
                ("d_xray".to_string(), k("pre2", "xray")),
                // ... which decides when no match has the modality ...
                ("d_mri".to_string(), k("pre1", "ct")),
                // ... and between matches that both have it.
                ("d_one".to_string(), k("pre1", "xray")),
                ("d_none".to_string(), None),
            ]
        );
        assert!(kins(&reg, "pre1").iter().all(|(_, kin)| kin.is_none()));
    }

    #[test]
    fn pre_training_sets_have_no_kin_and_keep_their_fingerprints() {
        // Computed with the code before kin existed (the smoke profile's options at 28 px);
        // a change here re-keys every cached synthetic data set and run.
        let pinned = [
            (
                "radimagenet",
                "7dfc7d28383f15e8f648e3a2ea6a8053ced185aca0b0724aa1e5f8638117df38",
            ),
            (
                "medmnist",
                "17e8a1ca5fbe08a88736cbb4fb3b548f824c1580039ee8de81a000dc5130fc71",
            ),
            (
                "medmnist-pneumonia",
                "f0f297892502ec9898a97e467c24c00fb861c491efc71b09cbf5ef7174e4f979",
            ),
            (
                "medmt",
                "d5f0e076e943bee09cb4c71ba0b36f48ef7413deb41ae2f99b1c4288dd36dac2",
            ),
        ];
        let reg = real();
        let settings = DataSettings {
            kind: DataKind::Synthetic,
            image_size: 28,
            caps: SplitCaps::default(),
            difficulty: 0.5,
            normalize: Normalize::PerImage,
        };
        let pretrain: Vec<&str> = reg
            .datasets
            .iter()
            .filter(|d| d.role == Role::Pretrain)
            .map(|d| d.key.as_str())
            .collect();
        assert_eq!(pretrain, pinned.map(|p| p.0));
        for (key, fp) in pinned {
            assert!(
                kins(&reg, key).iter().all(|(_, kin)| kin.is_none()),
                "{key}"
            );
            let spec = data_spec(&reg, key, &settings, Path::new("unused")).unwrap();
            assert_eq!(spec.fingerprint, fp, "{key}");
        }
    }

    #[test]
    fn the_downstream_stand_in_generates_at_small_sizes() {
        let reg = real();
        for image_size in [16, 28] {
            let settings = DataSettings {
                kind: DataKind::Synthetic,
                image_size,
                caps: SplitCaps {
                    train: Some(30),
                    val: Some(10),
                    test: Some(10),
                },
                difficulty: 0.5,
                normalize: Normalize::PerImage,
            };
            let spec = data_spec(&reg, "downstream", &settings, Path::new("unused")).unwrap();
            let ds = load(&reg, &spec, Path::new("unused")).unwrap();
            let entry = reg.dataset("downstream").unwrap();
            assert_eq!(ds.tasks.len(), entry.tasks.len());
            for (t, e) in ds.tasks.iter().zip(&entry.tasks) {
                assert_eq!((t.key.as_str(), t.num_classes), (e.key.as_str(), e.labels));
                assert_eq!(t.train.len(), 30);
                assert_eq!(t.train.images.len(), 30 * 3 * image_size * image_size);
                assert!(t.train.labels.iter().all(|&l| (l as usize) < e.labels));
            }
        }
    }
}
