//! The efficiency table (supplement section D and Table 2): per method, the parameters of
//! one deployed expert, of all T experts deployed together and of the model trained, the
//! multiply-accumulates of one expert per image, and the training speed measured by the
//! runs; beside it the cost model of building per-sample low-rank experts (LoRA-style,
//! FLoRA-style and EKS conv) at the profile's own b, l, d, r and T, and whether the
//! supplement's condition Tr/(bl) + 1 ≤ r holds.
//!
//! The parameter and MAC columns come from the networks themselves, built from the
//! experiment's profile (no data, no training needed, so a paper profile has them too).
//! To tell which tensors T experts share, every variable is first set to its own random
//! values (a freshly built LoRKD expert would otherwise equal `W0`, its B being zero); a
//! tensor is counted once when every expert has it unchanged. Distillation projections
//! onto a teacher are not built (they need the teacher) and so not counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::data::registry::Registry;
use crate::data::{DataKind, CHANNELS};
use crate::error::{Error, Result};
use crate::method::transfer::TransferNet;
use crate::method::{self, BuildContext};
use crate::model::cost::{count_macs, human, record_convs, ConvShape};
use crate::model::init::SeededInit;
use crate::model::layers::batch_norm::is_buffer;
use crate::model::{build_backbone, parameter_count};
use crate::spec::catalog::Granularity;
use crate::spec::run::TransferMode;
use crate::spec::validate::{Experiment, Profile};
use crate::store::manifest::read_manifests;
use crate::store::metrics::read_metrics;
use crate::store::run_dir::RunDir;

/// One method's row.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficiencyRow {
    pub method: String,
    pub expert_params: u64,
    pub all_experts_params: u64,
    pub training_params: u64,
    /// One expert, per image.
    pub expert_macs: u64,
    /// Measured by the runs (`None` when none has finished): images per second of
    /// training, and the step time at the profile's batch size.
    pub images_per_s: Option<f64>,
    pub runs_measured: usize,
}

/// The supplement's Table 2 costs at one profile, summed over the student's groups = 1
/// convolutions (the layers that carry experts), in MACs per training step (forward).
#[derive(Debug, Clone, PartialEq)]
pub struct EksCostModel {
    pub batch: usize,
    pub tasks: usize,
    pub rank: usize,
    pub layers: Vec<ConvShape>,
    pub lora: u64,
    pub flora: u64,
    pub eks: u64,
    /// Layers where Tr/(bl) + 1 ≤ r holds.
    pub condition_holds: usize,
}

impl EksCostModel {
    pub fn new(layers: Vec<ConvShape>, batch: usize, tasks: usize, rank: usize) -> Self {
        let (b, t, r) = (batch as u64, tasks as u64, rank as u64);
        let (mut lora, mut flora, mut eks, mut holds) = (0, 0, 0, 0);
        for s in &layers {
            let (din, dout, l) = (s.d_in as u64, s.d_out as u64, s.positions as u64);
            // LoRA: X W0 plus φ(φ(X, B), A): two batched products of rank r.
            lora += b * l * din * dout + b * l * r * (din + dout);
            // FLoRA: A ∘ ((B ∘ X) W0): the base product once per rank.
            flora += r * b * l * din * dout;
            // EKS: the T merged weights W0 + B_t A_t, then one product.
            eks += t * r * din * dout + b * l * din * dout;
            if (t * r) as f64 / (b * l) as f64 + 1.0 <= r as f64 {
                holds += 1;
            }
        }
        EksCostModel {
            batch,
            tasks,
            rank,
            layers,
            lora,
            flora,
            eks,
            condition_holds: holds,
        }
    }
}

/// What `harness bench eks` measured: the options it ran with and, per form, the step
/// seconds summed over its shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct EksMeasured {
    pub source: String,
    pub description: String,
    pub forms: Vec<(String, f64)>,
}

pub struct Efficiency {
    pub experiment: String,
    pub profile: String,
    pub pretrain: String,
    pub synthetic: bool,
    pub image_size: usize,
    pub batch_size: usize,
    pub tasks: usize,
    pub rows: Vec<EfficiencyRow>,
    pub eks: Option<EksCostModel>,
}

fn params(tensors: &BTreeMap<String, Tensor>) -> u64 {
    tensors
        .iter()
        .filter(|(n, _)| !is_buffer(n))
        .map(|(_, t)| t.elem_count() as u64)
        .sum()
}

fn same(a: &Tensor, b: &Tensor) -> Result<bool> {
    if a.dims() != b.dims() {
        return Ok(false);
    }
    let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok(d == 0.0)
}

