//! Loading real data sets: the registry entry says where each task's files are and in which
//! format; this module checks that they exist (with an error that says how to point the
//! harness at them, or how to run without them), verifies declared checksums, dispatches to
//! the format loaders and assembles one [`Dataset`].
//!
//! What the format loaders share lives in [`super::sampling`] (seeded selection for caps
//! and splits) and [`super::resample`] (any `H × W × C` image to the `3 × S × S` layout
//! every network consumes).
//!
//! A data fingerprint ([`real_fingerprint`]) is part of every run id, so a changed file
//! invalidates cached results without hashing gigabytes on every run.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::registry::{DatasetEntry, Format, TaskEntry};
use super::settings::SplitCaps;
use super::{checksum, image_folder, medmnist, DataKind, Dataset, TaskData};
use crate::error::{Error, Result};
use crate::util::hash::hex;
use crate::util::seed::derive_seed;

/// Environment variable naming the data root when `--data-dir` is not given.
pub const DATA_DIR_ENV: &str = "HARNESS_DATA_DIR";
/// Data root when neither `--data-dir` nor [`DATA_DIR_ENV`] is given.
pub const DEFAULT_DATA_DIR: &str = "data";

/// The data root: the flag if given, else `$HARNESS_DATA_DIR`, else `data/`.
pub fn resolve_data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// How to load a real data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealLoadOptions {
    /// Registry paths are relative to this directory.
    pub data_dir: PathBuf,
    /// Side length every image is resampled to.
    pub image_size: usize,
    pub caps: SplitCaps,
    /// Seeds the choice of capped subsets and of splits for folders without split folders.
    pub split_seed: u64,
}

/// Loads every task of `entry` from the files under `opts.data_dir`.
///
/// Tasks come back in registry order. Each split keeps its file order; with a cap, the
/// first `cap` samples of a seeded permutation are kept (still in file order), so the same
/// seed always selects the same subset.
pub fn load_real(entry: &DatasetEntry, opts: &RealLoadOptions) -> Result<Dataset> {
    if opts.image_size == 0 {
        return Err(Error::input("image size must be at least 1 pixel"));
    }
    let missing: Vec<&TaskEntry> = entry
        .tasks
        .iter()
        .filter(|t| !opts.data_dir.join(&t.path).exists())
        .collect();
    if let Some(first) = missing.first() {
        let err = missing_data_error(entry, first, &opts.data_dir.join(&first.path));
        return Err(match err {
            Error::BadInput(msg) if missing.len() > 1 => {
                let others: Vec<&str> = missing[1..].iter().map(|t| t.key.as_str()).collect();
                Error::input(format!(
                    "{msg}\n({} more task(s) of `{}` are missing too: {})",
                    others.len(),
                    entry.key,
                    others.join(", ")
                ))
            }
            other => other,
        });
    }
    let tasks = entry
        .tasks
        .par_iter()
        .map(|task| load_task(entry, task, opts))
        .collect::<Result<Vec<TaskData>>>()?;
    Ok(Dataset {
        key: entry.key.clone(),
        kind: DataKind::Real,
        image_size: opts.image_size,
        tasks,
    })
}

fn load_task(entry: &DatasetEntry, task: &TaskEntry, opts: &RealLoadOptions) -> Result<TaskData> {
    let path = opts.data_dir.join(&task.path);
    if let Some(expected) = &task.sha256 {
        checksum::verify(&entry.key, &task.key, &path, expected, &opts.data_dir)?;
    }
    let seed = derive_seed(opts.split_seed, &[&task.path]);
    match task.format {
        Format::Npz => {
            if !path.is_file() {
                return Err(Error::input(format!(
                    "data set `{}`, task `{}`: {} is not a file (format = \"npz\")",
                    entry.key,
                    task.key,
                    path.display()
                )));
            }
            medmnist::load_medmnist(task, &path, opts.image_size, &opts.caps, seed)
        }
        Format::ImageFolder => {
            if !path.is_dir() {
                return Err(Error::input(format!(
                    "data set `{}`, task `{}`: {} is not a directory (format = \"image_folder\")",
                    entry.key,
                    task.key,
                    path.display()
                )));
            }
            image_folder::load_image_folder(task, &path, opts.image_size, &opts.caps, seed)
        }
    }
}

