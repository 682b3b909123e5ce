//! Image-folder data sets: one sub-folder per class, PNG or JPEG files inside.
//!
//! ```text
//! <dir>/<class>/**/*.png            one pool, split 70/10/20 per class with a seeded shuffle
//! <dir>/{train,val,test}/<class>/…  explicit splits (val/ optional: then 1/8 of train,
//!                                   i.e. 10 % of the whole, is held out, seeded)
//! ```
//! The class index is the position of the class folder name in sorted (byte) order, over
//! the union of all splits; the number of classes must equal the registry's `labels`, so a
//! missing or extra folder is caught before training. Hidden entries (`.name`) and files
//! that are not `.png`/`.jpg`/`.jpeg` are ignored. Splits are stratified, so every class is
//! represented in the same proportions in each split.
//!
//! Files are listed and selected (caps) before anything is decoded; decoding and resampling
//! run in parallel over files.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::registry::TaskEntry;
use super::resample::Resampler;
use super::sampling::{select_indices, SPLITS};
use super::settings::SplitCaps;
use super::{Split, TaskData, CHANNELS};
use crate::error::{Error, Result};
use crate::util::rng::SplitMix64;
use crate::util::seed::derive_seed;

/// Fractions of the single-pool split.
const TRAIN_FRACTION: f64 = 0.7;
const VAL_FRACTION: f64 = 0.1;

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Sorted, non-hidden sub-directories of `dir`.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if !is_hidden(&path) && path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every non-hidden file below `dir`, recursively, in sorted path order.
pub fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            if is_hidden(&path) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files of one task, with class indices, per split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderIndex {
    /// Class folder names; the index is the label.
    pub classes: Vec<String>,
    /// `(file, label)` for train, val and test.
    pub splits: [Vec<(PathBuf, u32)>; 3],
}

/// Lists an image folder and assigns every file to a split (see the module docs).
pub fn index_folder(task: &TaskEntry, dir: &Path, seed: u64) -> Result<FolderIndex> {
    let top = subdirs(dir)?;
    let names: Vec<String> = top.iter().map(|p| name_of(p)).collect();
    let split_layout =
        names.iter().any(|n| n == "train") && names.iter().all(|n| SPLITS.contains(&n.as_str()));
    let index = if split_layout {
        index_split_layout(dir, &names, seed)?
    } else {
        index_pool(&top, seed)?
    };
    if index.classes.len() != task.labels {
        return Err(Error::input(format!(
            "{}: found {} class folder(s) ({}) but task `{}` declares labels = {} in the \
             registry; an image folder needs one sub-folder per class",
            dir.display(),
            index.classes.len(),
            index.classes.join(", "),
            task.key,
            task.labels
        )));
    }
    if index.splits.iter().all(|s| s.is_empty()) {
        return Err(Error::input(format!(
            "{}: no .png/.jpg/.jpeg images found in the class folders",
            dir.display()
        )));
    }
    Ok(index)
}

/// Files of each class folder, as sorted lists.
fn class_files(class_dirs: &[PathBuf]) -> Result<Vec<Vec<PathBuf>>> {
    class_dirs
        .iter()
        .map(|d| Ok(walk_files(d)?.into_iter().filter(|p| is_image(p)).collect()))
        .collect()
}

fn index_pool(class_dirs: &[PathBuf], seed: u64) -> Result<FolderIndex> {
    let classes: Vec<String> = class_dirs.iter().map(|p| name_of(p)).collect();
    let files = class_files(class_dirs)?;
    let mut splits: [Vec<(PathBuf, u32)>; 3] = Default::default();
    for (label, (class, mut list)) in classes.iter().zip(files).enumerate() {
        let n = list.len();
        // `seed` is already specific to this task (see `load`), so the data root's location
        // does not influence the split.
        SplitMix64::new(derive_seed(seed, &[class])).shuffle(&mut list);
        let n_train = (n as f64 * TRAIN_FRACTION).round() as usize;
        let n_val = ((n as f64 * VAL_FRACTION).round() as usize).min(n - n_train);
        // Keep each split in file order after the random assignment.
        let mut parts = [
            list[..n_train].to_vec(),
            list[n_train..n_train + n_val].to_vec(),
            list[n_train + n_val..].to_vec(),
        ];
        for (split, part) in splits.iter_mut().zip(parts.iter_mut()) {
            part.sort();
            split.extend(part.drain(..).map(|p| (p, label as u32)));
        }
    }
    Ok(FolderIndex { classes, splits })
}

