//! Tests of the synthetic generator: determinism, shapes and balance, recipes (with and
//! without kin), inputs, fingerprints, both caches, the PRNG, and a raw-pixel probe of the
//! difficulty knob.

use std::fs;
use std::sync::Arc;

use super::format::{decode, encode};
use super::modality::Modality;
use super::recipe::{ClassSpec, Recipe, SHAPES};
use super::*;
use crate::util::rng::{Normals, Xoshiro256};
use crate::util::seed::{splitmix64, Mixer};

fn task(key: &str, modality: &str, labels: usize, images: usize) -> TaskShape {
    TaskShape {
        key: key.to_string(),
        name: key.to_uppercase(),
        modality: modality.to_string(),
        labels,
        images,
        kin: None,
    }
}

/// MedMNIST's tasks plus the extremes of RadImageNet and Med-MT.
fn tasks() -> Vec<TaskShape> {
    vec![
        task("colon", "Pathology", 9, 107180),
        task("retinal", "OCT", 4, 109309),
        task("organc", "CT", 11, 23660),
        task("cell", "Microscope", 8, 17092),
        task("breast", "Ultrasound", 2, 780),
        task("skin", "Dermatoscope", 7, 10015),
        task("chest", "Xray", 2, 112120),
        task("abdomen_ct", "CT", 28, 139825),
        task("knee", "MRI", 18, 179555),
        task("gi", "RGB", 8, 8000),
        task("thyroid", "Ultrasound", 2, 92599),
        task("other", "Thermal", 3, 5000),
    ]
}

fn opts(difficulty: f64) -> SyntheticOptions {
    SyntheticOptions {
        image_size: 28,
        caps: [500, 50, 300],
        difficulty,
        seed: 7,
    }
}

/// Raw-pixel nearest-class-mean accuracy on the test split.
fn ncm_accuracy(ds: &Dataset, t: &TaskData) -> f64 {
    let d = ds.image_bytes();
    let mut sums = vec![vec![0f64; d]; t.num_classes];
    let mut counts = vec![0usize; t.num_classes];
    for (img, &y) in t.train.images.chunks_exact(d).zip(&t.train.labels) {
        counts[y as usize] += 1;
        for (s, &p) in sums[y as usize].iter_mut().zip(img) {
            *s += p as f64;
        }
    }
    for (s, &c) in sums.iter_mut().zip(&counts) {
        s.iter_mut().for_each(|v| *v /= c.max(1) as f64);
    }
    let correct = t
        .test
        .images
        .chunks_exact(d)
        .zip(&t.test.labels)
        .filter(|(img, &y)| {
            let dist = |m: &Vec<f64>| -> f64 {
                m.iter()
                    .zip(img.iter())
                    .map(|(a, &b)| (a - b as f64).powi(2))
                    .sum()
            };
            let best = (0..t.num_classes)
                .min_by(|&a, &b| dist(&sums[a]).total_cmp(&dist(&sums[b])))
                .unwrap();
            best == y as usize
        })
        .count();
    correct as f64 / t.test.len() as f64
}

/// Raw-pixel nearest-class-mean accuracy of every task, with its chance level.
fn ncm_accuracies(difficulty: f64) -> Vec<(f64, f64)> {
    let ds = generate("probe", &tasks(), &opts(difficulty)).unwrap();
    ds.tasks
        .iter()
        .map(|t| {
            let acc = ncm_accuracy(&ds, t);
            eprintln!(
                "difficulty {difficulty}: {:>10} ({:>2} classes) ncm {acc:.3}",
                t.key, t.num_classes
            );
            (acc, 1.0 / t.num_classes as f64)
        })
        .collect()
}

/// (mean accuracy, max accuracy, mean accuracy / chance).
fn summary(accs: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = accs.len() as f64;
    let mean = accs.iter().map(|a| a.0).sum::<f64>() / n;
    let max = accs.iter().map(|a| a.0).fold(0.0, f64::max);
    let lift = accs.iter().map(|a| a.0 / a.1).sum::<f64>() / n;
    eprintln!("mean {mean:.3}, max {max:.3}, mean accuracy/chance {lift:.2}");
    (mean, max, lift)
}

