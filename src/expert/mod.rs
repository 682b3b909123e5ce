//! Standalone experts: the file `harness export` writes and `harness predict` runs.
//!
//! An expert file is a safetensors file holding a plain student (`backbone.*`, the names of
//! the architecture's own code, torchvision-style) and one linear head (`head.weight`,
//! `head.bias`), plus a JSON description under the metadata key `kdbench`: the
//! architecture, input size and normalisation needed to run it, the task and its classes,
//! and where it came from, including whether its training data were synthetic.

pub mod export;
pub mod inputs;
pub mod predict;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Module, Tensor};
use candle_nn::{Linear, VarMap};
use serde::{Deserialize, Serialize};

use crate::data::settings::Normalize;
use crate::data::CHANNELS;
use crate::error::{Error, Result};
use crate::model::cost::{count_macs, Cost};
use crate::model::init::SeededInit;
use crate::model::{build_backbone, parameter_count, weights, Backbone};
use crate::spec::run::ModelConfig;
use crate::util::fs::replace_atomically;

/// Version tag of the file layout.
pub const FORMAT: &str = "kdbench-expert/1";
const METADATA_KEY: &str = "kdbench";

/// What an expert file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpertInfo {
    pub format: String,
    pub run_id: String,
    pub experiment: String,
    pub method: String,
    pub pretrain: String,
    pub task: String,
    pub classes: usize,
    pub model: ModelConfig,
    pub image_size: usize,
    pub normalize: Normalize,
    /// `synthetic` or `real`: synthetic experts are labelled as such wherever they are used.
    pub data_kind: String,
    pub code_version: String,
    /// KF experts only: the task-specific network added to the student (`tsn.*`, projected
    /// by `tsn_proj.*`); the logits are head(student(x) + tsn_proj(tsn(x))).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsn: Option<ModelConfig>,
}

/// A plain student and one head: an expert as a standalone network (KF: plus its
/// task-specific network).
pub struct PlainExpert {
    backbone: Box<dyn Backbone>,
    tsn: Option<(Box<dyn Backbone>, Linear)>,
    head: Linear,
    pub info: ExpertInfo,
    /// Trainable parameters (batch-norm running statistics excluded).
    pub params: u64,
}

type Network = (
    VarMap,
    Box<dyn Backbone>,
    Option<(Box<dyn Backbone>, Linear)>,
    Linear,
);

/// Variables of the expert network `info` describes, freshly initialised.
fn plain_network(info: &ExpertInfo, device: &Device) -> Result<Network> {
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 0, device);
    let backbone = build_backbone(&info.model, vb.pp("backbone"))?;
    let dim = backbone.feature_dim();
    let tsn = match &info.tsn {
        Some(cfg) => {
            let net = build_backbone(cfg, vb.pp("tsn"))?;
            let proj = candle_nn::linear(net.feature_dim(), dim, vb.pp("tsn_proj"))?;
            Some((net, proj))
        }
        None => None,
    };
    let head = candle_nn::linear(dim, info.classes, vb.pp("head"))?;
    Ok((map, backbone, tsn, head))
}

impl PlainExpert {
    /// The expert made of exactly `tensors` (every one used, every variable set).
    pub fn from_tensors(
        tensors: &BTreeMap<String, Tensor>,
        info: ExpertInfo,
        source: &str,
        device: &Device,
    ) -> Result<PlainExpert> {
        let (map, backbone, tsn, head) = plain_network(&info, device)?;
        weights::assign(&map, tensors, source)?;
        Ok(PlainExpert {
            backbone,
            tsn,
            head,
            params: parameter_count(&map),
            info,
        })
    }

    /// Read an expert file.
    pub fn load(path: &Path, device: &Device) -> Result<PlainExpert> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::input(format!(
                "{}: no such expert file; write one with `harness export RUN_ID --task T --out FILE`",
                path.display()
            )),
            _ => Error::io(path, e),
        })?;
        let not_expert = |why: String| {
            Error::input(format!(
                "{}: not a kdbench expert file ({why}); write one with `harness export RUN_ID --task T --out FILE`",
                path.display()
            ))
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| not_expert(e.to_string()))?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| not_expert(format!("no `{METADATA_KEY}` metadata")))?;
        let info: ExpertInfo = serde_json::from_str(json).map_err(|e| not_expert(e.to_string()))?;
        if info.format != FORMAT {
            return Err(not_expert(format!(
                "format `{}`, this build reads `{FORMAT}`",
                info.format
            )));
        }
        let tensors: BTreeMap<String, Tensor> =
            candle_core::safetensors::load_buffer(&bytes, device)?
                .into_iter()
                .collect();
        Self::from_tensors(&tensors, info, &path.display().to_string(), device)
    }

    /// Logits of a batch of normalised images.
    pub fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut f = self.backbone.forward_t(x, false)?;
        if let Some((net, proj)) = &self.tsn {
            let (out, inp) = proj.weight().dims2()?;
            crate::model::cost::record_macs((x.dim(0)? * out * inp) as u64);
            f = (f + proj.forward(&net.forward_t(x, false)?)?)?;
        }
        let (classes, dim) = self.head.weight().dims2()?;
        crate::model::cost::record_macs((f.dim(0)? * classes * dim) as u64);
        self.head.forward(&f)
    }

    /// Parameters and multiply-accumulates per image.
    pub fn cost(&self, device: &Device) -> Result<Cost> {
        let s = self.info.image_size;
        let x = Tensor::zeros((1, CHANNELS, s, s), candle_core::DType::F32, device)?;
        let (r, macs) = count_macs(|| self.logits(&x));
        r?;
        Ok(Cost {
            params: self.params,
            macs,
        })
    }
}

