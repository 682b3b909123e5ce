//! The analysis stage: the T×T task-similarity matrices of one decomposition (supplement
//! Figure 5). Each task's expert network is rebuilt from its finished source run (LoRKD:
//! the merged `W0 + ΔW_t`; KF: CKN + TSN_t; an MTL-style method: its one shared encoder;
//! STL: each task's own student), run in evaluation mode on test images, and its globally
//! pooled features at the end of every stage are compared by CKA ([`super::cka`]).
//!
//! Our protocol, as the paper gives none (README "CKA protocol"): n test images per task,
//! the least of `samples` and every task's test split, chosen by a seeded shuffle of the
//! split (seed: the run's seed and the task index), so every expert and protocol sees the
//! same rows. `cross-task` cell (i, j) compares expert i on task i's n images with expert
//! j on task j's n images, row k with row k; `same-probe` cell (i, j) compares expert i
//! and expert j on task i's images. Layers: `stage1` … `stageK-1` and `final`, the pooled
//! output of the last stage that the heads read.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;

use super::cka::{linear_cka, minibatch_cka, FeatureMatrix};
use crate::data::batch::{Item, SplitName, TaskView};
use crate::data::registry::Registry;
use crate::data::source;
use crate::error::{Error, Result};
use crate::method::expert_source::{load_weights, FinishedRun};
use crate::method::transfer::TransferNet;
use crate::method::{self};
use crate::model::init::SeededInit;
use crate::spec::catalog::TransferRule;
use crate::spec::run::{AnalysisRef, CkaEstimator, CkaProtocol, RunSpec, TransferMode};
use crate::store::cka::{write_cka, CkaRow};
use crate::store::run_dir::RunDir;
use crate::util::rng::SplitMix64;

/// What an analysis run reads besides its spec.
pub struct AnalysisInputs<'a> {
    /// The experiment whose plan runs it (labels the rows, as for metrics).
    pub experiment: &'a str,
    pub registry: &'a Registry,
    pub data_dir: &'a Path,
    pub results_dir: &'a Path,
    pub device: &'a Device,
}

/// Names of the layers of a network with `stages` stages: `stage1` … and `final`.
pub fn layer_names(stages: usize) -> Vec<String> {
    (1..stages)
        .map(|s| format!("stage{s}"))
        .chain(std::iter::once("final".to_string()))
        .collect()
}

/// Which network is task t's expert: (source run id, expert task or `None` for the shared
/// network). Tasks that share one network (an MTL encoder) share its key, so it is built
/// and run once.
type ExpertKey = (String, Option<String>);

/// Features of one network on one task's images: one matrix per layer.
type LayerFeatures = Vec<FeatureMatrix>;

struct Experts<'a> {
    spec: &'a RunSpec,
    inputs: &'a AnalysisInputs<'a>,
    runs: BTreeMap<String, FinishedRun>,
    nets: BTreeMap<ExpertKey, TransferNet>,
}

impl Experts<'_> {
    fn key(&self, a: &AnalysisRef, t: usize) -> Result<ExpertKey> {
        let task = &self.spec.tasks[t];
        let expert = match method::require(&self.spec.method)?.transfer_rule() {
            TransferRule::SharedEncoder => None,
            TransferRule::MatchingStudent | TransferRule::ExpertOrShared => Some(task.clone()),
        };
        Ok((a.sources[t].clone(), expert))
    }

    /// The network of `key`, built and loaded on first use.
    fn net(&mut self, key: &ExpertKey) -> Result<&TransferNet> {
        if !self.nets.contains_key(key) {
            let (run_id, expert) = key;
            if !self.runs.contains_key(run_id) {
                let run = FinishedRun::open(self.inputs.results_dir, run_id, self.inputs.device)?;
                self.runs.insert(run_id.clone(), run);
            }
            let weights = self.runs[run_id].expert_weights(expert.as_deref())?;
            let tsn = match expert {
                Some(_) => method::require(&self.spec.method)?.expert_tsn(&self.spec.model),
                None => None,
            };
            let map = VarMap::new();
            let vb = SeededInit::var_builder(&map, 0, self.inputs.device);
            // The head is never read: features come from before it.
            let net = TransferNet::new(
                &self.spec.model,
                tsn.as_ref(),
                1,
                TransferMode::Finetune,
                vb,
            )?;
            load_weights(&map, &weights, run_id)?;
            self.nets.insert(key.clone(), net);
        }
        Ok(&self.nets[key])
    }
}

/// The n rows of every task: a seeded shuffle of its test split, first n.
fn probe_rows(spec: &RunSpec, view: &TaskView, n: usize) -> Vec<Vec<Item>> {
    (0..view.tasks.len())
        .map(|t| {
            let mut rows: Vec<Item> = (0..view.split(t, SplitName::Test).len())
                .map(|i| (t, i))
                .collect();
            SplitMix64::derive(spec.seed, "cka-rows", &[t as u64]).shuffle(&mut rows);
            rows.truncate(n);
            rows
        })
        .collect()
}