fn index_split_layout(dir: &Path, names: &[String], seed: u64) -> Result<FolderIndex> {
    if !names.iter().any(|n| n == "test") {
        return Err(Error::input(format!(
            "{}: has a train/ folder but no test/ folder; use train/ val/ test/ (val/ is \
             optional) or put the class folders directly in {}",
            dir.display(),
            dir.display()
        )));
    }
    // Classes: the union over splits, sorted.
    let mut classes: Vec<String> = Vec::new();
    for split in SPLITS {
        let d = dir.join(split);
        if d.is_dir() {
            classes.extend(subdirs(&d)?.iter().map(|p| name_of(p)));
        }
    }
    classes.sort();
    classes.dedup();
    let mut splits: [Vec<(PathBuf, u32)>; 3] = Default::default();
    for (slot, split) in SPLITS.iter().enumerate() {
        let d = dir.join(split);
        if !d.is_dir() {
            continue;
        }
        for class_dir in subdirs(&d)? {
            let label = classes
                .binary_search(&name_of(&class_dir))
                .expect("class collected above") as u32;
            for file in walk_files(&class_dir)?.into_iter().filter(|p| is_image(p)) {
                splits[slot].push((file, label));
            }
        }
    }
    if !dir.join("val").is_dir() {
        // Hold out 1/8 of each class of train as validation.
        let train = std::mem::take(&mut splits[0]);
        for label in 0..classes.len() as u32 {
            let mut list: Vec<PathBuf> = train
                .iter()
                .filter(|(_, l)| *l == label)
                .map(|(p, _)| p.clone())
                .collect();
            let n = list.len();
            SplitMix64::new(derive_seed(seed, &[&classes[label as usize], "val"]))
                .shuffle(&mut list);
            let n_val = (n as f64 / 8.0).round() as usize;
            let mut val: Vec<PathBuf> = list[..n_val].to_vec();
            let mut rest: Vec<PathBuf> = list[n_val..].to_vec();
            val.sort();
            rest.sort();
            splits[1].extend(val.into_iter().map(|p| (p, label)));
            splits[0].extend(rest.into_iter().map(|p| (p, label)));
        }
    }
    Ok(FolderIndex { classes, splits })
}

/// Decodes one image file to `3 × size × size`.
pub(crate) fn decode(path: &Path, size: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(&bytes, size, path)
}

/// Largest image side accepted, in pixels (well above any medical image set's; anything
/// larger is tiled before training at these input sizes anyway).
pub const MAX_SIDE: u32 = 16_384;

/// Decodes an image held in memory (PNG or JPEG, told by its content) to `3 × size × size`,
/// grey expanded to RGB and any size resampled; `origin` names it in errors. Public so the
/// fuzz target can reach the decoder without a file system round trip.
pub fn decode_bytes(bytes: &[u8], size: usize, origin: &Path) -> Result<Vec<u8>> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::input(format!("{}: cannot decode image: {e}", origin.display()))
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(origin, e))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        super::jpeg_end::check_complete(bytes).map_err(|e| bad(&e))?;
    }
    // A header may claim any size: a 1 KB JPEG of 65 511 × 240 pixels (found by fuzzing)
    // took a second to decode, and ten on a loaded machine. Sides beyond MAX_SIDE are
    // refused before decoding; the decoder's allocation limit bounds the rest.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    // The JPEG decoder overflowed an integer on a malformed file (found by fuzzing, a panic
    // where overflow checks are on): a decoder panic is a bad file, not a crash.
    let img = crate::util::no_panic::catch(|| reader.decode())
        .map_err(|e| bad(&e))?
        .map_err(|e| bad(&e))?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err(bad(&"empty image"));
    }
    let mut out = vec![0u8; CHANNELS * size * size];
    Resampler::new(h, w, size).to_chw(rgb.as_raw(), 3, &mut out);
    Ok(out)
}

