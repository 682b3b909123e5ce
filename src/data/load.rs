//! Loading real data sets: the registry entry says where each task's files are and in which
//! format; this module checks that they exist (with an error that says how to point the
//! harness at them, or how to run without them), verifies declared checksums, dispatches to
//! the format loaders and assembles one [`Dataset`].
//!
//! It also holds what the loaders share: the seeded sample selection used for caps and
//! splits (a small splitmix64 generator, so results do not depend on an external crate's
//! algorithm), and the resampler that turns any `H × W × C` image into the `3 × S × S`
//! layout every network consumes.
//!
//! A data fingerprint ([`real_fingerprint`]) is part of every run id, so a changed file
//! invalidates cached results without hashing gigabytes on every run.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::registry::{DatasetEntry, Format, TaskEntry};
use super::{checksum, image_folder, npz, DataKind, Dataset, TaskData, CHANNELS};
use crate::error::{Error, Result};

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

/// Per task, per split maximum number of samples (`None` = all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    pub train: Option<usize>,
    pub val: Option<usize>,
    pub test: Option<usize>,
}

impl Caps {
    /// The cap of a split by name (`train`, `val`, `test`).
    pub fn for_split(&self, split: &str) -> Option<usize> {
        match split {
            "train" => self.train,
            "val" => self.val,
            "test" => self.test,
            _ => None,
        }
    }
}

/// How to load a real data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealLoadOptions {
    /// Registry paths are relative to this directory.
    pub data_dir: PathBuf,
    /// Side length every image is resampled to.
    pub image_size: usize,
    pub caps: Caps,
    /// Seeds the choice of capped subsets and of splits for folders without split folders.
    pub split_seed: u64,
}

/// The names of the three splits, in [`TaskData`] order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

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
            npz::load_medmnist(task, &path, opts.image_size, &opts.caps, seed)
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

// ------------------------------------------------------------------------------------------
// Seeded selection.

pub use crate::util::hash::hex;
pub(crate) use crate::util::rng::SplitMix64;

/// Derives a seed for one purpose (e.g. one file and split) from the user's seed, so that
/// different tasks and splits draw independent subsets. FNV-1a over the parts, then mixed.
pub(crate) fn derive_seed(base: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(std::iter::once(&0xFF)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    SplitMix64::new(base ^ h.rotate_left(17)).next_u64()
}

/// Indices of the samples to keep out of `n`: all of them without a cap (or when the cap is
/// at least `n`), else the first `cap` of a seeded permutation. Always ascending.
pub(crate) fn select_indices(n: usize, cap: Option<usize>, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    match cap {
        Some(cap) if cap < n => {
            SplitMix64::new(seed).shuffle(&mut idx);
            idx.truncate(cap);
            idx.sort_unstable();
            idx
        }
        _ => idx,
    }
}

// ------------------------------------------------------------------------------------------
// Resampling.

/// One axis of a separable resampler: for each output pixel, the first input pixel and the
/// weights of the input pixels it averages.
#[derive(Debug, Clone)]
struct AxisKernel {
    starts: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

impl AxisKernel {
    /// Triangle (bilinear) filter with pixel centres at `i + 0.5`. When shrinking, the
    /// filter is widened by the scale factor so every input pixel contributes (antialiased
    /// bilinear, as PIL does); when enlarging it is plain bilinear interpolation.
    fn new(input: usize, output: usize) -> Self {
        let scale = input as f64 / output as f64;
        let support = scale.max(1.0);
        let mut starts = Vec::with_capacity(output);
        let mut weights = Vec::with_capacity(output);
        for o in 0..output {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0)) as usize;
            let hi = ((centre + support).ceil() as usize).min(input);
            let mut w: Vec<f32> = Vec::with_capacity(hi.saturating_sub(lo));
            let mut total = 0.0f64;
            for x in lo..hi {
                let d = ((x as f64 + 0.5 - centre) / support).abs();
                let v = (1.0 - d).max(0.0);
                total += v;
                w.push(v as f32);
            }
            if total > 0.0 {
                for v in &mut w {
                    *v = (f64::from(*v) / total) as f32;
                }
                starts.push(lo);
                weights.push(w);
            } else {
                // Cannot happen for input >= 1, but keep the nearest pixel to be safe.
                let nearest = (centre.floor() as usize).min(input - 1);
                starts.push(nearest);
                weights.push(vec![1.0]);
            }
        }
        AxisKernel { starts, weights }
    }
}

/// Converts `H × W × C` interleaved `u8` images (C = 1 gray, 3 RGB, 4 RGBA; alpha dropped)
/// to planar `3 × S × S`, resampling when the size differs. Built once per input size.
#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    in_h: usize,
    in_w: usize,
    out: usize,
    rows: Option<AxisKernel>,
    cols: Option<AxisKernel>,
}

