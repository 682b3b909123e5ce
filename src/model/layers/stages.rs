//! Where a convolutional network's stages end, and their globally pooled outputs: KF's
//! InfoMax matches a teacher's stages to its student's (see [`crate::model::Backbone::stage_features_t`]).

use candle_core::{Result, Tensor};

/// The stage layout of a network built from a flat list of blocks.
pub struct Stages {
    /// Index of every stage's last block.
    ends: Vec<usize>,
    /// Width of every stage's pooled output.
    dims: Vec<usize>,
}

impl Stages {
    /// From the blocks per stage and the stages' output widths.
    pub fn new(depths: &[usize], dims: Vec<usize>) -> Self {
        let ends = depths
            .iter()
            .scan(0, |end, d| {
                *end += d;
                Some(*end)
            })
            .filter(|&end| end > 0)
            .map(|end| end - 1)
            .collect();
        Self { ends, dims }
    }

    pub fn dims(&self) -> Vec<usize> {
        self.dims.clone()
    }

    /// After block `i` of `blocks` gave `y`: keep its pooled output in `out` (when
    /// collecting) if a stage other than the last ends there. The last stage's output is the
    /// network's own, pooled after whatever follows the blocks.
    pub fn tap(
        &self,
        i: usize,
        blocks: usize,
        y: &Tensor,
        out: &mut Option<&mut Vec<Tensor>>,
    ) -> Result<()> {
        if let Some(out) = out.as_deref_mut() {
            if self.ends.contains(&i) && i + 1 < blocks {
                out.push(y.mean((2, 3))?);
            }
        }
        Ok(())
    }

    /// Runs `forward` (which taps every block and returns the pooled output) collecting the
    /// stages' pooled outputs, the output last.
    pub fn collect(
        &self,
        forward: impl FnOnce(Option<&mut Vec<Tensor>>) -> Result<Tensor>,
    ) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(self.dims.len());
        let pooled = forward(Some(&mut out))?;
        out.push(pooled);
        Ok(out)
    }
}
