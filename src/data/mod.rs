//! Data: the dataset registry (`datasets.toml`), loaders for real files (MedMNIST `.npz`,
//! image folders), the synthetic stand-in generator, and mixed-task batching.
//!
//! Every loader produces the same in-memory form, [`Dataset`]: per task, three splits of
//! `u8` images in `N × 3 × H × W` order (grayscale is replicated to three channels so that
//! tasks of different modalities can share one network and one mixed batch) with task-local
//! labels `0..C_t`.

pub mod batch;
pub mod checksum;
pub mod image_folder;
pub mod jpeg_end;
pub mod load;
pub mod medmnist;
pub mod numpy;
pub mod registry;
pub mod registry_render;
pub mod resample;
pub mod sampling;
pub mod settings;
pub mod source;
pub mod synthetic;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Whether numbers came from real files or from the synthetic generator. Recorded on every
/// metrics row; reports print a banner whenever any row is synthetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    Real,
    Synthetic,
}

impl DataKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Real => "real",
            DataKind::Synthetic => "synthetic",
        }
    }
}

/// Number of channels of every image handed to a network.
pub const CHANNELS: usize = 3;

/// One split (train, val or test) of one task.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// `n × CHANNELS × size × size` bytes, sample-major.
    pub images: Vec<u8>,
    /// Task-local labels, `0..num_classes`.
    pub labels: Vec<u32>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// One task of a data set, loaded.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// Registry key of the task, e.g. `colon`.
    pub key: String,
    /// Human name, e.g. `Colon`.
    pub name: String,
    pub num_classes: usize,
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

/// A loaded data set: all of its tasks at one image size.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Registry key, e.g. `medmnist`.
    pub key: String,
    pub kind: DataKind,
    /// Side length of every (square) image.
    pub image_size: usize,
    pub tasks: Vec<TaskData>,
}

/// A task as a network's head needs it: (task key, number of classes).
pub type TaskHead = (String, usize);

impl Dataset {
    /// Bytes of one image.
    pub fn image_bytes(&self) -> usize {
        CHANNELS * self.image_size * self.image_size
    }

    /// The tasks a run names, in its order: their positions in this data set and, as a
    /// network's heads need them, (task key, number of classes). A key the data set lacks
    /// (a registry edited after the run was planned) is bad input.
    pub fn task_heads(&self, keys: &[String]) -> Result<(Vec<usize>, Vec<TaskHead>)> {
        let mut positions = Vec::with_capacity(keys.len());
        let mut heads = Vec::with_capacity(keys.len());
        for key in keys {
            let i = self
                .tasks
                .iter()
                .position(|t| &t.key == key)
                .ok_or_else(|| {
                    Error::input(format!("data set `{}` has no task `{key}`", self.key))
                })?;
            positions.push(i);
            heads.push((key.clone(), self.tasks[i].num_classes));
        }
        Ok((positions, heads))
    }
}
