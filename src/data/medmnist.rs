//! The MedMNIST `.npz` loader: `{train,val,test}_{images,labels}` arrays, images read row
//! by row with only the selected rows kept (a capped load of a large MedMNIST+ file never
//! holds the whole array in memory), labels checked against the registry and multi-label
//! ones binarised as it says.

use std::path::Path;

use super::numpy::{shape_str, Dtype, NpzFile};
use super::registry::{Binarise, TaskEntry};
use super::resample::Resampler;
use super::sampling::{select_indices, SPLITS};
use super::settings::SplitCaps;
use super::{Split, TaskData, CHANNELS};
use crate::error::{Error, Result};
use crate::util::seed::derive_seed;

/// Loads one MedMNIST-layout `.npz` as a task: `{train,val,test}_{images,labels}`, images
/// `uint8 (N,H,W)` or `(N,H,W,C)`, labels `(N,)`/`(N,1)` class indices or `(N,K)` multi-label
/// (binarised as the registry's `multilabel` says). Labels are checked against the
/// registry's label count; images are resampled to `image_size`.
pub fn load_medmnist(
    task: &TaskEntry,
    path: &Path,
    image_size: usize,
    caps: &SplitCaps,
    seed: u64,
) -> Result<TaskData> {
    let mut npz = NpzFile::open(path)?;
    let names = npz.names();
    let required: Vec<String> = SPLITS
        .iter()
        .flat_map(|s| [format!("{s}_images"), format!("{s}_labels")])
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !names.contains(r))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "{}: missing array(s) {} (found: {}); a MedMNIST .npz holds train_images, \
             train_labels, val_images, val_labels, test_images and test_labels",
            path.display(),
            missing.join(", "),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    let mut splits = Vec::with_capacity(3);
    for split in SPLITS {
        let seed = derive_seed(seed, &[split]);
        splits.push(load_split(
            &mut npz,
            task,
            split,
            image_size,
            caps.for_split(split),
            seed,
        )?);
    }
    let test = splits.pop().expect("three splits");
    let val = splits.pop().expect("three splits");
    let train = splits.pop().expect("three splits");
    Ok(TaskData {
        key: task.key.clone(),
        name: task.name.clone(),
        num_classes: task.labels,
        train,
        val,
        test,
    })
}

/// Class labels of one split, validated against the registry.
fn split_labels(npz: &mut NpzFile, task: &TaskEntry, split: &str) -> Result<Vec<u32>> {
    let name = format!("{split}_labels");
    let arr = npz.read(&name)?;
    let path = npz.path().display().to_string();
    let n = arr.shape.first().copied().unwrap_or(0);
    let width = match arr.shape.as_slice() {
        [_] => 1,
        [_, k] => *k,
        other => {
            return Err(Error::input(format!(
                "{path}: `{name}` has shape {}; expected (N,), (N, 1) or (N, K)",
                shape_str(other)
            )))
        }
    };
    let values = arr
        .data
        .to_i64()
        .map_err(|e| Error::input(format!("{path}: `{name}`: {e}")))?;
    match (width, task.multilabel) {
        (1, None) => {
            let hi = task.labels as i64 - 1;
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if (0..=hi).contains(&v) {
                        Ok(v as u32)
                    } else {
                        Err(Error::input(format!(
                            "{path}: split `{split}`, sample {i}: label {v} is outside the \
                             allowed range 0..={hi} (task `{}` declares labels = {} in the \
                             registry)",
                            task.key, task.labels
                        )))
                    }
                })
                .collect()
        }
        (1, Some(_)) => Err(Error::input(format!(
            "{path}: `{name}` holds one label per sample (shape {}), but task `{}` declares \
             `multilabel`; remove `multilabel` from the task in datasets.toml",
            shape_str(&arr.shape),
            task.key
        ))),
        (k, None) => Err(Error::input(format!(
            "{path}: `{name}` is multi-label (shape {}, {k} labels per sample) but task `{}` \
             declares no binarisation; add `multilabel = \"any\"` to the task in datasets.toml",
            shape_str(&arr.shape),
            task.key
        ))),
        (k, Some(Binarise::Any)) => (0..n)
            .map(|i| {
                let row = &values[i * k..(i + 1) * k];
                if let Some(bad) = row.iter().find(|&&v| v != 0 && v != 1) {
                    return Err(Error::input(format!(
                        "{path}: split `{split}`, sample {i}: multi-label value {bad} is not \
                         0 or 1"
                    )));
                }
                Ok(u32::from(row.contains(&1)))
            })
            .collect(),
    }
}

