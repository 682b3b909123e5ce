//! Before training on the CPU: does one training step of the profile's networks fit in the
//! memory the machine has free? A batch far too large would otherwise be killed by the
//! operating system mid-run (exit 137, no message). The estimate is the sum of the
//! networks' convolution outputs for one image (measured by running each network once on a
//! 1-image batch), times the batch, 4 bytes each, times [`FACTOR`] for what a training step
//! keeps besides (normalised and activated copies, their gradients). It is a floor more than
//! a bound; the check only refuses what cannot fit.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::data::CHANNELS;
use crate::error::{Error, Result};
use crate::model::build_backbone;
use crate::model::cost::record_convs;
use crate::model::init::SeededInit;
use crate::spec::run::ModelConfig;
use crate::spec::validate::Experiment;

/// Tensors a step holds per convolution output: the output, its normalised and activated
/// copies, and the gradients of the backward pass.
const FACTOR: u64 = 4;

/// Bytes of memory available (`MemAvailable` of /proc/meminfo); `None` where unknown.
fn available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Values of all convolution outputs of `model` for one image of side `size`.
fn activations_per_image(model: &ModelConfig, size: usize) -> Result<u64> {
    let map = VarMap::new();
    let net = build_backbone(model, SeededInit::var_builder(&map, 0, &Device::Cpu))?;
    let x = Tensor::zeros((1, CHANNELS, size, size), DType::F32, &Device::Cpu)?;
    let (r, shapes) = record_convs(|| net.forward_t(&x, false));
    r?;
    Ok(shapes.iter().map(|s| (s.d_out * s.positions) as u64).sum())
}

/// Refuse a profile whose training step cannot fit in this machine's free memory.
pub fn check_memory(exp: &Experiment, profile: &str) -> Result<()> {
    let (Some(p), Some(free)) = (exp.profiles.get(profile), available()) else {
        return Ok(());
    };
    let mut nets: Vec<(String, &ModelConfig)> = vec![("student".into(), &p.model)];
    for name in &exp.foundation {
        if let Some(f) = p.foundations.get(name) {
            nets.push((format!("foundation model `{name}`"), &f.model));
        }
    }
    for (what, model) in nets {
        let per_image = activations_per_image(model, p.image_size)?;
        let per_step = per_image * 4 * FACTOR;
        let need = per_step * p.batch_size as u64;
        if need > free {
            let fits = (free / per_step.max(1)).max(1);
            return Err(Error::input(format!(
                "{}: profile.{profile}: a training step of the {what} at batch_size {} and image_size {} needs about {:.1} GiB ({} activation values per image × {} images × 4 bytes × {FACTOR}), more than the {:.1} GiB this machine has free; set batch_size to {fits} or less in [profile.{profile}] (or run it where there is more memory)",
                exp.path.display(),
                p.batch_size,
                p.image_size,
                need as f64 / (1u64 << 30) as f64,
                per_image,
                p.batch_size,
                free as f64 / (1u64 << 30) as f64,
            )));
        }
    }
    Ok(())
}