/// Parameters of the plain student of `info`'s architecture with one head, freshly built:
/// what an expert must have to add nothing at inference.
pub fn plain_student_params(info: &ExpertInfo, device: &Device) -> Result<u64> {
    let plain = ExpertInfo {
        tsn: None,
        ..info.clone()
    };
    Ok(parameter_count(&plain_network(&plain, device)?.0))
}

/// Write an expert file atomically.
pub fn write(path: &Path, tensors: &BTreeMap<String, Tensor>, info: &ExpertInfo) -> Result<()> {
    let json = serde_json::to_string(info).map_err(|e| Error::Failed(e.to_string()))?;
    let meta = HashMap::from([(METADATA_KEY.to_string(), json)]);
    let data: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    replace_atomically(path, |tmp| {
        safetensors::serialize_to_file(data, Some(meta), tmp).map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use candle_nn::VarMap;

    use super::*;
    use crate::method::{self, BuildContext};
    use crate::model::layers::lowrank::EksForm;
    use crate::spec::run::{Arch, ModelConfig, Stem};

    fn info(model: &ModelConfig, classes: usize) -> ExpertInfo {
        ExpertInfo {
            format: FORMAT.into(),
            run_id: "test".into(),
            experiment: "test".into(),
            method: "lorkd".into(),
            pretrain: "medmnist".into(),
            task: "b".into(),
            classes,
            model: model.clone(),
            image_size: 12,
            normalize: Normalize::PerImage,
            data_kind: "synthetic".into(),
            code_version: "test".into(),
            tsn: None,
        }
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
        export::relative_difference(a, b).unwrap()
    }

    /// A LoRKD student with non-zero experts: its merged, exported expert for task t gives
    /// the unmerged expert's logits (reference and LoRA-style forms) within 1e-4 relative,
    /// with exactly the plain student's parameter count; and the experts matter (task t's
    /// logits differ from another task's expert on the same images).
    #[test]
    fn merged_expert_equals_unmerged_with_plain_parameter_count() {
        let dev = Device::Cpu;
        let students = [
            ModelConfig::conv(Arch::Resnet, &[8, 16], &[1, 1], Stem::Cifar),
            ModelConfig::conv(Arch::ShuffleNetV2, &[8, 16, 32, 24], &[1, 2], Stem::Cifar),
            ModelConfig::conv(Arch::ResnetBottleneck, &[4, 8], &[1, 1], Stem::Imagenet),
        ];
        let lorkd = method::lookup("lorkd").unwrap();
        let mut options = lorkd.default_options();
        options.kd = None;
        let tasks = vec![
            ("a".to_string(), 3),
            ("b".to_string(), 5),
            ("c".to_string(), 2),
        ];
        let keys: Vec<String> = tasks.iter().map(|(k, _)| k.clone()).collect();
        for model in &students {
            let map = VarMap::new();
            let vb = SeededInit::var_builder(&map, 7, &dev);
            let net = lorkd
                .build(
                    &BuildContext {
                        model,
                        tasks: &tasks,
                        options: &options,
                        teacher: None,
                        seed: 0,
                        frozen_backbone: false,
                    },
                    vb,
                )
                .unwrap();
            for (name, var) in map.data().lock().unwrap().iter() {
                if name.contains("lora_B") {
                    var.set(&Tensor::randn(0f32, 0.05, var.shape(), &dev).unwrap())
                        .unwrap();
                }
            }
            let x = Tensor::randn(0f32, 1.0, (4, 3, 12, 12), &dev).unwrap();
            let tensors = lorkd.export_expert(&map, &keys, 1, &options).unwrap();
            let plain = PlainExpert::from_tensors(&tensors, info(model, 5), "test", &dev).unwrap();
            let merged = plain.logits(&x).unwrap();
            for form in [EksForm::Reference, EksForm::LoraStyle] {
                net.set_eks_form(form);
                let unmerged = net.expert_logits(&x, 1).unwrap();
                let d = max_rel(&merged, &unmerged);
                assert!(d < 1e-4, "{}: {form:?} differs by {d}", model.arch);
            }
            assert_eq!(
                plain.params,
                plain_student_params(&plain.info, &dev).unwrap()
            );
            // Task c's expert with b's head: different convolutions, different logits.
            let other = lorkd.export_expert(&map, &keys, 2, &options).unwrap();
            let mut swapped = other.clone();
            swapped.insert("head.weight".into(), tensors["head.weight"].clone());
            swapped.insert("head.bias".into(), tensors["head.bias"].clone());
            let c = PlainExpert::from_tensors(&swapped, info(model, 5), "test", &dev).unwrap();
            assert!(
                max_rel(&c.logits(&x).unwrap(), &merged) > 1e-3,
                "{}",
                model.arch
            );
        }
    }

    #[test]
    fn expert_files_round_trip_and_strangers_are_refused() {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir().unwrap();
        let model = ModelConfig::conv(Arch::Resnet, &[4], &[1], Stem::Cifar);
        let (map, _, _, _) = plain_network(&info(&model, 5), &dev).unwrap();
        let tensors: BTreeMap<String, Tensor> = map
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let path = dir.path().join("e.safetensors");
        write(&path, &tensors, &info(&model, 5)).unwrap();
        let back = PlainExpert::load(&path, &dev).unwrap();
        assert_eq!(back.info, info(&model, 5));
        assert_eq!(back.params, parameter_count(&map));
        let plain_file = dir.path().join("plain.safetensors");
        let plain: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&plain, &plain_file).unwrap();
        let err = match PlainExpert::load(&plain_file, &dev) {
            Ok(_) => panic!("a file without metadata was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("not a kdbench expert file"), "{err}");
    }
}
