//! `harness predict`: run an exported expert on images and print one CSV row per image
//! (input, predicted class, its probability, and every class probability).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::inputs::read_inputs;
use super::PlainExpert;
use crate::data::batch::normalize_into;
use crate::data::CHANNELS;
use crate::error::Result;

/// Images per forward pass.
const BATCH: usize = 64;

pub struct Prediction {
    pub input: String,
    pub class: usize,
    pub probabilities: Vec<f32>,
}

/// Predictions of the expert at `model` for every input.
pub fn predict(
    model: &Path,
    inputs: &[PathBuf],
    key: Option<&str>,
) -> Result<(PlainExpert, Vec<Prediction>)> {
    let device = Device::Cpu;
    let expert = PlainExpert::load(model, &device)?;
    let size = expert.info.image_size;
    let images = read_inputs(inputs, key, size)?;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let mut pixels = Vec::with_capacity(chunk.len() * CHANNELS * size * size);
        for img in chunk {
            normalize_into(&img.pixels, expert.info.normalize, &mut pixels);
        }
        let x = Tensor::from_vec(pixels, (chunk.len(), CHANNELS, size, size), &device)?;
        let probs = candle_nn::ops::softmax_last_dim(&expert.logits(&x)?)?.to_vec2::<f32>()?;
        for (img, p) in chunk.iter().zip(probs) {
            let class = p
                .iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > p[best] { i } else { best });
            out.push(Prediction {
                input: img.name.clone(),
                class,
                probabilities: p,
            });
        }
    }
    Ok((expert, out))
}

/// CSV: `input,class,probability,p0,p1,…`.
pub fn render_csv(expert: &PlainExpert, preds: &[Prediction]) -> String {
    let mut s = String::from("input,class,probability");
    for c in 0..expert.info.classes {
        let _ = write!(s, ",p{c}");
    }
    s.push('\n');
    for p in preds {
        let _ = write!(
            s,
            "{},{},{:.6}",
            csv_field(&p.input),
            p.class,
            p.probabilities[p.class]
        );
        for v in &p.probabilities {
            let _ = write!(s, ",{v:.6}");
        }
        s.push('\n');
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