/// Pooled per-layer features of `net` on `rows`, in evaluation batches.
fn features(
    net: &TransferNet,
    view: &TaskView,
    rows: &[Item],
    batch: usize,
    device: &Device,
) -> Result<LayerFeatures> {
    let mut layers: Vec<(usize, Vec<f32>)> = Vec::new();
    for chunk in rows.chunks(batch.max(1)) {
        let b = view.batch(chunk, SplitName::Test, device)?;
        let stages = net.stage_features(&b.x)?;
        if layers.is_empty() {
            layers = stages.iter().map(|s| (s.dims()[1], Vec::new())).collect();
        }
        for ((_, values), s) in layers.iter_mut().zip(stages) {
            values.extend(s.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    layers
        .into_iter()
        .map(|(d, values)| FeatureMatrix::from_f32(rows.len(), d, &values))
        .collect()
}

fn estimate(a: &AnalysisRef, x: &FeatureMatrix, y: &FeatureMatrix) -> Result<f64> {
    match a.estimator {
        CkaEstimator::Linear => linear_cka(x, y),
        CkaEstimator::Minibatch => minibatch_cka(x, y, a.batch),
    }
}

/// Run analysis `spec`: write its `cka.parquet` and give the progress line's summary.
pub fn run(spec: &RunSpec, inputs: &AnalysisInputs, dir: &RunDir) -> Result<String> {
    let a = spec.analysis.as_ref().ok_or_else(|| {
        Error::input(format!(
            "analysis run {} has no `analysis` settings in its spec",
            spec.run_id()
        ))
    })?;
    if a.sources.len() != spec.tasks.len() {
        return Err(Error::input(format!(
            "analysis run {} names {} source runs for {} tasks",
            spec.run_id(),
            a.sources.len(),
            spec.tasks.len()
        )));
    }
    let data = source::load(inputs.registry, &spec.data, inputs.data_dir)?;
    let (task_idx, _) = data.task_heads(&spec.tasks)?;
    let view = TaskView {
        dataset: &data,
        tasks: task_idx,
        normalize: spec.data.normalize,
    };
    let t_count = spec.tasks.len();
    let smallest = (0..t_count)
        .map(|t| view.split(t, SplitName::Test).len())
        .min()
        .unwrap_or(0);
    let n = a.samples.min(smallest);
    if n < 4 {
        return Err(Error::input(format!(
            "CKA needs at least 4 test images per task; the smallest test split of {} has {smallest}",
            spec.pretrain
        )));
    }
    let rows = probe_rows(spec, &view, n);
    let mut experts = Experts {
        spec,
        inputs,
        runs: BTreeMap::new(),
        nets: BTreeMap::new(),
    };
    let keys: Vec<ExpertKey> = (0..t_count)
        .map(|t| experts.key(a, t))
        .collect::<Result<_>>()?;
    let batch = spec.train.eval_batch_size;
    // Expert t on its own task's images: every protocol's reference side.
    let mut own: Vec<LayerFeatures> = Vec::with_capacity(t_count);
    for t in 0..t_count {
        let net = experts.net(&keys[t])?;
        own.push(features(net, &view, &rows[t], batch, inputs.device)?);
    }
    let layers = layer_names(own[0].len());
    let mut cells: Vec<(CkaProtocol, usize, usize, usize, f64)> = Vec::new();
    for &protocol in &a.protocols {
        match protocol {
            CkaProtocol::CrossTask => {
                for (l, _) in layers.iter().enumerate() {
                    for i in 0..t_count {
                        for j in i..t_count {
                            let v = estimate(a, &own[i][l], &own[j][l])?;
                            cells.push((protocol, l, i, j, v));
                            if i != j {
                                cells.push((protocol, l, j, i, v));
                            }
                        }
                    }
                }
            }
            CkaProtocol::SameProbe => {
                for i in 0..t_count {
                    // Every distinct network on task i's images, once.
                    let mut probed: BTreeMap<&ExpertKey, LayerFeatures> = BTreeMap::new();
                    for key in &keys {
                        if key != &keys[i] && !probed.contains_key(key) {
                            let net = experts.net(key)?;
                            probed
                                .insert(key, features(net, &view, &rows[i], batch, inputs.device)?);
                        }
                    }
                    for (l, _) in layers.iter().enumerate() {
                        for (j, key) in keys.iter().enumerate() {
                            let other = probed.get(key).map_or(&own[i][l], |f| &f[l]);
                            let v = estimate(a, &own[i][l], other)?;
                            cells.push((protocol, l, i, j, v));
                        }
                    }
                }
            }
        }
    }
    let out: Vec<CkaRow> = cells
        .iter()
        .map(|&(protocol, l, i, j, value)| CkaRow {
            experiment: inputs.experiment.to_string(),
            run_id: spec.run_id(),
            method: spec.method.clone(),
            foundation: spec.foundation.clone(),
            pretrain: spec.pretrain.clone(),
            seed: spec.seed,
            task_i: spec.tasks[i].clone(),
            task_j: spec.tasks[j].clone(),
            value,
            protocol: protocol.as_str().to_string(),
            layer: layers[l].clone(),
            n: n as u64,
            estimator: match a.estimator {
                CkaEstimator::Linear => "linear",
                CkaEstimator::Minibatch => "minibatch",
            }
            .to_string(),
            data_kind: spec.data.kind.as_str().to_string(),
            profile: spec.profile.clone(),
            code_version: spec.code_version.clone(),
        })
        .collect();
    write_cka(&dir.cka_path(), &out)?;
    Ok(summary(&out))
}

/// Mean off-diagonal CKA of the final layer, per protocol, for the progress line.
fn summary(rows: &[CkaRow]) -> String {
    let mut by: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.layer == "final" && r.task_i != r.task_j)
    {
        let e = by.entry(&r.protocol).or_default();
        e.0 += r.value;
        e.1 += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(p, (s, c))| format!("{p} {:.3}", s / *c as f64))
        .collect();
    format!("mean off-diagonal CKA (final) {}", parts.join(", "))
}