/// Sets every variable of `map` to random values of its own (only which tensors are equal
/// matters, never the values).
fn randomise(map: &VarMap, device: &Device) -> Result<()> {
    for (_, var) in map.data().lock().expect("var map").iter() {
        var.set(&Tensor::randn(0f32, 1.0, var.dims(), device)?)?;
    }
    Ok(())
}

/// Parameters of every distinct tensor of `experts` (a tensor every expert has unchanged
/// counts once).
fn distinct_params(experts: &[BTreeMap<String, Tensor>]) -> Result<u64> {
    let mut seen: BTreeMap<&str, Vec<&Tensor>> = BTreeMap::new();
    let mut total = 0;
    for e in experts {
        for (name, t) in e.iter().filter(|(n, _)| !is_buffer(n)) {
            let list = seen.entry(name).or_default();
            let mut known = false;
            for other in list.iter() {
                if same(other, t)? {
                    known = true;
                    break;
                }
            }
            if !known {
                total += t.elem_count() as u64;
                list.push(t);
            }
        }
    }
    Ok(total)
}

/// The parameter and MAC columns of `method` on the tasks `heads` of profile `p`.
fn method_columns(
    method_key: &str,
    p: &Profile,
    heads: &[(String, usize)],
    device: &Device,
) -> Result<EfficiencyRow> {
    let m = method::require(method_key)?;
    let options = p
        .method_options
        .get(method_key)
        .copied()
        .unwrap_or_default();
    // The networks trained: one for all tasks, or one per task (STL-style).
    let runs: Vec<Vec<(String, usize)>> = match m.granularity() {
        Granularity::Joint => vec![heads.to_vec()],
        Granularity::PerTask => heads.iter().map(|h| vec![h.clone()]).collect(),
    };
    let mut experts = Vec::new();
    let mut training_params = 0;
    for tasks in &runs {
        let map = VarMap::new();
        let vb = SeededInit::var_builder(&map, 0, device);
        let build = BuildContext {
            model: &p.model,
            tasks,
            options: &options,
            teacher: None,
            seed: 0,
            frozen_backbone: false,
        };
        m.build(&build, vb)?;
        randomise(&map, device)?;
        training_params += parameter_count(&map);
        let keys: Vec<String> = tasks.iter().map(|(k, _)| k.clone()).collect();
        for t in 0..keys.len() {
            experts.push(m.export_expert(&map, &keys, t, &options)?);
        }
    }
    let expert_params = params(&experts[0]);
    let all_experts_params = distinct_params(&experts)?;

    // One deployed expert's forward: the plain student (KF: plus its task network), one
    // head.
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 0, device);
    let tsn = m.expert_tsn(&p.model);
    let classes = heads[0].1;
    let net = TransferNet::new(&p.model, tsn.as_ref(), classes, TransferMode::Finetune, vb)?;
    let x = Tensor::zeros(
        (1, CHANNELS, p.image_size, p.image_size),
        DType::F32,
        device,
    )?;
    let (features, macs) = count_macs(|| net.stage_features(&x));
    let dim = features?.last().map_or(0, |f| f.dims()[1]);
    let tsn_proj = match &tsn {
        Some(cfg) => {
            let map = VarMap::new();
            let vb = SeededInit::var_builder(&map, 0, device);
            (build_backbone(cfg, vb)?.feature_dim() * dim) as u64
        }
        None => 0,
    };
    Ok(EfficiencyRow {
        method: method_key.to_string(),
        expert_params,
        all_experts_params,
        training_params,
        expert_macs: macs + (dim * classes) as u64 + tsn_proj,
        images_per_s: None,
        runs_measured: 0,
    })
}

/// Per method: the mean training throughput (images/s) of the experiment's finished
/// decomposition runs of this profile, and how many runs it averages. Epoch 1 is left out
/// where later epochs exist (it also builds caches).
fn measured_speed(
    results_dir: &Path,
    experiment: &str,
    profile: &str,
) -> Result<BTreeMap<String, (f64, usize)>> {
    let mut out: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    if !results_dir.is_dir() {
        return Ok(out);
    }
    let manifests = read_manifests(results_dir)?;
    let Some(m) = manifests
        .iter()
        .find(|m| m.experiment == experiment && m.profile == profile)
    else {
        return Ok(out);
    };
    for run_id in &m.runs {
        let path = RunDir::new(results_dir, run_id).metrics_path();
        if !path.is_file() {
            continue;
        }
        let rows = read_metrics(&path)?;
        let speeds: Vec<(u32, f64)> = rows
            .iter()
            .filter(|r| r.stage == "decompose" && r.split == "train" && r.metric == "samples_per_s")
            .map(|r| (r.epoch, r.value))
            .collect();
        let Some(method) = rows.first().map(|r| r.method.clone()) else {
            continue;
        };
        let later: Vec<f64> = speeds.iter().filter(|(e, _)| *e > 1).map(|s| s.1).collect();
        let used = if later.is_empty() {
            speeds.iter().map(|s| s.1).collect()
        } else {
            later
        };
        if used.is_empty() {
            continue;
        }
        let mean = used.iter().sum::<f64>() / used.len() as f64;
        let e = out.entry(method).or_default();
        e.0 += mean;
        e.1 += 1;
    }
    for v in out.values_mut() {
        v.0 /= v.1 as f64;
    }
    Ok(out)
}