/// Loads an image-folder task: index, cap each split, decode in parallel.
pub fn load_image_folder(
    task: &TaskEntry,
    dir: &Path,
    image_size: usize,
    caps: &SplitCaps,
    seed: u64,
) -> Result<TaskData> {
    let index = index_folder(task, dir, seed)?;
    let mut out: Vec<Split> = Vec::with_capacity(3);
    for (files, split) in index.splits.iter().zip(SPLITS) {
        let keep = select_indices(
            files.len(),
            caps.for_split(split),
            derive_seed(seed, &[split, "cap"]),
        );
        let decoded = keep
            .par_iter()
            .map(|&i| decode(&files[i].0, image_size))
            .collect::<Result<Vec<Vec<u8>>>>()?;
        out.push(Split {
            images: decoded.concat(),
            labels: keep.iter().map(|&i| files[i].1).collect(),
        });
    }
    let test = out.pop().expect("three splits");
    let val = out.pop().expect("three splits");
    let train = out.pop().expect("three splits");
    Ok(TaskData {
        key: task.key.clone(),
        name: task.name.clone(),
        num_classes: task.labels,
        train,
        val,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::registry::Format;

    fn task(labels: usize) -> TaskEntry {
        TaskEntry {
            id: 1,
            key: "folder".into(),
            name: "Folder".into(),
            modality: "CT".into(),
            region: "Chest".into(),
            labels,
            images: 0,
            paper_labels: None,
            paper_images: None,
            format: Format::ImageFolder,
            path: "f".into(),
            sha256: None,
            multilabel: None,
            note: None,
        }
    }

    /// Writes a `w × h` image whose every pixel is `value` (gray PNG or RGB JPEG).
    fn write_image(path: &Path, w: u32, h: u32, value: u8, rgb: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if rgb {
            image::RgbImage::from_pixel(w, h, image::Rgb([value, value, value]))
                .save(path)
                .unwrap();
        } else {
            image::GrayImage::from_pixel(w, h, image::Luma([value]))
                .save(path)
                .unwrap();
        }
    }

    #[test]
    fn pool_layout_is_split_stratified_and_seeded() {
        let dir = tempfile::tempdir().unwrap();
        // Class `b` sorts after `a`; pixel value encodes the class so labels can be checked.
        for i in 0..10 {
            write_image(&dir.path().join(format!("a/{i}.png")), 20, 30, 50, false);
            write_image(
                &dir.path().join(format!("b/sub/{i}.PNG")),
                40,
                40,
                150,
                false,
            );
        }
        std::fs::write(dir.path().join("a/readme.txt"), b"ignored").unwrap();
        std::fs::create_dir_all(dir.path().join(".hidden")).unwrap();

        let t = load_image_folder(&task(2), dir.path(), 16, &SplitCaps::default(), 3).unwrap();
        assert_eq!((t.train.len(), t.val.len(), t.test.len()), (14, 2, 4));
        for split in [&t.train, &t.val, &t.test] {
            assert_eq!(split.images.len(), split.len() * 3 * 16 * 16);
            for (k, &label) in split.labels.iter().enumerate() {
                let img = &split.images[k * 768..(k + 1) * 768];
                let want = if label == 0 { 50 } else { 150 };
                assert!(img.iter().all(|&v| v == want), "label {label}");
            }
            // Stratified: both classes equally represented.
            let ones = split.labels.iter().filter(|&&l| l == 1).count();
            assert_eq!(ones * 2, split.len());
        }

        let a = index_folder(&task(2), dir.path(), 3).unwrap();
        let b = index_folder(&task(2), dir.path(), 3).unwrap();
        let c = index_folder(&task(2), dir.path(), 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.splits, c.splits);
        assert_eq!(a.classes, ["a", "b"]);

        let caps = SplitCaps {
            train: Some(3),
            val: Some(0),
            test: None,
        };
        let t = load_image_folder(&task(2), dir.path(), 8, &caps, 3).unwrap();
        assert_eq!((t.train.len(), t.val.len(), t.test.len()), (3, 0, 4));
    }

    #[test]
    fn split_layout_and_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        for (split, n) in [("train", 8), ("test", 2)] {
            for class in ["cat", "dog", "emu"] {
                for i in 0..n {
                    let p = dir.path().join(format!("{split}/{class}/{i}.jpg"));
                    write_image(&p, 12, 12, 200, true);
                }
            }
        }
        let idx = index_folder(&task(3), dir.path(), 0).unwrap();
        assert_eq!(idx.classes, ["cat", "dog", "emu"]);
        // No val/: 1/8 of train per class is held out.
        assert_eq!(
            (
                idx.splits[0].len(),
                idx.splits[1].len(),
                idx.splits[2].len()
            ),
            (21, 3, 6)
        );
        let t = load_image_folder(&task(3), dir.path(), 12, &SplitCaps::default(), 0).unwrap();
        // JPEG is lossy, but a flat image stays close to flat.
        assert!(t.test.images.iter().all(|&v| v.abs_diff(200) <= 3));
    }

    #[test]
    fn class_count_must_match_registry() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["x", "y", "z"] {
            write_image(&dir.path().join(format!("{class}/0.png")), 4, 4, 1, false);
        }
        let err = index_folder(&task(2), dir.path(), 0).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.exit_code(), 2);
        assert!(msg.contains("3 class folder(s) (x, y, z)"), "{msg}");
        assert!(msg.contains("labels = 2"), "{msg}");
    }

    #[test]
    fn undecodable_image_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_image(&dir.path().join("a/0.png"), 4, 4, 1, false);
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/broken.png"), b"not a png at all").unwrap();
        let err = load_image_folder(&task(2), dir.path(), 4, &SplitCaps::default(), 0).unwrap_err();
        assert!(err.to_string().contains("broken.png"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_side_above_the_limit_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let wide = dir.path().join("a/wide.png");
        write_image(&wide, MAX_SIDE + 1, 1, 3, false);
        let bytes = std::fs::read(&wide).unwrap();
        let err = decode_bytes(&bytes, 4, &wide).unwrap_err().to_string();
        assert!(err.contains("wide.png") && err.contains("limit"), "{err}");
        write_image(&wide, MAX_SIDE, 1, 3, false);
        let bytes = std::fs::read(&wide).unwrap();
        assert_eq!(decode_bytes(&bytes, 4, &wide).unwrap().len(), 3 * 4 * 4);
    }
}