/// Both ends of the knob mean something: easy data are separable even without a CNN,
/// default data are not trivially separable from raw pixels, hard data are harder still.
/// (A small ResNet does clearly better than these numbers at 0.5; that is checked by
/// the smoke sweeps, not here.)
#[test]
fn raw_pixels_separate_easy_data_but_not_default_data() {
    let easy = ncm_accuracies(0.0);
    let (easy_mean, _, easy_lift) = summary(&easy);
    let (mid_mean, mid_max, mid_lift) = summary(&ncm_accuracies(0.5));
    let (hard_mean, _, hard_lift) = summary(&ncm_accuracies(1.0));
    assert!(easy_lift > 2.5, "difficulty 0 should be well above chance");
    for (acc, chance) in easy {
        assert!(acc > chance + 0.05, "every easy task is above chance");
    }
    assert!(
        mid_max < 0.8 && mid_mean < 0.5,
        "difficulty 0.5 is too linear"
    );
    assert!(mid_lift > 1.2 && mid_lift < easy_lift - 0.5);
    assert!(hard_mean < mid_mean && hard_lift < mid_lift);
    assert!(easy_mean > mid_mean + 0.1);
}

fn small_opts() -> SyntheticOptions {
    SyntheticOptions {
        image_size: 20,
        caps: [40, 10, 20],
        difficulty: 0.5,
        seed: 3,
    }
}

fn all_bytes(ds: &Dataset) -> Vec<u8> {
    encode(ds, "-")
}

#[test]
fn same_inputs_give_identical_bytes_for_any_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| all_bytes(&generate("ds", &tasks(), &small_opts()).unwrap()))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    assert_eq!(
        one,
        all_bytes(&generate("ds", &tasks(), &small_opts()).unwrap())
    );
}

#[test]
fn seed_dataset_and_task_keys_change_the_samples() {
    let base = generate("ds", &tasks()[..2], &small_opts()).unwrap();
    let other_seed = SyntheticOptions {
        seed: 4,
        ..small_opts()
    };
    let reseeded = generate("ds", &tasks()[..2], &other_seed).unwrap();
    let renamed = generate("ds2", &tasks()[..2], &small_opts()).unwrap();
    for other in [&reseeded, &renamed] {
        for (a, b) in base.tasks.iter().zip(&other.tasks) {
            assert_ne!(a.train.images, b.train.images);
        }
    }
    // Tasks are independent of their neighbours: dropping one leaves the other intact.
    let alone = generate("ds", &tasks()[1..2], &small_opts()).unwrap();
    assert_eq!(alone.tasks[0].train.images, base.tasks[1].train.images);
    assert_eq!(alone.tasks[0].test.labels, base.tasks[1].test.labels);
}

#[test]
fn shapes_labels_and_metadata_are_consistent() {
    let o = small_opts();
    let ds = generate("medmnist", &tasks(), &o).unwrap();
    assert_eq!(ds.key, "medmnist");
    assert_eq!(ds.kind, DataKind::Synthetic);
    assert_eq!(ds.image_size, 20);
    assert_eq!(ds.tasks.len(), tasks().len());
    for (t, shape) in ds.tasks.iter().zip(tasks()) {
        assert_eq!(
            (t.key.as_str(), t.name.as_str()),
            (shape.key.as_str(), shape.name.as_str())
        );
        assert_eq!(t.num_classes, shape.labels);
        for split in [&t.train, &t.val, &t.test] {
            assert_eq!(split.images.len(), split.len() * ds.image_bytes());
            assert!(split.labels.iter().all(|&l| (l as usize) < t.num_classes));
            // Cycled labels: class counts differ by at most one.
            let mut counts = vec![0usize; t.num_classes];
            split.labels.iter().for_each(|&l| counts[l as usize] += 1);
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{}: unbalanced {counts:?}", t.key);
        }
        // Grayscale modalities replicate one plane; colour ones do not.
        let n = 20 * 20;
        let img = &t.train.images[..3 * n];
        let gray = img[..n] == img[n..2 * n] && img[..n] == img[2 * n..];
        let colour = matches!(
            shape.modality.as_str(),
            "Pathology" | "Microscope" | "Dermatoscope" | "RGB"
        );
        assert_eq!(gray, !colour, "{}", t.key);
    }
}