/// The efficiency of every method of `exp`'s grid under profile `profile_name`.
pub fn efficiency(
    exp: &Experiment,
    profile_name: &str,
    registry: &Registry,
    results_dir: &Path,
) -> Result<Efficiency> {
    let p = exp.profiles.get(profile_name).ok_or_else(|| {
        Error::input(format!(
            "{}: no profile `{profile_name}`",
            exp.path.display()
        ))
    })?;
    let [pretrain] = exp.pretrain.as_slice() else {
        return Err(Error::input(format!(
            "{}: the efficiency table is about one pre-training set; grid.pretrain lists {}",
            exp.path.display(),
            exp.pretrain.len()
        )));
    };
    let entry = registry
        .dataset(pretrain)
        .ok_or_else(|| Error::input(format!("unknown data set `{pretrain}`")))?;
    let heads: Vec<(String, usize)> = entry
        .tasks
        .iter()
        .map(|t| (t.key.clone(), t.labels))
        .collect();
    let device = Device::Cpu;
    let speeds = measured_speed(results_dir, &exp.name, profile_name)?;
    let mut rows = Vec::new();
    for m in &exp.methods {
        let mut row = method_columns(m, p, &heads, &device)?;
        if let Some(&(ips, n)) = speeds.get(m) {
            row.images_per_s = Some(ips);
            row.runs_measured = n;
        }
        rows.push(row);
    }
    let eks = match p
        .method_options
        .get("lorkd")
        .and_then(|o| o.low_rank)
        .filter(|_| exp.methods.iter().any(|m| m == "lorkd"))
    {
        Some(lr) => {
            let map = VarMap::new();
            let vb = SeededInit::var_builder(&map, 0, &device);
            let net = build_backbone(&p.model, vb)?;
            let x = Tensor::zeros(
                (1, CHANNELS, p.image_size, p.image_size),
                DType::F32,
                &device,
            )?;
            let (r, shapes) = record_convs(|| net.forward_t(&x, false));
            r?;
            Some(EksCostModel::new(
                shapes,
                p.batch_size,
                heads.len(),
                lr.rank,
            ))
        }
        None => None,
    };
    Ok(Efficiency {
        experiment: exp.name.clone(),
        profile: profile_name.to_string(),
        pretrain: pretrain.clone(),
        synthetic: p.data == DataKind::Synthetic,
        image_size: p.image_size,
        batch_size: p.batch_size,
        tasks: heads.len(),
        rows,
        eks,
    })
}

fn giga(macs: u64) -> String {
    format!("{:.3}", macs as f64 / 1e9)
}