impl Resampler {
    pub(crate) fn new(in_h: usize, in_w: usize, out: usize) -> Self {
        let same = in_h == out && in_w == out;
        Resampler {
            in_h,
            in_w,
            out,
            rows: (!same).then(|| AxisKernel::new(in_h, out)),
            cols: (!same).then(|| AxisKernel::new(in_w, out)),
        }
    }

    /// Writes one image into `dst` (length `3 × S × S`).
    pub(crate) fn to_chw(&self, src: &[u8], channels: usize, dst: &mut [u8]) {
        let (h, w, s) = (self.in_h, self.in_w, self.out);
        debug_assert_eq!(src.len(), h * w * channels);
        debug_assert_eq!(dst.len(), CHANNELS * s * s);
        let plane = s * s;
        for c in 0..CHANNELS {
            // Gray images are replicated; RGBA drops alpha.
            let sc = if channels == 1 { 0 } else { c };
            let out = &mut dst[c * plane..(c + 1) * plane];
            match (&self.rows, &self.cols) {
                (Some(rows), Some(cols)) => {
                    // Horizontal pass into f32, then vertical pass with rounding.
                    let mut tmp = vec![0.0f32; h * s];
                    for y in 0..h {
                        let line = &src[y * w * channels..(y + 1) * w * channels];
                        for (ox, (start, ws)) in cols.starts.iter().zip(&cols.weights).enumerate() {
                            let mut acc = 0.0f32;
                            for (k, wt) in ws.iter().enumerate() {
                                acc += wt * f32::from(line[(start + k) * channels + sc]);
                            }
                            tmp[y * s + ox] = acc;
                        }
                    }
                    for (oy, (start, ws)) in rows.starts.iter().zip(&rows.weights).enumerate() {
                        for ox in 0..s {
                            let mut acc = 0.0f32;
                            for (k, wt) in ws.iter().enumerate() {
                                acc += wt * tmp[(start + k) * s + ox];
                            }
                            out[oy * s + ox] = (acc + 0.5).clamp(0.0, 255.0) as u8;
                        }
                    }
                }
                _ => {
                    for (i, px) in out.iter_mut().enumerate() {
                        *px = src[i * channels + sc];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::registry::Registry;

    #[test]
    fn selection_is_deterministic_and_capped() {
        assert_eq!(select_indices(5, None, 1), [0, 1, 2, 3, 4]);
        assert_eq!(select_indices(5, Some(9), 1), [0, 1, 2, 3, 4]);
        let a = select_indices(1000, Some(10), 7);
        let b = select_indices(1000, Some(10), 7);
        let c = select_indices(1000, Some(10), 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(derive_seed(1, &["a"]), derive_seed(1, &["b"]));
        assert_ne!(derive_seed(1, &["ab", "c"]), derive_seed(1, &["a", "bc"]));
    }

    #[test]
    fn splitmix_matches_reference_values() {
        // Reference outputs of splitmix64 seeded with 0 (Vigna's C implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn resampler_identity_gray_and_rgba() {
        let src: Vec<u8> = (0..4u8).collect(); // 2×2 gray
        let mut dst = vec![0u8; 3 * 4];
        Resampler::new(2, 2, 2).to_chw(&src, 1, &mut dst);
        assert_eq!(dst, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);

        // RGBA drops alpha; 1×2 → 1×1 averages the two pixels (resampling path).
        let rgba = [10u8, 20, 30, 255, 11, 21, 31, 0];
        let mut one = [0u8; 3];
        Resampler::new(1, 2, 1).to_chw(&rgba, 4, &mut one);
        assert_eq!(one, [11, 21, 31]);
        Resampler::new(1, 1, 1).to_chw(&rgba[..4], 4, &mut one);
        assert_eq!(one, [10, 20, 30]);
    }

    #[test]
    fn resampler_shrinks_by_averaging_and_keeps_constants() {
        // 4×4 checkerboard of 0/200 shrunk to 2×2: every output is a blend near 100, where
        // point sampling would give 0 or 200.
        let src: Vec<u8> = (0..16)
            .map(|i| if (i / 4 + i % 4) % 2 == 0 { 0 } else { 200 })
            .collect();
        let mut dst = vec![0u8; 3 * 4];
        Resampler::new(4, 4, 2).to_chw(&src, 1, &mut dst);
        assert!(dst.iter().all(|&v| (80..=120).contains(&v)), "{dst:?}");

        let flat = vec![77u8; 28 * 28 * 3];
        let mut big = vec![0u8; 3 * 64 * 64];
        Resampler::new(28, 28, 64).to_chw(&flat, 3, &mut big);
        assert!(big.iter().all(|&v| v == 77));
    }

    #[test]
    fn missing_data_error_explains_what_to_do() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml");
        let reg = Registry::load(&path).unwrap();
        let ds = reg.dataset("medmnist").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = RealLoadOptions {
            data_dir: dir.path().to_path_buf(),
            image_size: 28,
            caps: Caps::default(),
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
        use crate::data::npz::{write_npz, NpyArray, NpyData};
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
            caps: Caps {
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

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0x00, 0xAB, 0x0F]), "00ab0f");
    }
}