#[test]
fn split_sizes_follow_shares_caps_and_class_floor() {
    let o = |train_cap, val_cap, test_cap| SyntheticOptions {
        caps: [train_cap, val_cap, test_cap],
        ..small_opts()
    };
    // Plenty of images: the caps bind.
    assert_eq!(split_sizes(100_000, 10, &o(500, 50, 100)), [500, 50, 100]);
    // Few images: the 70/10/20 shares bind.
    assert_eq!(split_sizes(780, 2, &o(1000, 1000, 1000)), [546, 78, 156]);
    assert_eq!(split_sizes(1000, 2, &o(100, 500, 500)), [100, 100, 200]);
    // A small share is raised to one sample per class where the cap allows ...
    assert_eq!(split_sizes(40, 8, &o(100, 100, 100)), [28, 8, 8]);
    // ... but never above the cap, and a zero cap means an empty split.
    assert_eq!(split_sizes(40, 8, &o(100, 5, 0)), [28, 4, 0]);
    let ds = generate("d", &[task("t", "CT", 8, 40)], &o(100, 5, 0)).unwrap();
    let t = &ds.tasks[0];
    assert_eq!((t.train.len(), t.val.len(), t.test.len()), (28, 4, 0));
    assert!(t.test.images.is_empty());
    let mut seen: Vec<u32> = t.train.labels.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 8, "every class appears in the train split");
}

#[test]
fn many_labels_get_distinct_class_definitions() {
    for labels in [1, 2, 3, 6, 7, 13, 28, 100, MAX_LABELS] {
        let r = Recipe::new("radimagenet", &task("t", "MRI", labels, 1000));
        assert_eq!(r.classes.len(), labels);
        for (i, a) in r.classes.iter().enumerate() {
            assert!(
                r.classes[..i].iter().all(|b| b != a),
                "{labels} labels: duplicate class"
            );
            assert!(!(a.count.is_some() && a.region.is_some()));
        }
    }
}

#[test]
fn tasks_reuse_primitives_with_different_meanings() {
    // Across a registry-sized set of tasks, shapes label several tasks (a common
    // vocabulary), and a shape level picks out different classes in different tasks
    // (conflict).
    let recipes: Vec<Recipe> = tasks().iter().map(|t| Recipe::new("medmnist", t)).collect();
    let classes_with = |r: &Recipe, level: usize| -> Vec<usize> {
        (0..r.classes.len())
            .filter(|&c| r.classes[c].shape == Some(level))
            .collect()
    };
    let users: Vec<&Recipe> = recipes
        .iter()
        .filter(|r| r.classes[0].shape.is_some())
        .collect();
    assert!(users.len() >= 2, "shape labels at least two tasks");
    let conflicting = (0..SHAPES).any(|level| {
        let meanings: Vec<Vec<usize>> = users
            .iter()
            .map(|r| classes_with(r, level))
            .filter(|m| !m.is_empty())
            .collect();
        meanings.windows(2).any(|w| w[0] != w[1])
    });
    assert!(conflicting);
    // And position, which only ever refines another factor, is shared widely.
    assert!(
        recipes
            .iter()
            .filter(|r| r.classes[0].region.is_some())
            .count()
            >= 3
    );
    assert!(recipes.iter().all(|r| {
        let c = r.classes[0];
        c.region.is_none() || c.shape.or(c.orientation).or(c.texture).is_some()
    }));
}

#[test]
fn modality_names_are_matched_case_insensitively() {
    assert_eq!(Modality::parse("ultrasound"), Modality::Ultrasound);
    assert_eq!(Modality::parse("X-ray"), Modality::Xray);
    assert_eq!(Modality::parse("XRAY"), Modality::Xray);
    assert_eq!(Modality::parse("OCT"), Modality::Oct);
    assert_eq!(Modality::parse("ct"), Modality::Ct);
    assert_eq!(Modality::parse("MRI"), Modality::Mri);
    assert_eq!(Modality::parse("Dermatoscope"), Modality::Dermatoscope);
    assert_eq!(Modality::parse("rgb"), Modality::Rgb);
    assert_eq!(Modality::parse("PET"), Modality::Generic);
}