/// The efficiency tables in Markdown.
pub fn render_markdown(
    e: &Efficiency,
    display: &dyn Fn(&str) -> String,
    measured: Option<&EksMeasured>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## {} · efficiency on {} ({} tasks) · profile {}\n",
        e.experiment, e.pretrain, e.tasks, e.profile
    );
    if e.synthetic {
        let _ = writeln!(
            s,
            "> **SYNTHETIC DATA** — the speed columns come from runs on synthetic stand-ins; the parameter and MAC columns are the networks' own.\n"
        );
    }
    let _ = writeln!(
        s,
        "Students at {0}×{0} px, batch {1}. Expert: one deployed expert (its student, KF's task network, one head); all T experts: every distinct tensor of the {2} experts deployed side by side; training-time model: every parameter trained, over all runs of the method (STL-style: {2} runs), without distillation projections; MACs: one expert's forward per image (FLOPs = 2 × MACs); speed: mean images/s of the finished runs' training epochs after the first (step time at batch {1}), \"–\" when none has finished.\n",
        e.image_size, e.batch_size, e.tasks
    );
    let _ = writeln!(
        s,
        "| Method | Expert params | All T experts | Training-time model | MACs / image | Train step (ms) | Images/s | Runs |"
    );
    let _ = writeln!(s, "|:---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &e.rows {
        let (step, ips) = match r.images_per_s {
            Some(v) if v > 0.0 => (
                format!("{:.1}", 1e3 * e.batch_size as f64 / v),
                format!("{v:.1}"),
            ),
            _ => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {step} | {ips} | {} |",
            display(&r.method),
            human(r.expert_params),
            human(r.all_experts_params),
            human(r.training_params),
            human(r.expert_macs),
            r.runs_measured
        );
    }
    if let Some(k) = &e.eks {
        let positions: Vec<usize> = k.layers.iter().map(|l| l.positions).collect();
        let (lo, hi) = (
            positions.iter().min().copied().unwrap_or(0),
            positions.iter().max().copied().unwrap_or(0),
        );
        let _ = writeln!(
            s,
            "\n### Building per-sample low-rank experts (supplement Table 2) at b = {}, T = {}, r = {}\n",
            k.batch, k.tasks, k.rank
        );
        let _ = writeln!(
            s,
            "Summed over the student's {} groups = 1 convolutions (d = C_in·k² in, C_out out, l = {lo}–{hi} output positions per image), forward MACs of one training step; the paper's c₁ = c₂ = 1.\n",
            k.layers.len()
        );
        let _ = writeln!(
            s,
            "| Form | Operation | Cost (paper) | GMAC per step | vs EKS |"
        );
        let _ = writeln!(s, "|:---|:---|:---|---:|---:|");
        for (name, op, cost, v) in [
            (
                "LoRA-style",
                "XW₀ + φ(φ(X, B), A)",
                "2c₁(dblr) + c₂(bld²)",
                k.lora,
            ),
            ("FLoRA-style", "A ∘ ((B ∘ X)W₀)", "c₂(rbld²)", k.flora),
            (
                "EKS conv",
                "X(W₀ + Σ_t (BA ⊙ M)_t)",
                "Tc₂(rd²) + c₂(bld²)",
                k.eks,
            ),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {op} | {cost} | {} | {:.2}× |",
                giga(v),
                v as f64 / k.eks.max(1) as f64
            );
        }
        let _ = writeln!(
            s,
            "\nTr/(bl) + 1 ≤ r (EKS cheaper than FLoRA) holds at {} of {} layers (at l = {lo}: Tr/(bl) + 1 = {:.3}, r = {}).",
            k.condition_holds,
            k.layers.len(),
            (k.tasks * k.rank) as f64 / (k.batch * lo.max(1)) as f64 + 1.0,
            k.rank
        );
        match measured {
            Some(m) => {
                let _ = writeln!(
                    s,
                    "\nMeasured (`harness bench eks`, {}; {}): training step (forward + backward) of the three forms kdbench implements, summed over its shapes:\n",
                    m.source, m.description
                );
                let _ = writeln!(s, "| Form | Step (ms) |");
                let _ = writeln!(s, "|:---|---:|");
                for (form, secs) in &m.forms {
                    let _ = writeln!(s, "| {form} | {:.2} |", secs * 1e3);
                }
                let _ = writeln!(
                    s,
                    "\nkdbench has no FLoRA-style form (its broadcasting does not carry over to convolutions, supplement section D), so FLoRA is analytic only."
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "\nMeasured times of the forms: run `harness bench eks --json results/bench/eks.json` (or pass --eks-bench FILE) and render again."
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_model_matches_the_supplement_formulas() {
        // One square layer, d = 64, l = 16, b = 32, T = 10, r = 4.
        let layer = ConvShape {
            d_in: 64,
            d_out: 64,
            positions: 16,
        };
        let k = EksCostModel::new(vec![layer], 32, 10, 4);
        let (d, l, b, t, r) = (64u64, 16u64, 32u64, 10u64, 4u64);
        assert_eq!(k.lora, 2 * d * b * l * r + b * l * d * d);
        assert_eq!(k.flora, r * b * l * d * d);
        assert_eq!(k.eks, t * r * d * d + b * l * d * d);
        // 40/512 + 1 ≤ 4 holds; at b = 1, l = 1: 40 + 1 > 4.
        assert_eq!(k.condition_holds, 1);
        let tiny = ConvShape {
            positions: 1,
            ..layer
        };
        assert_eq!(EksCostModel::new(vec![tiny], 1, 10, 4).condition_holds, 0);
        // The supplement's ratio: FLoRA / EKS = rbld² / (Trd² + bld²).
        let ratio = k.flora as f64 / k.eks as f64;
        assert!((ratio - (4.0 * 512.0) / (40.0 + 512.0)).abs() < 1e-12);
    }
}
