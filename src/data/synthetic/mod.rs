//! Synthetic stand-ins for the registry's data sets, used by the `smoke` profile so that CI
//! and nightly sweeps can rank decomposition methods on two CPU cores in minutes.
//!
//! A stand-in keeps everything of a real data set that the experiments depend on — its
//! tasks, their label counts and modalities — and replaces the pixels with procedurally
//! drawn images. The generator is built so that the comparisons the paper makes still mean
//! something at this scale:
//!
//! * **Labels are defined by visual primitives, so a CNN is needed.** Every image holds one
//!   or more *target* objects described by five factors from a vocabulary shared by all
//!   tasks: shape (disk, square, ring, cross, triangle, bar), orientation (0°, 45°, 90°,
//!   135°; objects are elongated so that even a disk has one), fill texture (solid, coarse
//!   or fine grating), position region (a quadrant) and count (1–3 identical copies). A
//!   task's label is a combination of levels of a task-specific subset of the factors,
//!   taken in random order until their levels cover its classes — except that position
//!   never defines a task alone (a network learns it almost at once) but comes second,
//!   where it multiplies the classes of many-label tasks cheaply, and count only defines
//!   tasks with up to three labels (it cannot pair with position). RadImageNet's 28-label
//!   task thus becomes e.g. shape × region × orientation; up to [`MAX_LABELS`] labels are
//!   supported. The other factors are nuisance: each takes the task's default level or,
//!   with a probability that grows with difficulty, a random one.
//! * **Tasks share features but conflict on what they mean.** Each task maps its classes to
//!   factor combinations through its own random permutation, and what is the label for one
//!   task is nuisance for another. Multi-task learning can therefore share the primitive
//!   detectors, but a single shared representation is pulled towards different invariances
//!   and the same disk means class 0 in one task and class 3 in another — the controlled
//!   cross-task conflict that lets task-specific experts (LoRKD, KF) differ from a shared
//!   encoder (MTL), as in the paper. A task's recipe (factors, class mapping, polarity,
//!   default nuisance levels) depends only on the data-set and task keys, not on the seed,
//!   so seeds vary the samples while every seed poses the same problem.
//! * **Downstream tasks are kin to a pre-training task.** A task may name a [`Kin`] (the
//!   caller picks it from supplement Table 1's experts); it then redraws the kin's recipe
//!   and keeps its factor order, polarity and default nuisance levels, taking from its own
//!   keys only how many of those factors it needs and its class permutation. Its rules are
//!   new but its primitives are the kin's, so that fine-tuning the kin's expert has
//!   something to transfer and a mismatched expert less. Tasks without a kin (every
//!   pre-training task) are drawn as before, and the kin enters [`fingerprint`] only when
//!   present.
//! * **Modalities look different.** The background follows the task's modality
//!   (case-insensitive): speckled fan for ultrasound, smooth low-frequency fields in a round
//!   field of view for MRI, an elliptical body with a bright rim and extra fine noise for
//!   CT, a vertical gradient with rib-like bands for X-ray, wavy horizontal layers for OCT,
//!   and coloured textures with their own palettes for pathology, microscopy, dermatoscopy
//!   and RGB endoscopy; anything else gets a generic smooth field. Grayscale modalities are
//!   replicated across the three channels. This is the heterogeneity between tasks that the
//!   paper's decomposition has to harmonise.
//! * **One difficulty knob.** `difficulty` in `0..=1` scales together: pixel noise, object
//!   opacity (lower), position jitter, the probability that nuisance factors leave their
//!   default level (and the spread of size and opacity), background variation, the number,
//!   size and opacity of smaller distractor objects, and the probability (0.1 to 0.5) that a
//!   sample's objects are dark instead of bright or vice versa. The flips and the jitter are
//!   what defeat linear read-outs of raw pixels while costing a CNN little. With a few
//!   hundred training images per task, a raw-pixel nearest-class-mean classifier is far
//!   above chance at 0, clearly weaker at 0.5 (the smoke default; a small ResNet trained
//!   for a few epochs does better, and keeps improving with more epochs), and close to
//!   chance at 1.
//!
//! Split sizes follow the real data set's 70/10/20 split of `images`, each capped by the
//! corresponding option: `n = min(cap, share)`, raised to one sample per class wherever the
//! cap allows (a split that lacks a class would make per-class metrics meaningless). Labels
//! cycle through the classes before being shuffled, so splits are balanced.
//!
//! Output is deterministic: every sample is drawn from its own PRNG, seeded from the seed,
//! data-set key, task key, split and index, so the bytes do not depend on the thread count.
//! (They may differ across platforms whose `libm` rounds `sin`/`ln` differently.)
//! [`fingerprint`] hashes [`GENERATOR_VERSION`] and every input, and keys the in-memory
//! ([`generate_cached`]) and on-disk ([`generate_cached_on_disk`]) caches; bump the version
//! whenever a change alters the generated bytes.

