//! Inputs of `harness predict`: image files (PNG, JPEG; any size, resampled to the
//! expert's input size as the data loaders do) and `.npz` archives of uint8 image arrays
//! (`(N, H, W)` or `(N, H, W, C)`, MedMNIST's layout).

use std::path::Path;

use crate::data::image_folder::decode;
use crate::data::numpy::{NpyData, NpzFile};
use crate::data::resample::Resampler;
use crate::data::CHANNELS;
use crate::error::{Error, Result};

/// One input image: a name for the output and its `3 × size × size` pixels.
pub struct Input {
    pub name: String,
    pub pixels: Vec<u8>,
}

/// Read every input; `key` picks the array of `.npz` files (default: the only array whose
/// name ends in `images`, or the only array).
pub fn read_inputs(
    paths: &[impl AsRef<Path>],
    key: Option<&str>,
    size: usize,
) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.extension().and_then(|e| e.to_str()) == Some("npz") {
            out.extend(read_npz(p, key, size)?);
        } else {
            out.push(Input {
                name: p.display().to_string(),
                pixels: decode(p, size)?,
            });
        }
    }
    if out.is_empty() {
        return Err(Error::input("no input images given"));
    }
    Ok(out)
}

fn read_npz(path: &Path, key: Option<&str>, size: usize) -> Result<Vec<Input>> {
    let mut npz = NpzFile::open(path)?;
    let names = npz.names();
    let name = match key {
        Some(k) if names.iter().any(|n| n == k) => k.to_string(),
        Some(k) => {
            return Err(Error::input(format!(
                "{}: no array `{k}` (arrays: {})",
                path.display(),
                names.join(", ")
            )))
        }
        None => {
            let images: Vec<&String> = names.iter().filter(|n| n.ends_with("images")).collect();
            match (images.as_slice(), names.as_slice()) {
                ([one], _) => one.to_string(),
                (_, [only]) => only.clone(),
                _ => {
                    return Err(Error::input(format!(
                        "{}: several arrays ({}); pick one with --key",
                        path.display(),
                        names.join(", ")
                    )))
                }
            }
        }
    };
    let arr = npz.read(&name)?;
    let (n, h, w, c) = match arr.shape.as_slice() {
        &[n, h, w] => (n, h, w, 1),
        &[n, h, w, c] if matches!(c, 1 | 3 | 4) => (n, h, w, c),
        other => {
            return Err(Error::input(format!(
                "{}: `{name}` has shape {other:?}; expected (N, H, W) or (N, H, W, C) with C in 1, 3, 4",
                path.display()
            )))
        }
    };
    let NpyData::U8(data) = arr.data else {
        return Err(Error::input(format!(
            "{}: `{name}` must be uint8 images",
            path.display()
        )));
    };
    let resampler = Resampler::new(h, w, size);
    let per_in = h * w * c;
    Ok((0..n)
        .map(|i| {
            let mut pixels = vec![0u8; CHANNELS * size * size];
            resampler.to_chw(&data[i * per_in..(i + 1) * per_in], c, &mut pixels);
            Input {
                name: format!("{}:{name}[{i}]", path.display()),
                pixels,
            }
        })
        .collect())
}
