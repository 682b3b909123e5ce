//! Image-folder loader. The per-file decoder `data::image_folder::decode` is `pub(crate)`,
//! so this fuzzes the nearest public entry point, `load_image_folder`, on a one-class,
//! one-file folder `<scratch>/train/a/x.png` (plus an empty `test/a/`) (the content decides PNG vs JPEG; the
//! extension only has to pass the .png/.jpg filter). The output size varies with the input
//! length so both down- and up-sampling run.
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use kdbench::data::image_folder::load_image_folder;
use kdbench::data::registry::{Format, TaskEntry};
use kdbench::data::settings::SplitCaps;
use libfuzzer_sys::fuzz_target;

struct Scratch {
    root: PathBuf,
    file: PathBuf,
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let root = base.join(format!("kdbench-fuzz-img-{}", std::process::id()));
        let class = root.join("train").join("a");
        std::fs::create_dir_all(&class).expect("create scratch folder");
        // The split layout needs a test/ folder; an empty class folder there is enough.
        std::fs::create_dir_all(root.join("test").join("a")).expect("create scratch folder");
        Scratch { file: class.join("x.png"), root }
    })
}

fn task() -> TaskEntry {
    TaskEntry {
        id: 1,
        key: "fuzz".into(),
        name: "Fuzz".into(),
        modality: "CT".into(),
        region: "Chest".into(),
        labels: 1,
        images: 1,
        paper_labels: None,
        paper_images: None,
        format: Format::ImageFolder,
        path: "fuzz".into(),
        sha256: None,
        multilabel: None,
        note: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    std::fs::write(&s.file, data).expect("write scratch file");
    let size = 1 + data.len() % 48;
    let caps = SplitCaps { train: None, val: None, test: None };
    if let Ok(td) = load_image_folder(&task(), &s.root, size, &caps, 7) {
        assert_eq!(td.train.images.len(), 3 * size * size, "one decoded image of 3 x size x size");
    }
});
