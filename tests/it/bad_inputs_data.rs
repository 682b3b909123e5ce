//! The data-file part of the bad-input catalogue (`bad_inputs`): images in an image folder
//! and MedMNIST-layout `.npz` files that are damaged, made up or of the wrong layout, each
//! read by `harness run` on a one-task registry. Every one must be bad input naming the file.

use std::io::Cursor;

use kdbench::data::numpy::{write_npz, NpyArray, NpyData};

use crate::bad_inputs::Case;
use crate::real_data::{medmnist_arrays, ARGS as RUN, PROFILE};

/// A registry of one task, `format` at `path` under `data/`.
fn registry(labels: usize, format: &str, path: &str) -> Vec<u8> {
    format!(
        "[[dataset]]\nkey = \"tiny\"\nname = \"Tiny\"\nrole = \"pretrain\"\nsource = \"written by the test\"\n\n\
         [[dataset.task]]\nid = 1\nkey = \"t\"\nname = \"T\"\nmodality = \"CT\"\nregion = \"Chest\"\n\
         labels = {labels}\nimages = 20\nformat = \"{format}\"\npath = \"{path}\"\n"
    )
    .into_bytes()
}

fn experiment() -> Vec<u8> {
    format!(
        "name = \"data\"\nseeds = [0]\nstages = [\"decompose\"]\n\n[grid]\nmethod = [\"stl\"]\npretrain = [\"tiny\"]\n{PROFILE}"
    )
    .into_bytes()
}

fn encoded(format: image::ImageFormat, value: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(20, 16, |x, y| {
        image::Rgb([value, (x * 12) as u8, (y * 15) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Two classes of ten images each, the first of class `a` replaced by `bad`, named
/// `bad_name`.
fn folder_case(
    name: &'static str,
    (bad_name, bad): (&'static str, Vec<u8>),
    at: &'static str,
) -> Case {
    let mut files = vec![
        ("reg.toml", registry(2, "image_folder", "photos")),
        ("exp.toml", experiment()),
    ];
    for (class, value) in [("a", 40u8), ("b", 200)] {
        for i in 0..10 {
            let path: &'static str = Box::leak(format!("data/photos/{class}/{i:02}.png").into());
            files.push((path, encoded(image::ImageFormat::Png, value)));
        }
    }
    files[2] = (bad_name, bad);
    Case {
        name,
        files,
        args: RUN.to_vec(),
        env: vec![],
        at,
    }
}

/// Rewrites a baseline JPEG's frame header to claim 4 353 rows of 14 573 pixels, as a
/// 350-byte file found by fuzzing did: far more blocks than its scans have bits.
pub(crate) fn claim_14573_by_4353(jpeg: &mut [u8]) {
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x11, 0x01, 0x38, 0xED]);
}

fn npz_case(name: &'static str, bytes: Vec<u8>, at: &'static str) -> Case {
    Case {
        name,
        files: vec![
            ("reg.toml", registry(3, "npz", "t.npz")),
            ("exp.toml", experiment()),
            ("data/t.npz", bytes),
        ],
        args: RUN.to_vec(),
        env: vec![],
        at,
    }
}

fn npz(arrays: &[(&'static str, NpyArray)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npz");
    write_npz(&path, arrays).unwrap();
    std::fs::read(path).unwrap()
}

pub fn data_cases() -> Vec<Case> {
    let jpeg = encoded(image::ImageFormat::Jpeg, 40);
    let scan = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let mut claims_more = jpeg.clone();
    claim_14573_by_4353(&mut claims_more);
    let mut flipped_png = encoded(image::ImageFormat::Png, 40);
    let mid = flipped_png.len() / 2;
    flipped_png[mid] ^= 0x10;
    let arrays = medmnist_arrays(32, 3, false, None);
    let without_train: Vec<_> = arrays
        .iter()
        .filter(|(k, _)| !k.starts_with("train_images"))
        .cloned()
        .collect();
    let mut flat = arrays.clone();
    flat[0].1 = NpyArray::new(vec![32, 784], NpyData::U8(vec![0; 32 * 784])).unwrap();
    let whole = npz(&arrays);
    vec![
        folder_case(
            "truncated JPEG in an image folder",
            (
                "data/photos/a/00.jpg",
                jpeg[..(scan + jpeg.len()) / 2].to_vec(),
            ),
            "a/00.jpg: cannot decode image: the JPEG data end after",
        ),
        folder_case(
            "JPEG whose header claims 14 573 × 4 353 px",
            ("data/photos/a/00.jpg", claims_more),
            "a/00.jpg: cannot decode image: the JPEG claims 14573 x 4353 pixels",
        ),
        folder_case(
            "PNG with a flipped bit",
            ("data/photos/a/00.png", flipped_png),
            "a/00.png: cannot decode image",
        ),
        folder_case(
            "text file in an image folder",
            ("data/photos/a/00.png", b"just some notes".to_vec()),
            "a/00.png: cannot decode image",
        ),
        npz_case(
            "npz that is not a zip",
            b"PK but not really".to_vec(),
            "t.npz",
        ),
        npz_case("truncated npz", whole[..whole.len() / 2].to_vec(), "t.npz"),
        npz_case("npz without train_images", npz(&without_train), "t.npz"),
        npz_case("npz images of rank 2", npz(&flat), "t.npz"),
        npz_case(
            "npz label out of range",
            npz(&medmnist_arrays(32, 3, false, Some(7))),
            "t.npz",
        ),
    ]
}
