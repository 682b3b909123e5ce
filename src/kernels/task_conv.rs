//! One convolution (groups = 1) over a batch whose samples use different weights: sample
//! `i` is convolved with weight `slots[i]` of a stack. It is the merged form of LoRKD's EKS
//! convolution (each present task's `W0 + ΔW_t`) as a single candle op, so that a mixed
//! batch costs about what one plain convolution of it costs. Done as one candle op per task
//! instead (select the task's samples, convolve, put the rows back), a batch of 64 over 10
//! tasks made ten small convolutions of about six samples each, plus the copies and the
//! backward passes of the selects and of the concatenation.
//!
//! The samples of each weight form a segment, convolved by [`FusedConv`] on its own; the
//! segments run one after the other, each split between the threads. A segment whose
//! samples are not adjacent in the batch is gathered into a buffer first. Each segment's
//! outputs and gradients are exactly those [`FusedConv`] computes for that segment alone,
//! so the op gives the same bits as the per-task form, whatever the thread count.

use std::sync::Arc;

use candle_core::{Layout, Result, Shape};

use super::buffers::output_f32;
use super::conv::{ConvGeometry, FusedConv};
use super::slice_conv::{ConvGrads, SliceConv};
use crate::util::parallel;

/// `x (B, C, H, W)` convolved sample by sample with a stack of `S` weights `(S·Cout, C·k·k)`
/// (weight `s` is rows `s·Cout..(s+1)·Cout`): sample `i` with weight `slots[i]`. Run alone
/// as [`super::slice_conv::SliceConvOp`] or inside the fused convolution + batch norm.
pub struct TaskConv {
    pub geometry: ConvGeometry,
    pub cout: usize,
    pub slots: Arc<Vec<usize>>,
}

/// The batch rows that use one weight, in batch order.
struct Segment {
    slot: usize,
    rows: Vec<usize>,
}

impl Segment {
    /// Whether the rows are adjacent (`first, first + 1, …`): then they are read in place.
    fn adjacent(&self) -> bool {
        self.rows.windows(2).all(|p| p[1] == p[0] + 1)
    }

    /// The segment's part of a batch tensor with `per_row` values per sample: a slice of
    /// `data` when its rows are adjacent, else a gathered copy.
    fn gather<'a>(&self, data: &'a [f32], per_row: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        if self.adjacent() {
            return &data[self.rows[0] * per_row..][..self.rows.len() * per_row];
        }
        buf.clear();
        for &r in &self.rows {
            buf.extend_from_slice(&data[r * per_row..][..per_row]);
        }
        buf
    }
}

impl TaskConv {
    /// The batch's segments, in slot order (slots used by no sample have none).
    fn segments(&self, slot_count: usize) -> Result<Vec<Segment>> {
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); slot_count];
        for (i, &s) in self.slots.iter().enumerate() {
            match rows.get_mut(s) {
                Some(r) => r.push(i),
                None => candle_core::bail!(
                    "task conv: sample {i} uses weight {s} of a stack of {slot_count}"
                ),
            }
        }
        Ok(rows
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(slot, rows)| Segment { slot, rows })
            .collect())
    }

    /// Sizes of `x (B, C, H, W)` and the stack `(S·Cout, C·k·k)`, checked.
    fn dims(&self, xl: &Layout, wl: &Layout) -> Result<Dims> {
        let (b, c, h, w) = xl.shape().dims4()?;
        let (rows, ckk) = wl.shape().dims2()?;
        let cout = self.cout;
        if cout == 0 || rows % cout != 0 {
            candle_core::bail!(
                "task conv: a weight stack of {rows} rows is not whole {cout}-row weights"
            );
        }
        let slots = rows / cout;
        if self.slots.len() != b {
            candle_core::bail!(
                "task conv: {} weight choices for a batch of {b}",
                self.slots.len()
            );
        }
        let y = FusedConv(self.geometry).out_shape(
            &Layout::contiguous((1, c, h, w)),
            &Layout::contiguous((cout, ckk)),
        )?;
        let (_, _, ho, wo) = y.dims4()?;
        Ok(Dims {
            b,
            chw: (c, h, w),
            slots,
            cout,
            ckk,
            out_hw: (ho, wo),
        })
    }
}

struct Dims {
    b: usize,
    chw: (usize, usize, usize),
    slots: usize,
    cout: usize,
    ckk: usize,
    out_hw: (usize, usize),
}

impl Dims {
    fn x_row(&self) -> usize {
        self.chw.0 * self.chw.1 * self.chw.2
    }

    fn y_row(&self) -> usize {
        self.cout * self.out_hw.0 * self.out_hw.1
    }