#[cfg(test)]
mod fuzz_regressions {
    /// Inputs on which `cargo fuzz run image` found the decoder panicking, or slow on a
    /// truncated file it then used (fuzz/regressions/image/): each decodes or is bad input
    /// naming the file.
    #[test]
    fn malformed_images_do_not_panic() {
        for path in crate::util::fuzz_regressions::inputs("image", |_| true) {
            let bytes = std::fs::read(&path).unwrap();
            let size = 1 + bytes.len() % 48;
            let decoded = super::decode_bytes(&bytes, size, &path);
            let msg = decoded
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            // A header claiming a side above MAX_SIDE is refused before decoding (this
            // 1 KB file also lacks the data for its 65 511 × 240 pixels).
            if path.to_string_lossy().contains("huge-side") {
                assert!(
                    msg.contains("limit") || msg.contains("image data are missing"),
                    "{}: {msg}",
                    path.display()
                );
            }
            // A progressive JPEG whose scans are missing, claiming 63 Mpx: refused before
            // a 0.9 s, 380 MB decode into blank pixels.
            if path.to_string_lossy().contains("missing-scans") {
                assert!(
                    msg.contains("image data are missing"),
                    "{}: {msg}",
                    path.display()
                );
            }
            // 538 bytes claiming 493 x 14 337 pixels: decoded into grey until refused.
            if path.to_string_lossy().contains("truncated") {
                assert!(msg.contains("end-of-image"), "{}: {msg}", path.display());
            }
            match decoded {
                Ok(px) => assert_eq!(px.len(), 3 * size * size),
                Err(crate::error::Error::BadInput(msg)) => {
                    assert!(msg.contains("cannot decode image"), "{msg}")
                }
                Err(other) => panic!("{}: {other}", path.display()),
            }
        }
    }
}
