//! Mixed-task batching and input normalisation. An epoch is the shuffled union of every (task, sample) pair of the
//! run's tasks, cut into batches, as in the reference LoRKD code. The shuffle depends only on
//! (seed, epoch), so a run resumed at epoch k sees the same batches as one that never stopped.

use candle_core::{Device, Result, Tensor};

use super::{Dataset, Split};
use crate::data::settings::Normalize;
use crate::util::rng::SplitMix64;

/// A batch on the device. `x` is normalised to roughly zero mean and unit variance.
pub struct Batch {
    pub x: Tensor,
    /// Per present task: (local task index, row indices into `x`, labels of those rows).
    pub groups: Vec<TaskGroup>,
    pub size: usize,
    /// The samples of the rows, in row order, and the split they come from (the keys of
    /// cached teacher features).
    pub items: Vec<Item>,
    pub split: SplitName,
}

impl Batch {
    /// The local task of every row.
    pub fn row_tasks(&self) -> Vec<usize> {
        self.items.iter().map(|&(t, _)| t).collect()
    }
}

pub struct TaskGroup {
    pub task: usize,
    pub rows: Tensor,
    pub labels: Tensor,
    pub count: usize,
}

/// One sample reference: (local task index, sample index within the task's split).
pub type Item = (usize, usize);

/// The run's view of a data set: which dataset tasks it trains, in run order.
pub struct TaskView<'a> {
    pub dataset: &'a Dataset,
    /// Dataset task index for each local task index.
    pub tasks: Vec<usize>,
    pub normalize: Normalize,
}

impl<'a> TaskView<'a> {
    pub fn split(&self, local: usize, which: SplitName) -> &'a Split {
        let t = &self.dataset.tasks[self.tasks[local]];
        match which {
            SplitName::Train => &t.train,
            SplitName::Val => &t.val,
            SplitName::Test => &t.test,
        }
    }

    /// Batches of one epoch of mixed-task training. Batches of fewer than two samples are
    /// dropped: batch norm cannot estimate a variance from one sample.
    pub fn train_epoch(&self, seed: u64, epoch: u32, batch_size: usize) -> Vec<Vec<Item>> {
        let mut items: Vec<Item> = (0..self.tasks.len())
            .flat_map(|t| (0..self.split(t, SplitName::Train).len()).map(move |i| (t, i)))
            .collect();
        SplitMix64::derive(seed, "train-batches", &[epoch as u64]).shuffle(&mut items);
        items
            .chunks(batch_size)
            .filter(|c| c.len() >= 2)
            .map(|c| c.to_vec())
            .collect()
    }

    /// Build a device batch from items of one split.
    pub fn batch(&self, items: &[Item], which: SplitName, device: &Device) -> Result<Batch> {
        let per = self.dataset.image_bytes();
        let s = self.dataset.image_size;
        let mut pixels = Vec::with_capacity(items.len() * per);
        for &(t, i) in items {
            let split = self.split(t, which);
            normalize_into(
                &split.images[i * per..(i + 1) * per],
                self.normalize,
                &mut pixels,
            );
        }
        let x = Tensor::from_vec(pixels, (items.len(), super::CHANNELS, s, s), device)?;
        let groups = task_groups(
            items,
            self.tasks.len(),
            |t, i| self.split(t, which).labels[i],
            device,
        )?;
        Ok(Batch {
            x,
            groups,
            size: items.len(),
            items: items.to_vec(),
            split: which,
        })
    }
}

/// The rows and labels of every task present among `items` (in task order);
/// `label(task, sample)` gives a sample's label.
pub fn task_groups(
    items: &[Item],
    tasks: usize,
    label: impl Fn(usize, usize) -> u32,
    device: &Device,
) -> Result<Vec<TaskGroup>> {
    let mut groups = Vec::new();
    for t in 0..tasks {
        let rows: Vec<u32> = (0..items.len() as u32)
            .filter(|&r| items[r as usize].0 == t)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let labels: Vec<u32> = rows
            .iter()
            .map(|&r| label(t, items[r as usize].1))
            .collect();
        let count = rows.len();
        groups.push(TaskGroup {
            task: t,
            rows: Tensor::from_vec(rows, count, device)?,
            labels: Tensor::from_vec(labels, count, device)?,
            count,
        });
    }
    Ok(groups)
}

/// Append the network input of one `3 × H × W` image to `out`.
pub fn normalize_into(img: &[u8], normalize: Normalize, out: &mut Vec<f32>) {
    match normalize {
        Normalize::Fixed => out.extend(img.iter().map(|&p| (p as f32 / 255.0 - 0.5) / 0.25)),
        Normalize::PerImage => {
            for ch in img.chunks(img.len() / super::CHANNELS) {
                let n = ch.len() as f32;
                let mean = ch.iter().map(|&p| p as f32).sum::<f32>() / n;
                let var = ch.iter().map(|&p| (p as f32 - mean).powi(2)).sum::<f32>() / n;
                // +1 grey level keeps flat images finite.
                let inv = 1.0 / (var.sqrt() + 1.0);
                out.extend(ch.iter().map(|&p| (p as f32 - mean) * inv));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}