    fn x_layout(&self, n: usize) -> Layout {
        Layout::contiguous((n, self.chw.0, self.chw.1, self.chw.2))
    }

    fn w_layout(&self) -> Layout {
        Layout::contiguous((self.cout, self.ckk))
    }

    fn weight<'a>(&self, w: &'a [f32], slot: usize) -> &'a [f32] {
        &w[slot * self.cout * self.ckk..][..self.cout * self.ckk]
    }
}

/// The segments' results (`parts[k]` for `segments[k]`, `per_row` values per sample) put
/// back in batch order, the rows split between the threads (one thread copying them all
/// was a twentieth of a quickstart LoRKD run with the other idle).
fn in_batch_order(segments: &[Segment], parts: &[&[f32]], b: usize, per_row: usize) -> Vec<f32> {
    let mut owner = vec![(0, 0); b];
    for (k, seg) in segments.iter().enumerate() {
        for (j, &r) in seg.rows.iter().enumerate() {
            owner[r] = (k, j);
        }
    }
    // SAFETY: every sample belongs to one segment (see `TaskConv::segments`), so every row
    // is copied in below.
    let mut out = unsafe { output_f32(b * per_row) };
    parallel::for_each_chunk_mut(&mut out, per_row.max(1), |r, row| {
        let (k, j) = owner[r];
        row.copy_from_slice(&parts[k][j * per_row..][..per_row]);
    });
    out
}

impl SliceConv for TaskConv {
    fn name(&self) -> &'static str {
        "task-conv2d"
    }

    fn out_shape(&self, xl: &Layout, wl: &Layout) -> Result<Shape> {
        let d = self.dims(xl, wl)?;
        Ok(Shape::from((d.b, d.cout, d.out_hw.0, d.out_hw.1)))
    }

    fn forward_slices(&self, x: &[f32], xl: &Layout, w: &[f32], wl: &Layout) -> Result<Vec<f32>> {
        let d = self.dims(xl, wl)?;
        let conv = FusedConv(self.geometry);
        let segments = self.segments(d.slots)?;
        // Segments one after the other, each convolution split between the threads: with
        // the segments in parallel instead (each convolution on one thread) the LoRKD
        // bench's student ran at 236 img/s against 275 (2-core AMD EPYC, AVX-512).
        let parts = (0..segments.len())
            .map(|k| {
                let seg = &segments[k];
                let mut buf = Vec::new();
                let xs = seg.gather(x, d.x_row(), &mut buf);
                let n = seg.rows.len();
                conv.forward_slices(xs, &d.x_layout(n), d.weight(w, seg.slot), &d.w_layout())
            })
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<&[f32]> = parts.iter().map(Vec::as_slice).collect();
        Ok(in_batch_order(&segments, &parts, d.b, d.y_row()))
    }

    fn backward_slices(
        &self,
        (x, xl): (&[f32], &Layout),
        (w, wl): (&[f32], &Layout),
        dy: &[f32],
        want_dx: bool,
        want_dw: bool,
    ) -> Result<ConvGrads> {
        let d = self.dims(xl, wl)?;
        let segments = self.segments(d.slots)?;
        let conv = FusedConv(self.geometry);
        let parts = (0..segments.len())
            .map(|k| {
                let seg = &segments[k];
                let (mut xb, mut gb) = (Vec::new(), Vec::new());
                let xs = seg.gather(x, d.x_row(), &mut xb);
                let dys = seg.gather(dy, d.y_row(), &mut gb);
                let sxl = d.x_layout(seg.rows.len());
                let ws = d.weight(w, seg.slot);
                conv.backward_slices((xs, &sxl), (ws, &d.w_layout()), dys, want_dx, want_dw)
            })
            .collect::<Result<Vec<_>>>()?;
        let (dxs, dws): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        let dx = match dxs
            .iter()
            .map(|p| p.as_deref())
            .collect::<Option<Vec<&[f32]>>>()
        {
            Some(parts) if want_dx => Some(in_batch_order(&segments, &parts, d.b, d.x_row())),
            _ => None,
        };
        let dw = want_dw.then(|| {
            let size = d.cout * d.ckk;
            let mut by_slot = vec![None; d.slots];
            for (seg, part) in segments.iter().zip(&dws) {
                by_slot[seg.slot] = part.as_deref();
            }
            let mut dw = vec![0f32; d.slots * size];
            // Weights no sample used keep a zero gradient.
            parallel::for_each_chunk_mut(&mut dw, size.max(1), |s, slot| {
                if let Some(part) = by_slot[s] {
                    slot.copy_from_slice(part);
                }
            });
            dw
        });
        Ok((dx, dw))
    }
}