fn load_split(
    npz: &mut NpzFile,
    task: &TaskEntry,
    split: &str,
    image_size: usize,
    cap: Option<usize>,
    seed: u64,
) -> Result<Split> {
    let all_labels = split_labels(npz, task, split)?;
    let name = format!("{split}_images");
    let header = npz.header(&name)?;
    let path = npz.path().display().to_string();
    if header.dtype != Dtype::U8 {
        return Err(Error::input(format!(
            "{path}: `{name}` has dtype {}; images must be uint8",
            header.dtype.descr()
        )));
    }
    let (n, h, w, c) = match header.shape.as_slice() {
        &[n, h, w] => (n, h, w, 1),
        &[n, h, w, c] if matches!(c, 1 | 3 | 4) => (n, h, w, c),
        other => {
            return Err(Error::input(format!(
                "{path}: `{name}` has shape {}; expected (N, H, W) or (N, H, W, C) with C in \
                 1, 3, 4",
                shape_str(other)
            )))
        }
    };
    if n != all_labels.len() {
        return Err(Error::input(format!(
            "{path}: split `{split}` has {n} images but {} labels",
            all_labels.len()
        )));
    }
    if n > 0 && (h == 0 || w == 0) {
        return Err(Error::input(format!(
            "{path}: `{name}` has empty images (shape {})",
            shape_str(&header.shape)
        )));
    }
    let rows = select_indices(n, cap, seed);
    let resampler = Resampler::new(h, w, image_size);
    let per = CHANNELS * image_size * image_size;
    let mut images = vec![0u8; rows.len() * per];
    npz.for_each_row(&name, &rows, |pos, bytes| {
        resampler.to_chw(bytes, c, &mut images[pos * per..(pos + 1) * per]);
    })?;
    let labels = rows.iter().map(|&i| all_labels[i]).collect();
    Ok(Split { images, labels })
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;
    use crate::data::numpy::{read_npz, write_npy, write_npz, NpyArray, NpyData};
    use crate::data::registry::Format;

    fn task(labels: usize, multilabel: Option<Binarise>) -> TaskEntry {
        TaskEntry {
            id: 1,
            key: "t".into(),
            name: "T".into(),
            modality: "CT".into(),
            region: "Chest".into(),
            labels,
            images: 0,
            paper_labels: None,
            paper_images: None,
            format: Format::Npz,
            path: "t.npz".into(),
            sha256: None,
            multilabel,
            note: None,
        }
    }

    /// An official-layout file: split sizes 6/2/3, images (N,28,28[,3]) with pixel value
    /// = sample index within the split, labels `label(i)`.
    fn medmnist_arrays(
        rgb: bool,
        label_width: usize,
        label: impl Fn(usize, usize) -> i64,
    ) -> Vec<(&'static str, NpyArray)> {
        let mut out = Vec::new();
        for (split, n) in [("train", 6usize), ("val", 2), ("test", 3)] {
            let mut shape = vec![n, 28, 28];
            if rgb {
                shape.push(3);
            }
            let per: usize = shape[1..].iter().product();
            let pixels: Vec<u8> = (0..n).flat_map(|i| vec![i as u8 * 10; per]).collect();
            let labels: Vec<i64> = (0..n)
                .flat_map(|i| (0..label_width).map(move |j| (i, j)))
                .map(|(i, j)| label(i, j))
                .collect();
            let images_name: &'static str = match split {
                "train" => "train_images",
                "val" => "val_images",
                _ => "test_images",
            };
            let labels_name: &'static str = match split {
                "train" => "train_labels",
                "val" => "val_labels",
                _ => "test_labels",
            };
            out.push((
                images_name,
                NpyArray::new(shape, NpyData::U8(pixels)).unwrap(),
            ));
            out.push((
                labels_name,
                NpyArray::new(vec![n, label_width], NpyData::I64(labels)).unwrap(),
            ));
        }
        out
    }

    fn msg(r: Result<TaskData>) -> String {
        match r {
            Err(Error::BadInput(m)) => m,
            Err(e) => panic!("expected bad input, got {e:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn npz_round_trip_gray_and_rgb() {
        let dir = tempfile::tempdir().unwrap();
        for rgb in [false, true] {
            let path = dir.path().join(format!("m{rgb}.npz"));
            let arrays = medmnist_arrays(rgb, 1, |i, _| (i % 3) as i64);
            write_npz(&path, &arrays).unwrap();
            let back = read_npz(&path).unwrap();
            assert_eq!(back.len(), 6);
            for (name, arr) in &arrays {
                assert_eq!(&back[*name], arr, "{name}");
            }

            let t = load_medmnist(&task(3, None), &path, 28, &SplitCaps::default(), 1).unwrap();
            assert_eq!(t.num_classes, 3);
            assert_eq!(t.train.len(), 6);
            assert_eq!(t.val.len(), 2);
            assert_eq!(t.test.len(), 3);
            assert_eq!(t.train.labels, [0, 1, 2, 0, 1, 2]);
            let per = 3 * 28 * 28;
            assert_eq!(t.train.images.len(), 6 * per);
            // Sample 4 has every pixel of every channel = 40.
            assert!(t.train.images[4 * per..5 * per].iter().all(|&v| v == 40));

            // Resampled to 32 px, capped and seeded.
            let caps = SplitCaps {
                train: Some(4),
                val: None,
                test: Some(1),
            };
            let a = load_medmnist(&task(3, None), &path, 32, &caps, 9).unwrap();
            let b = load_medmnist(&task(3, None), &path, 32, &caps, 9).unwrap();
            assert_eq!(a.train.len(), 4);
            assert_eq!(a.val.len(), 2);
            assert_eq!(a.test.len(), 1);
            assert_eq!(a.train.images.len(), 4 * 3 * 32 * 32);
            assert_eq!(a.train.labels, b.train.labels);
            assert_eq!(a.train.images, b.train.images);
            // Labels still match their images after selection.
            for (k, &lab) in a.train.labels.iter().enumerate() {
                let px = a.train.images[k * 3 * 32 * 32];
                assert_eq!(i64::from(lab), (i64::from(px) / 10) % 3);
            }
        }
    }

    #[test]
    fn multilabel_is_binarised_when_declared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chestmnist.npz");
        // Sample i has finding (i % 14) set when i is odd, none when even.
        let arrays = medmnist_arrays(false, 14, |i, j| i64::from(i % 2 == 1 && j == i % 14));
        write_npz(&path, &arrays).unwrap();

        let t = load_medmnist(
            &task(2, Some(Binarise::Any)),
            &path,
            28,
            &SplitCaps::default(),
            0,
        )
        .unwrap();
        assert_eq!(t.train.labels, [0, 1, 0, 1, 0, 1]);
        assert_eq!(t.test.labels, [0, 1, 0]);

        let m = msg(load_medmnist(
            &task(2, None),
            &path,
            28,
            &SplitCaps::default(),
            0,
        ));
        assert!(m.contains("multilabel = \"any\""), "{m}");
        assert!(m.contains("chestmnist.npz"), "{m}");
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pathmnist.npz");
        let arrays = medmnist_arrays(false, 1, |i, _| if i == 5 { 9 } else { 0 });
        write_npz(&path, &arrays).unwrap();
        let m = msg(load_medmnist(
            &task(9, None),
            &path,
            28,
            &SplitCaps::default(),
            0,
        ));
        assert!(m.contains("pathmnist.npz"), "{m}");
        assert!(m.contains("split `train`"), "{m}");
        assert!(m.contains("label 9"), "{m}");
        assert!(m.contains("0..=8"), "{m}");
    }

    #[test]
    fn missing_key_and_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npz");
        let arrays: Vec<_> = medmnist_arrays(false, 1, |_, _| 0)
            .into_iter()
            .filter(|(n, _)| *n != "val_labels")
            .collect();
        write_npz(&path, &arrays).unwrap();
        let m = msg(load_medmnist(
            &task(2, None),
            &path,
            28,
            &SplitCaps::default(),
            0,
        ));
        assert!(m.contains("missing array(s) val_labels"), "{m}");
        assert!(m.contains("x.npz"), "{m}");

        let mut arrays = medmnist_arrays(false, 1, |_, _| 0);
        arrays[5].1 = NpyArray::new(vec![2, 1], NpyData::I64(vec![0, 0])).unwrap();
        write_npz(&path, &arrays).unwrap();
        let m = msg(load_medmnist(
            &task(2, None),
            &path,
            28,
            &SplitCaps::default(),
            0,
        ));
        assert!(m.contains("split `test` has 3 images but 2 labels"), "{m}");
    }

    #[test]
    fn corrupt_npz_is_bad_input_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.npz");
        let mut r = crate::util::rng::SplitMix64::new(3);
        let junk: Vec<u8> = (0..4096).map(|_| r.next_u64() as u8).collect();
        std::fs::write(&path, junk).unwrap();
        let err = load_medmnist(&task(2, None), &path, 28, &SplitCaps::default(), 0).unwrap_err();
        assert!(matches!(err, Error::BadInput(_)), "{err:?}");
        assert!(err.to_string().contains("broken.npz"), "{err}");
    }

    #[test]
    fn deflated_npz_is_read() {
        // np.savez_compressed layout: deflated members.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deflated.npz");
        let arrays = medmnist_arrays(true, 1, |i, _| (i % 2) as i64);
        {
            let file = File::create(&path).unwrap();
            let mut zip = ZipWriter::new(file);
            let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
            for (name, arr) in &arrays {
                zip.start_file(format!("{name}.npy"), opts).unwrap();
                write_npy(&mut zip, arr).unwrap();
            }
            zip.finish().unwrap();
        }
        let caps = SplitCaps {
            train: Some(3),
            val: None,
            test: None,
        };
        let t = load_medmnist(&task(2, None), &path, 28, &caps, 5).unwrap();
        assert_eq!(t.train.len(), 3);
        assert_eq!(t.test.labels, [0, 1, 0]);
    }
}