mod cache;
mod field;
mod format;
mod knobs;
mod modality;
mod noise;
mod object;
mod recipe;
mod render;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use self::cache::{memory_get, memory_put};
use self::format::{decode, encode};
use self::knobs::Knobs;
use self::recipe::Recipe;
use self::render::render;
use crate::data::{DataKind, Dataset, Split, TaskData, CHANNELS};
use crate::error::{Error, Result};
use crate::util::fs::write_atomic;
use crate::util::hash::hex;
use crate::util::rng::Xoshiro256;
use crate::util::seed::Mixer;

/// Version of the generator; part of every fingerprint. Bump it whenever the bytes change.
pub const GENERATOR_VERSION: &str = "synthetic.1";

/// Largest label count a task may have: shape × orientation × texture × region.
pub const MAX_LABELS: usize = 6 * 4 * 3 * 4;

/// Smallest supported image side; below it the primitives are no longer recognisable.
pub const MIN_IMAGE_SIZE: usize = 16;

/// What the generator needs to know of one task (built by the caller from the registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskShape {
    pub key: String,
    pub name: String,
    pub modality: String,
    pub labels: usize,
    /// Number of images of the real task; sets the 70/10/20 split shares.
    pub images: usize,
    /// The pre-training task whose primitives this (downstream) task shares; `None` for a
    /// task drawn from its own keys alone, as every pre-training task is.
    pub kin: Option<Kin>,
}

/// Names a pre-training task: enough to redraw its recipe, which depends on nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kin {
    /// Data-set key of the pre-training set.
    pub dataset: String,
    /// Task key within that set.
    pub task: String,
    /// The pre-training task's label count (its factor order depends on it).
    pub labels: usize,
}

/// How much data to draw and how hard to make it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticOptions {
    pub image_size: usize,
    /// Most samples per task of the train, val and test splits (in `SPLITS` order), each
    /// also at most the split's share of the real set's images.
    pub caps: [usize; 3],
    /// `0.0` (easy) to `1.0` (hard); see the module docs for what it scales.
    pub difficulty: f64,
    pub seed: u64,
}

/// Generates the synthetic stand-in of a data set.
pub fn generate(
    dataset_key: &str,
    tasks: &[TaskShape],
    opts: &SyntheticOptions,
) -> Result<Dataset> {
    validate(dataset_key, tasks, opts)?;
    let knobs = Knobs::new(opts.difficulty as f32);
    let tasks = tasks
        .par_iter()
        .map(|task| generate_task(dataset_key, task, opts, &knobs))
        .collect();
    Ok(Dataset {
        key: dataset_key.to_string(),
        kind: DataKind::Synthetic,
        image_size: opts.image_size,
        tasks,
    })
}

/// Hex sha256 over [`GENERATOR_VERSION`] and every input of [`generate`].
pub fn fingerprint(dataset_key: &str, tasks: &[TaskShape], opts: &SyntheticOptions) -> String {
    let mut h = Sha256::new();
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    let put_str = |h: &mut Sha256, s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put_str(&mut h, GENERATOR_VERSION);
    put_str(&mut h, dataset_key);
    h.update((tasks.len() as u64).to_le_bytes());
    for t in tasks {
        put_str(&mut h, &t.key);
        put_str(&mut h, &t.name);
        put_str(&mut h, &t.modality);
        h.update((t.labels as u64).to_le_bytes());
        h.update((t.images as u64).to_le_bytes());
        // Hashed only when present, so that tasks without kin (every pre-training task)
        // keep the fingerprints, and cached data and run ids, they had before kin existed.
        // The marker is no possible key length or image size, so the field stays apart.
        if let Some(k) = &t.kin {
            h.update(u64::MAX.to_le_bytes());
            put_str(&mut h, &k.dataset);
            put_str(&mut h, &k.task);
            h.update((k.labels as u64).to_le_bytes());
        }
    }
    for n in [opts.image_size, opts.caps[0], opts.caps[1], opts.caps[2]] {
        h.update((n as u64).to_le_bytes());
    }
    // -0.0 and 0.0 draw the same data, so they share a fingerprint.
    let difficulty = if opts.difficulty == 0.0 {
        0.0
    } else {
        opts.difficulty
    };
    h.update(difficulty.to_bits().to_le_bytes());
    h.update(opts.seed.to_le_bytes());
    hex(&h.finalize())
}

/// [`generate`] behind a process-wide cache keyed by [`fingerprint`], so that the many runs
/// of a sweep that share a data set draw it once.
pub fn generate_cached(
    dataset_key: &str,
    tasks: &[TaskShape],
    opts: &SyntheticOptions,
) -> Result<Arc<Dataset>> {
    let fp = fingerprint(dataset_key, tasks, opts);
    if let Some(ds) = memory_get(&fp) {
        return Ok(ds);
    }
    Ok(memory_put(fp, generate(dataset_key, tasks, opts)?))
}

