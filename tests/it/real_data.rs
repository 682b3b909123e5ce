//! Real-data path: MedMNIST-format `.npz` files written by the test in the official layout
//! load and train; corrupt files, out-of-range labels and checksum mismatches are bad input.

use kdbench::data::numpy::{write_npz, NpyArray, NpyData};
use kdbench::store::metrics::read_metrics;

use crate::common::{assert_bad_input, stderr, stdout, Workspace};

pub(crate) const PROFILE: &str = r#"
[profile.paper]
data = "real"
image_size = 28
epochs = 1
batch_size = 16

[profile.paper.model]
arch = "resnet"
widths = [4, 8]
depths = [1, 1]

[profile.paper.optim]
name = "sgd"
lr = 0.05
"#;

fn registry(sha256_line: &str) -> String {
    format!(
        r#"
[[dataset]]
key = "tinymed"
name = "TinyMed"
role = "pretrain"
source = "written by the integration test"

[[dataset.task]]
id = 1
key = "gray"
name = "Gray"
modality = "CT"
region = "Abdomen"
labels = 3
images = 48
format = "npz"
path = "tiny/gray.npz"
{sha256_line}

[[dataset.task]]
id = 2
key = "rgb"
name = "Rgb"
modality = "Dermatoscope"
region = "Skin"
labels = 2
images = 48
format = "npz"
path = "tiny/rgb.npz"
"#
    )
}

/// Images whose brightness depends on the label, in MedMNIST's layout.
pub(crate) fn medmnist_arrays(
    n: usize,
    classes: usize,
    rgb: bool,
    bad_label: Option<i64>,
) -> Vec<(&'static str, NpyArray)> {
    let mut out = Vec::new();
    for (split, count) in [("train", n), ("val", n / 4), ("test", n / 2)] {
        let labels: Vec<i64> = (0..count).map(|i| (i % classes) as i64).collect();
        let mut labels = labels;
        if let Some(bad) = bad_label {
            labels[0] = bad;
        }
        let per = if rgb { 28 * 28 * 3 } else { 28 * 28 };
        let mut pixels = Vec::with_capacity(count * per);
        for (i, &l) in labels.iter().enumerate() {
            for p in 0..per {
                pixels.push(((l.max(0) as usize * 80 + (p * 7 + i * 13) % 40) % 256) as u8);
            }
        }
        let shape = if rgb {
            vec![count, 28, 28, 3]
        } else {
            vec![count, 28, 28]
        };
        let images_key: &'static str = Box::leak(format!("{split}_images").into_boxed_str());
        let labels_key: &'static str = Box::leak(format!("{split}_labels").into_boxed_str());
        out.push((
            images_key,
            NpyArray::new(shape, NpyData::U8(pixels)).unwrap(),
        ));
        out.push((
            labels_key,
            NpyArray::new(vec![count, 1], NpyData::I64(labels)).unwrap(),
        ));
    }
    out
}

fn setup(ws: &Workspace, sha256_line: &str, bad_label: Option<i64>) {
    ws.write("reg.toml", &registry(sha256_line));
    std::fs::create_dir_all(ws.path().join("data/tiny")).unwrap();
    write_npz(
        &ws.path().join("data/tiny/gray.npz"),
        &medmnist_arrays(32, 3, false, bad_label),
    )
    .unwrap();
    write_npz(
        &ws.path().join("data/tiny/rgb.npz"),
        &medmnist_arrays(32, 2, true, None),
    )
    .unwrap();
    ws.write(
        "exp.toml",
        &format!("name = \"real\"\nseeds = [0]\nstages = [\"decompose\"]\n\n[grid]\nmethod = [\"stl\", \"mtl\"]\npretrain = [\"tinymed\"]\n{PROFILE}"),
    );
}

pub(crate) const ARGS: [&str; 6] = [
    "run",
    "exp.toml",
    "--registry",
    "reg.toml",
    "--data-dir",
    "data",
];

#[test]
fn medmnist_npz_in_official_layout_loads_and_trains() {
    let ws = Workspace::new();
    setup(&ws, "", None);
    let o = ws.run(&ARGS);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 trained"), "{}", stderr(&o));
    for f in ws.metrics_files() {
        let rows = read_metrics(&f).unwrap();
        assert!(rows.iter().all(|r| r.data_kind == "real"));
        assert!(rows
            .iter()
            .any(|r| r.split == "test" && r.metric == "accuracy"));
    }
    let rep = ws.run(&["report", "--registry", "reg.toml"]);
    assert!(rep.status.success(), "{}", stderr(&rep));
    let md = stdout(&rep);
    assert!(!md.contains("SYNTHETIC"), "{md}");
    assert!(md.contains("Gray") && md.contains("Rgb"), "{md}");
}

