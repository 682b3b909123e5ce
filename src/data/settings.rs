//! The plain settings that say which data a run sees ([`DataSpec`], part of every run spec
//! and so of every run id), and the pieces they are made of. The experiment layer fills
//! them in; the loaders and the generator read them.

use serde::{Deserialize, Serialize};

use super::DataKind;

/// Per task, per split maximum number of samples (`None` = all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCaps {
    pub train: Option<usize>,
    pub val: Option<usize>,
    pub test: Option<usize>,
}

impl SplitCaps {
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

/// How pixels become network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// `(p/255 − 0.5) / 0.25` for every image: keeps absolute intensity and colour.
    Fixed,
    /// Each channel of each image to zero mean and unit variance. Used for the synthetic
    /// stand-ins, whose modalities differ so much in brightness (colour palettes around 210,
    /// grey modalities around 75) that a shared network trained on the mixture learned only
    /// which modality it was looking at.
    PerImage,
}

impl Normalize {
    /// Default per data source: synthetic stand-ins per image, real data fixed.
    pub fn default_for(kind: DataKind) -> Normalize {
        match kind {
            DataKind::Synthetic => Normalize::PerImage,
            DataKind::Real => Normalize::Fixed,
        }
    }
}

/// What an experiment profile asks of the data, before the data set is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataSettings {
    pub kind: DataKind,
    pub image_size: usize,
    pub caps: SplitCaps,
    /// Synthetic data only (ignored for real data).
    pub difficulty: f64,
    pub normalize: Normalize,
}

/// Which data a run sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub kind: DataKind,
    pub dataset: String,
    pub image_size: usize,
    pub caps: SplitCaps,
    /// Synthetic data only.
    pub difficulty: Option<f64>,
    pub normalize: Normalize,
    /// Content fingerprint of the data (file hashes, or generator version + options).
    pub fingerprint: String,
}