#[test]
fn fingerprint_changes_with_every_input() {
    let ts = tasks();
    let o = small_opts();
    let base = fingerprint("ds", &ts, &o);
    assert_eq!(base.len(), 64);
    assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(base, fingerprint("ds", &ts, &o.clone()));
    let mut variants = vec![fingerprint("ds2", &ts, &o), fingerprint("ds", &ts[1..], &o)];
    let task_edits: [fn(&mut TaskShape); 5] = [
        |t| t.key.push('x'),
        |t| t.name.push('x'),
        |t| t.modality = "MRI".into(),
        |t| t.labels += 1,
        |t| t.images += 1,
    ];
    for edit in task_edits {
        let mut ts2 = ts.clone();
        edit(&mut ts2[0]);
        variants.push(fingerprint("ds", &ts2, &o));
    }
    let opt_edits: [fn(&mut SyntheticOptions); 6] = [
        |o| o.image_size += 1,
        |o| o.caps[0] += 1,
        |o| o.caps[1] += 1,
        |o| o.caps[2] += 1,
        |o| o.difficulty += 0.01,
        |o| o.seed += 1,
    ];
    for edit in opt_edits {
        let mut o2 = o.clone();
        edit(&mut o2);
        variants.push(fingerprint("ds", &ts, &o2));
    }
    // Field boundaries are unambiguous.
    let mut ts3 = ts.clone();
    ts3[0].key = "col".into();
    ts3[0].name = "onCOLON".into();
    variants.push(fingerprint("ds", &ts3, &o));
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(*v, base, "variant {i}");
        assert!(variants[..i].iter().all(|w| w != v), "variant {i} collides");
    }
    let zero = SyntheticOptions {
        difficulty: 0.0,
        ..o.clone()
    };
    let neg_zero = SyntheticOptions {
        difficulty: -0.0,
        ..o
    };
    assert_eq!(
        fingerprint("ds", &ts, &zero),
        fingerprint("ds", &ts, &neg_zero)
    );
}

#[test]
fn bad_inputs_are_rejected_with_a_reason() {
    let o = small_opts();
    let t = || task("t", "CT", 3, 100);
    let err = |tasks: &[TaskShape], o: &SyntheticOptions| {
        let e = generate("ds", tasks, o).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    };
    assert!(err(&[], &o).contains("no tasks"));
    assert!(err(
        &[t()],
        &SyntheticOptions {
            image_size: 8,
            ..o.clone()
        }
    )
    .contains("image_size"));
    for d in [-0.1, 1.5, f64::NAN] {
        assert!(err(
            &[t()],
            &SyntheticOptions {
                difficulty: d,
                ..o.clone()
            }
        )
        .contains("difficulty"));
    }
    assert!(err(&[task("t", "CT", 0, 100)], &o).contains("labels"));
    assert!(err(&[task("t", "CT", MAX_LABELS + 1, 100)], &o).contains("labels"));
    assert!(err(&[task("t", "CT", 2, 0)], &o).contains("images"));
    assert!(err(&[t(), t()], &o).contains("twice"));
}

#[test]
fn memory_cache_shares_one_copy() {
    let o = SyntheticOptions {
        seed: 101,
        ..small_opts()
    };
    let a = generate_cached("cache-test", &tasks()[..2], &o).unwrap();
    let b = generate_cached("cache-test", &tasks()[..2], &o).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let c = generate_cached(
        "cache-test",
        &tasks()[..2],
        &SyntheticOptions { seed: 102, ..o },
    )
    .unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
}