#[test]
fn corrupt_npz_is_bad_input_naming_the_file() {
    let ws = Workspace::new();
    setup(&ws, "", None);
    std::fs::write(
        ws.path().join("data/tiny/gray.npz"),
        b"this is not a zip archive at all",
    )
    .unwrap();
    assert_bad_input(&ws.run(&ARGS), &["gray.npz"]);
}

#[test]
fn label_out_of_range_is_bad_input() {
    let ws = Workspace::new();
    setup(&ws, "", Some(7));
    assert_bad_input(&ws.run(&ARGS), &["gray.npz", "7"]);
}

#[test]
fn checksum_mismatch_is_bad_input() {
    let ws = Workspace::new();
    setup(&ws, &format!("sha256 = \"{}\"", "0".repeat(64)), None);
    assert_bad_input(&ws.run(&ARGS), &["gray.npz", "sha256"]);
}

#[test]
fn datasets_command_reports_presence() {
    let ws = Workspace::new();
    setup(&ws, "", None);
    std::fs::remove_file(ws.path().join("data/tiny/rgb.npz")).unwrap();
    let o = ws.run(&["datasets", "--registry", "reg.toml", "--data-dir", "data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("present") && out.contains("missing"), "{out}");
    // Missing data is a clear error pointing at the smoke profile.
    assert_bad_input(&ws.run(&ARGS), &["rgb.npz", "--profile smoke"]);
}

/// An image-folder task of `n` JPEGs per class (two classes), each a real JPEG as the
/// `image` crate writes it; returns the path of the first.
fn jpeg_folder(ws: &Workspace, n: u32) -> std::path::PathBuf {
    ws.write(
        "reg.toml",
        r#"
[[dataset]]
key = "folders"
name = "Folders"
role = "pretrain"
source = "written by the integration test"

[[dataset.task]]
id = 1
key = "photos"
name = "Photos"
modality = "Dermatoscope"
region = "Skin"
labels = 2
images = 24
format = "image_folder"
path = "photos"
"#,
    );
    for (class, value) in [("benign", 40u8), ("malignant", 200)] {
        let dir = ws.path().join("data/photos").join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(20, 16, |x, y| {
                image::Rgb([value, (x * 12) as u8, (y * 15 + i) as u8])
            });
            img.save(dir.join(format!("{i:02}.jpg"))).unwrap();
        }
    }
    ws.write(
        "exp.toml",
        &format!("name = \"folders\"\nseeds = [0]\nstages = [\"decompose\"]\n\n[grid]\nmethod = [\"stl\"]\npretrain = [\"folders\"]\n{PROFILE}"),
    );
    ws.path().join("data/photos/benign/00.jpg")
}

#[test]
fn a_truncated_jpeg_is_bad_input_naming_it_and_the_whole_folder_trains() {
    let ws = Workspace::new();
    let first = jpeg_folder(&ws, 12);
    let whole = std::fs::read(&first).unwrap();
    // Cut halfway through the scan (its header holds most of so small a file): the
    // decoder alone would fill the missing rows with grey.
    let scan = whole.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    std::fs::write(&first, &whole[..(scan + whole.len()) / 2]).unwrap();
    assert_bad_input(
        &ws.run(&ARGS),
        &["benign/00.jpg", "before its end-of-image marker"],
    );
    std::fs::write(&first, &whole).unwrap();
    let o = ws.run(&ARGS);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 trained"), "{}", stderr(&o));
}

#[test]
fn a_jpeg_whose_header_claims_more_pixels_than_its_data_hold_is_bad_input() {
    let ws = Workspace::new();
    let first = jpeg_folder(&ws, 12);
    // The frame header made to claim 14 573 × 4 353 pixels (as a 350-byte file found by
    // fuzzing did): a complete image that large needs at least 124 KB of scans, one bit
    // a block, and the decoder would return 63 million blank pixels.
    let mut bytes = std::fs::read(&first).unwrap();
    crate::bad_inputs_data::claim_14573_by_4353(&mut bytes);
    std::fs::write(&first, &bytes).unwrap();
    assert_bad_input(
        &ws.run(&ARGS),
        &[
            "benign/00.jpg",
            "claims 14573 x 4353 pixels",
            "image data are missing",
        ],
    );
}