/// The error for a task whose files are not where the registry says: names the data set,
/// task and expected path, how to set the data root, and how to run without data.
pub fn missing_data_error(entry: &DatasetEntry, task: &TaskEntry, expected: &Path) -> Error {
    let what = match task.format {
        Format::Npz => "a MedMNIST-layout .npz file",
        Format::ImageFolder => "an image folder (one sub-folder per class)",
    };
    Error::input(format!(
        "data set `{ds}` ({ds_name}), task `{task}` ({task_name}): expected {what} at {path}, \
         which does not exist.\n\
         Paths in datasets.toml are relative to the data root; set it with --data-dir DIR or \
         the environment variable {env} (default: {default}/).\n\
         To run without the real data, use --profile smoke (synthetic stand-ins with the same \
         tasks and label counts); `harness datasets` lists what is present.",
        ds = entry.key,
        ds_name = entry.name,
        task = task.key,
        task_name = task.name,
        path = expected.display(),
        env = DATA_DIR_ENV,
        default = DEFAULT_DATA_DIR,
    ))
}

/// A cheap fingerprint of the real files of `entry`, as lower-case hex.
///
/// Per task: the declared sha256 (verified once, then cached by path, size and mtime) if
/// the registry has one, else a hash of (relative path, size, mtime) of every file. The
/// task's registry fields that change what is loaded (key, format, labels, multilabel, path)
/// are included too.
pub fn real_fingerprint(entry: &DatasetEntry, data_dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    h.update(b"kdbench real data fingerprint v1\n");
    h.update(format!("dataset {}\n", entry.key).as_bytes());
    for task in &entry.tasks {
        let path = data_dir.join(&task.path);
        if !path.exists() {
            return Err(missing_data_error(entry, task, &path));
        }
        h.update(
            format!(
                "task {} {} labels={} multilabel={:?} path={}\n",
                task.key,
                task.format.as_str(),
                task.labels,
                task.multilabel,
                task.path
            )
            .as_bytes(),
        );
        if let Some(expected) = &task.sha256 {
            checksum::verify(&entry.key, &task.key, &path, expected, data_dir)?;
            h.update(format!("sha256 {expected}\n").as_bytes());
            continue;
        }
        let files = if path.is_dir() {
            image_folder::walk_files(&path)?
        } else {
            vec![path.clone()]
        };
        for file in files {
            let meta = std::fs::metadata(&file).map_err(|e| Error::io(&file, e))?;
            let rel = file.strip_prefix(data_dir).unwrap_or(&file);
            let (secs, nanos) = checksum::mtime(&meta);
            h.update(
                format!(
                    "file {} {} {secs}.{nanos:09}\n",
                    rel.to_string_lossy(),
                    meta.len()
                )
                .as_bytes(),
            );
        }
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::registry::Registry;

    #[test]
    fn missing_data_error_explains_what_to_do() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml");
        let reg = Registry::load(&path).unwrap();
        let ds = reg.dataset("medmnist").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = RealLoadOptions {
            data_dir: dir.path().to_path_buf(),
            image_size: 28,
            caps: SplitCaps::default(),
            split_seed: 0,
        };
        let err = load_real(ds, &opts).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        for needle in [
            "`medmnist`",
            "`colon`",
            "pathmnist.npz",
            "--data-dir",
            "HARNESS_DATA_DIR",
            "--profile smoke",
            "9 more task(s)",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
        }
        assert!(real_fingerprint(ds, dir.path()).is_err());
    }

    /// A data root with one npz task (checksum declared) and one image-folder task.
    fn mini_root(dir: &Path, sha: &str) -> Registry {
        use crate::data::numpy::{write_npz, NpyArray, NpyData};
        let mut arrays = Vec::new();
        for (split, n) in [("train", 5usize), ("val", 2), ("test", 3)] {
            let imgs = NpyArray::new(vec![n, 8, 8], NpyData::U8(vec![9; n * 64])).unwrap();
            let labels = NpyArray::new(vec![n, 1], NpyData::U8(vec![1; n])).unwrap();
            arrays.push((format!("{split}_images"), imgs));
            arrays.push((format!("{split}_labels"), labels));
        }
        let named: Vec<(&str, NpyArray)> = arrays
            .iter()
            .map(|(n, a)| (n.as_str(), a.clone()))
            .collect();
        std::fs::create_dir_all(dir.join("m")).unwrap();
        write_npz(&dir.join("m/a.npz"), &named).unwrap();
        for class in ["neg", "pos"] {
            for i in 0..4 {
                let p = dir.join(format!("f/{class}/{i}.png"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                image::GrayImage::from_pixel(6, 6, image::Luma([7]))
                    .save(&p)
                    .unwrap();
            }
        }
        let sha = if sha.is_empty() {
            checksum::sha256_file(&dir.join("m/a.npz")).unwrap()
        } else {
            sha.to_string()
        };
        let text = format!(
            r#"
[[dataset]]
key = "mini"
name = "Mini"
role = "pretrain"
source = "test"

[[dataset.task]]
id = 1
key = "a"
name = "A"
modality = "CT"
region = "Chest"
labels = 2
images = 10
format = "npz"
path = "m/a.npz"
sha256 = "{sha}"

[[dataset.task]]
id = 2
key = "f"
name = "F"
modality = "CT"
region = "Chest"
labels = 2
images = 8
format = "image_folder"
path = "f"
"#
        );
        Registry::from_str(&text, Path::new("mini.toml")).unwrap()
    }

    #[test]
    fn load_real_verifies_and_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let reg = mini_root(dir.path(), "");
        let ds = reg.dataset("mini").unwrap();
        let opts = RealLoadOptions {
            data_dir: dir.path().to_path_buf(),
            image_size: 4,
            caps: SplitCaps {
                train: Some(2),
                val: None,
                test: None,
            },
            split_seed: 1,
        };
        let d = load_real(ds, &opts).unwrap();
        assert_eq!(d.kind, DataKind::Real);
        assert_eq!(d.key, "mini");
        assert_eq!(d.image_size, 4);
        let keys: Vec<&str> = d.tasks.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["a", "f"]);
        assert_eq!(d.tasks[0].train.len(), 2);
        assert_eq!(d.tasks[0].train.images.len(), 2 * d.image_bytes());
        assert!(d.tasks[0].train.images.iter().all(|&v| v == 9));
        assert_eq!(d.tasks[1].num_classes, 2);
        assert_eq!(d.tasks[1].train.len(), 2);
        // The checksum was cached in the data root.
        assert!(dir.path().join(checksum::CACHE_FILE).is_file());

        let f1 = real_fingerprint(ds, dir.path()).unwrap();
        assert_eq!(f1.len(), 64);
        assert_eq!(f1, real_fingerprint(ds, dir.path()).unwrap());
        // Adding an image changes the fingerprint.
        let extra = dir.path().join("f/pos/extra.png");
        image::GrayImage::from_pixel(6, 6, image::Luma([7]))
            .save(&extra)
            .unwrap();
        assert_ne!(f1, real_fingerprint(ds, dir.path()).unwrap());

        // A wrong declared checksum stops loading with a mismatch error.
        let bad = mini_root(dir.path(), &"ab".repeat(32));
        let err = load_real(bad.dataset("mini").unwrap(), &opts).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}