#[test]
fn disk_cache_round_trips_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let ts = &tasks()[..3];
    // A seed no other test uses keeps the process-wide memory cache out of the way.
    let o = SyntheticOptions {
        seed: 201,
        ..small_opts()
    };
    let fp = fingerprint("disk", ts, &o);
    let path = dir.path().join("synthetic").join(format!("{fp}.bin"));
    let expected = all_bytes(&generate("disk", ts, &o).unwrap());

    let first = generate_cached_on_disk(dir.path(), "disk", ts, &o).unwrap();
    assert_eq!(all_bytes(&first), expected);
    let on_disk = fs::read(&path).unwrap();
    let decoded = decode(&on_disk, &fp).expect("file written by encode decodes");
    assert_eq!(all_bytes(&decoded), expected);
    assert_eq!(decoded.kind, DataKind::Synthetic);
    let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary files remain: {leftovers:?}"
    );

    // Anything but an intact file of this fingerprint is rejected ...
    assert!(decode(&on_disk, &"0".repeat(64)).is_none());
    assert!(decode(&on_disk[..on_disk.len() - 1], &fp).is_none());
    assert!(decode(&on_disk[..100], &fp).is_none());
    assert!(decode(&[], &fp).is_none());
    let mut flipped = on_disk.clone();
    flipped[on_disk.len() / 2] ^= 1;
    assert!(decode(&flipped, &fp).is_none());

    // ... and regenerated through the disk path (a fresh seed bypasses the memory cache).
    let o2 = SyntheticOptions { seed: 202, ..o };
    let fp2 = fingerprint("disk", ts, &o2);
    let path2 = dir.path().join("synthetic").join(format!("{fp2}.bin"));
    fs::write(&path2, &on_disk[..on_disk.len() / 3]).unwrap();
    let regenerated = generate_cached_on_disk(dir.path(), "disk", ts, &o2).unwrap();
    assert_eq!(
        all_bytes(&regenerated),
        all_bytes(&generate("disk", ts, &o2).unwrap())
    );
    assert!(
        decode(&fs::read(&path2).unwrap(), &fp2).is_some(),
        "file was rewritten"
    );
}

#[test]
fn disk_cache_is_read_back_by_a_later_process() {
    // Simulate another process: the file exists, the memory cache does not hold it.
    let dir = tempfile::tempdir().unwrap();
    let ts = &tasks()[..1];
    let o = SyntheticOptions {
        seed: 301,
        ..small_opts()
    };
    let fp = fingerprint("later", ts, &o);
    let mut ds = generate("later", ts, &o).unwrap();
    // Mark the stored copy so we can tell it was read rather than regenerated.
    ds.tasks[0].name = "from disk".into();
    fs::create_dir_all(dir.path().join("synthetic")).unwrap();
    fs::write(
        dir.path().join("synthetic").join(format!("{fp}.bin")),
        encode(&ds, &fp),
    )
    .unwrap();
    let loaded = generate_cached_on_disk(dir.path(), "later", ts, &o).unwrap();
    assert_eq!(loaded.tasks[0].name, "from disk");
}

#[test]
fn disk_cache_is_written_for_data_already_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let ts = &tasks()[..1];
    let o = SyntheticOptions {
        seed: 401,
        ..small_opts()
    };
    let in_memory = generate_cached("both", ts, &o).unwrap();
    let via_disk = generate_cached_on_disk(dir.path(), "both", ts, &o).unwrap();
    assert!(Arc::ptr_eq(&in_memory, &via_disk));
    let fp = fingerprint("both", ts, &o);
    let file = fs::read(dir.path().join("synthetic").join(format!("{fp}.bin"))).unwrap();
    assert!(decode(&file, &fp).is_some());
}

#[test]
fn prng_is_stable() {
    // Pin the streams: changing them silently changes every synthetic result.
    let mut r = Xoshiro256::new(Mixer::new(1).str("a").u64(2).finish());
    let v: Vec<u64> = (0..3).map(|_| r.next_u64() % 1000).collect();
    let mut r2 = Xoshiro256::new(Mixer::new(1).str("a").u64(2).finish());
    assert_eq!(v, (0..3).map(|_| r2.next_u64() % 1000).collect::<Vec<_>>());
    let mut sm = 0u64;
    assert_eq!(splitmix64(&mut sm), 0xe220_a839_7b1d_cdaf);
    let mut normals = Normals::default();
    let zs: Vec<f32> = (0..20_000).map(|_| normals.next_normal(&mut r)).collect();
    let mean = zs.iter().sum::<f32>() / zs.len() as f32;
    let var = zs.iter().map(|z| (z - mean).powi(2)).sum::<f32>() / zs.len() as f32;
    assert!(
        mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
        "{mean} {var}"
    );
}

fn with_kin(mut t: TaskShape, dataset: &str, task: &str, labels: usize) -> TaskShape {
    t.kin = Some(Kin {
        dataset: dataset.into(),
        task: task.into(),
        labels,
    });
    t
}