/// Like [`generate_cached`], and also keeps the data set in
/// `<cache_dir>/synthetic/<fingerprint>.bin` so that later processes (separate `harness
/// exec` runs of a sweep) skip generation. A missing, short or corrupt file is regenerated
/// and rewritten; failing to write the file is an error.
pub fn generate_cached_on_disk(
    cache_dir: &Path,
    dataset_key: &str,
    tasks: &[TaskShape],
    opts: &SyntheticOptions,
) -> Result<Arc<Dataset>> {
    let fp = fingerprint(dataset_key, tasks, opts);
    let path = cache_dir.join("synthetic").join(format!("{fp}.bin"));
    let write = |ds: &Dataset| write_atomic(&path, &encode(ds, &fp));
    if let Some(ds) = memory_get(&fp) {
        // Drawn earlier in this process, perhaps without the disk cache: later processes
        // still want the file.
        if !path.exists() {
            write(&ds)?;
        }
        return Ok(ds);
    }
    if let Some(ds) = fs::read(&path).ok().and_then(|b| decode(&b, &fp)) {
        return Ok(memory_put(fp, ds));
    }
    let ds = generate(dataset_key, tasks, opts)?;
    write(&ds)?;
    Ok(memory_put(fp, ds))
}

// ---------------------------------------------------------------------------------------
// Inputs, split sizes, labels

fn validate(dataset_key: &str, tasks: &[TaskShape], opts: &SyntheticOptions) -> Result<()> {
    let ctx = format!("synthetic data set `{dataset_key}`");
    if tasks.is_empty() {
        return Err(Error::input(format!("{ctx}: no tasks to generate")));
    }
    if opts.image_size < MIN_IMAGE_SIZE {
        return Err(Error::input(format!(
            "{ctx}: image_size {} is too small; use at least {MIN_IMAGE_SIZE}",
            opts.image_size
        )));
    }
    if !(0.0..=1.0).contains(&opts.difficulty) {
        return Err(Error::input(format!(
            "{ctx}: difficulty {} must lie in 0..=1",
            opts.difficulty
        )));
    }
    for (i, t) in tasks.iter().enumerate() {
        if !(1..=MAX_LABELS).contains(&t.labels) {
            return Err(Error::input(format!(
                "{ctx}, task `{}`: {} labels; the generator supports 1..={MAX_LABELS}",
                t.key, t.labels
            )));
        }
        if let Some(k) = t
            .kin
            .as_ref()
            .filter(|k| !(1..=MAX_LABELS).contains(&k.labels))
        {
            return Err(Error::input(format!(
                "{ctx}, task `{}`: its kin `{}`/`{}` has {} labels; the generator supports \
                 1..={MAX_LABELS}",
                t.key, k.dataset, k.task, k.labels
            )));
        }
        if t.images == 0 {
            return Err(Error::input(format!(
                "{ctx}, task `{}`: `images` must be at least 1",
                t.key
            )));
        }
        // Task keys seed the PRNGs; two equal keys would draw identical tasks.
        if tasks[..i].iter().any(|u| u.key == t.key) {
            return Err(Error::input(format!(
                "{ctx}: task key `{}` appears twice",
                t.key
            )));
        }
    }
    Ok(())
}

/// Train/val/test sizes: each split's share of a 70/10/20 split of `images`, capped, and
/// raised to one sample per class where the cap allows.
fn split_sizes(images: usize, labels: usize, opts: &SyntheticOptions) -> [usize; 3] {
    let train = images * 7 / 10;
    let val = images / 10;
    let shares = [train, val, images - train - val];
    let caps = opts.caps;
    std::array::from_fn(|i| {
        let n = caps[i].min(shares[i]);
        if caps[i] >= labels {
            n.max(labels)
        } else {
            n
        }
    })
}

fn generate_task(
    dataset_key: &str,
    task: &TaskShape,
    opts: &SyntheticOptions,
    knobs: &Knobs,
) -> TaskData {
    let recipe = Recipe::new(dataset_key, task);
    let sizes = split_sizes(task.images, task.labels, opts);
    let mut splits: Vec<Split> = (0..3)
        .into_par_iter()
        .map(|s| {
            let base = Mixer::new(opts.seed)
                .str(dataset_key)
                .str(&task.key)
                .u64(s as u64);
            generate_split(&recipe, base, sizes[s], opts.image_size, knobs)
        })
        .collect();
    let test = splits.pop().unwrap_or_default();
    let val = splits.pop().unwrap_or_default();
    let train = splits.pop().unwrap_or_default();
    TaskData {
        key: task.key.clone(),
        name: task.name.clone(),
        num_classes: task.labels,
        train,
        val,
        test,
    }
}

fn generate_split(recipe: &Recipe, base: Mixer, n: usize, size: usize, knobs: &Knobs) -> Split {
    let classes = recipe.classes.len();
    let mut labels: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
    // The label stream is keyed apart from the per-sample streams (indices < n).
    Xoshiro256::new(base.u64(u64::MAX).finish()).shuffle(&mut labels);
    let bytes = CHANNELS * size * size;
    let mut images = vec![0u8; n * bytes];
    images
        .par_chunks_mut(bytes)
        .zip(labels.par_iter())
        .enumerate()
        .for_each(|(i, (out, &label))| {
            let mut rng = Xoshiro256::new(base.u64(i as u64).finish());
            render(recipe, label as usize, size, knobs, &mut rng, out);
        });
    Split { images, labels }
}