/// The factors that define a recipe's classes (every class defines the same ones).
fn defined(r: &Recipe) -> Vec<&'static str> {
    let ClassSpec {
        shape,
        orientation,
        texture,
        region,
        count,
    } = r.classes[0];
    [
        ("shape", shape),
        ("orientation", orientation),
        ("texture", texture),
        ("region", region),
        ("count", count),
    ]
    .into_iter()
    .filter_map(|(name, level)| level.map(|_| name))
    .collect()
}

#[test]
fn recipes_without_kin_are_unchanged() {
    // A digest of the recipes of `tasks()` as drawn before kin existed: the class specs,
    // polarity and default levels. Recipes use integer draws only, so unlike the pixels
    // they are the same on every platform.
    let mut h = Sha256::new();
    for t in tasks() {
        let r = Recipe::new("medmnist", &t);
        let s = format!(
            "{:?}|{}|{}|{}|{}",
            r.classes, r.polarity, r.default_shape, r.default_orientation, r.default_texture
        );
        h.update(s.as_bytes());
    }
    assert_eq!(
        hex(&h.finalize()),
        "1c1d9761437559a10dc83b8616814390df704f0fe3d6aa246de263fa2387aefa"
    );
}

#[test]
fn a_kin_task_shares_its_kins_primitives_but_not_its_classes() {
    let kin = Recipe::new("radimagenet", &task("brain_mr", "MRI", 10, 44671));
    let down = |key: &str, modality: &str, labels: usize| {
        let t = with_kin(
            task(key, modality, labels, 3000),
            "radimagenet",
            "brain_mr",
            10,
        );
        Recipe::new("downstream", &t)
    };
    // The downstream task takes the kin's factors in the kin's order: as its label count
    // grows, its factor sets are nested, and at the kin's label count they are the kin's.
    let mut previous: Vec<&str> = Vec::new();
    for labels in 2..=40 {
        let r = down("btc", "MRI", labels);
        assert_eq!(r.classes.len(), labels);
        let now = defined(&r);
        assert!(
            previous.iter().all(|f| now.contains(f)),
            "{labels}: {now:?}"
        );
        if labels == 10 {
            assert_eq!(now, defined(&kin));
        }
        // Polarity and default nuisance levels are the kin's whatever the labels.
        assert_eq!(
            (
                r.polarity,
                r.default_shape,
                r.default_orientation,
                r.default_texture
            ),
            (
                kin.polarity,
                kin.default_shape,
                kin.default_orientation,
                kin.default_texture
            )
        );
        previous = now;
    }
    // New class rules: the permutation comes from the downstream task's own keys, so two
    // downstream tasks with the same kin and label count define their classes differently
    // from the same factors, and differently from the kin.
    let (btc, ad) = (down("btc", "MRI", 10), down("ad", "MRI", 10));
    assert_eq!(defined(&btc), defined(&ad));
    assert_ne!(btc.classes, ad.classes);
    assert_ne!(btc.classes, kin.classes);
    // The background is the downstream task's own modality.
    assert_eq!(down("x", "Xray", 4).modality, Modality::Xray);
    assert_eq!(kin.modality, Modality::Mri);
    // Without its kin the same task draws everything from its own keys, as before.
    let own = Recipe::new("downstream", &task("btc", "MRI", 10, 3000));
    assert_ne!(own.classes, btc.classes);
}

#[test]
fn fingerprint_covers_the_kin_only_when_present() {
    let o = small_opts();
    let plain = vec![task("covid", "CT", 2, 746)];
    let kin = |d: &str, t: &str, l: usize| vec![with_kin(plain[0].clone(), d, t, l)];
    let variants = [
        fingerprint("downstream", &plain, &o),
        fingerprint("downstream", &kin("radimagenet", "lung_ct", 6), &o),
        fingerprint("downstream", &kin("radimagenet", "lung_ct", 7), &o),
        fingerprint("downstream", &kin("radimagenet", "lung_c", 6), &o),
        fingerprint("downstream", &kin("radimagenetl", "ung_ct", 6), &o),
        fingerprint("downstream", &kin("medmnist", "lung_ct", 6), &o),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert!(variants[..i].iter().all(|w| w != v), "variant {i} collides");
    }
    let bad = kin("radimagenet", "lung_ct", MAX_LABELS + 1);
    let e = generate("downstream", &bad, &o).unwrap_err();
    assert!(e.to_string().contains("kin"), "{e}");
}
