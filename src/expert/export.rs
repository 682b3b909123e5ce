//! `harness export`: cut one task's expert out of a finished run and write it as a
//! standalone [`PlainExpert`] file, then prove the cut is faithful: the written file,
//! read back as a plain network, must give the logits of the run's own (unmerged) expert
//! on the task's test images to within 1e-4 relative. It also reports the expert's
//! parameters and multiply-accumulates against the plain student and, for distilled
//! runs, the foundation model.

use std::fmt::Write as _;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::{plain_student_params, write, ExpertInfo, PlainExpert, FORMAT};
use crate::data::batch::{Item, SplitName, TaskView};
use crate::data::source;
use crate::error::{Error, Result};
use crate::method::{self, expert};
use crate::model::cost::{human, Cost};
use crate::model::init::SeededInit;
use crate::model::layers::lowrank::EksForm;
use crate::spec::run::{RunSpec, Stage};
use crate::store::metrics::read_metrics;
use crate::store::run_dir::RunDir;
use crate::store::status::State;
use crate::train::checkpoint;
use crate::train::runner::{build_model, load_teacher, RunContext};

/// Largest relative logit difference accepted between merged and unmerged experts.
pub const MERGE_TOLERANCE: f64 = 1e-4;

pub struct ExportArgs<'a> {
    pub ctx: &'a RunContext,
    pub run: &'a str,
    pub task: Option<&'a str>,
    pub out: &'a Path,
}

/// What an export did, for the report on stdout.
pub struct Exported {
    pub info: ExpertInfo,
    pub expert: Cost,
    pub plain_student_params: u64,
    pub foundation: Option<(String, Cost)>,
    pub checked_images: usize,
    pub max_rel_diff: f64,
}

/// The run id a user typed: a full id or a unique prefix of one in the store.
pub fn resolve_run(results_dir: &Path, run: &str) -> Result<String> {
    let entries = std::fs::read_dir(results_dir).map_err(|e| {
        Error::input(format!(
            "{}: no run store ({e}); run an experiment first or pass --results-dir",
            results_dir.display()
        ))
    })?;
    let mut hits: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("spec.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|id| id.starts_with(run))
        .collect();
    hits.sort();
    match hits.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::input(format!(
            "no run `{run}` in {}; `harness status` lists the runs",
            results_dir.display()
        ))),
        many => Err(Error::input(format!(
            "`{run}` matches {} runs ({}); give more of the id",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// The local index of the task to export.
fn pick_task(spec: &RunSpec, task: Option<&str>) -> Result<usize> {
    match task {
        Some(t) => spec.tasks.iter().position(|k| k == t).ok_or_else(|| {
            Error::input(format!(
                "run {} has no task `{t}` (its tasks: {})",
                spec.run_id(),
                spec.tasks.join(", ")
            ))
        }),
        None if spec.tasks.len() == 1 => Ok(0),
        None => Err(Error::input(format!(
            "run {} has {} tasks; pick one with --task ({})",
            spec.run_id(),
            spec.tasks.len(),
            spec.tasks.join(", ")
        ))),
    }
}

pub fn export(a: &ExportArgs) -> Result<Exported> {
    let device = Device::Cpu;
    let run_id = resolve_run(&a.ctx.results_dir, a.run)?;
    let dir = RunDir::new(&a.ctx.results_dir, &run_id);
    let spec = dir.read_spec()?;
    match dir.effective_state()? {
        Some(State::Done) => {}
        other => {
            return Err(Error::input(format!(
                "run {run_id} is {}; only finished runs can be exported (`harness run` the experiment to finish it)",
                other.map(|s| s.as_str()).unwrap_or("not started")
            )))
        }
    }
    if matches!(spec.stage, Stage::Transfer | Stage::Analysis) {
        return Err(Error::input(format!(
            "run {run_id} is {} run; `harness export` cuts experts out of decomposition and foundation runs",
            match spec.stage {
                Stage::Transfer => "a transfer",
                _ => "an analysis",
            }
        )));
    }
    let task = pick_task(&spec, a.task)?;
    let data = source::load(&a.ctx.registry, &spec.data, &a.ctx.data_dir)?;
    let (_, heads) = data.task_heads(&spec.tasks)?;

    // The run's own network, as trained.
    let map = VarMap::new();
    let vb = SeededInit::var_builder(&map, 0, &device);
    let (model, _) = build_model(&spec, &heads, None, vb)?;
    checkpoint::load_vars(
        &crate::store::artefacts::verified_checkpoint(&dir)?,
        &map,
        &device,
    )?;
    let (tensors, tsn) = match spec.stage {
        Stage::Foundation => (
            expert::backbone_and_head(&map, &spec.tasks, task, None)?,
            None,
        ),
        Stage::Decompose | Stage::Transfer | Stage::Analysis => {
            let m = method::require(&spec.method)?;
            (
                m.export_expert(&map, &spec.tasks, task, &spec.options)?,
                m.expert_tsn(&spec.model),
            )
        }
    };
    let info = ExpertInfo {
        format: FORMAT.to_string(),
        run_id: run_id.clone(),
        experiment: read_metrics(&dir.metrics_path())?
            .first()
            .map(|r| r.experiment.clone())
            .unwrap_or_default(),
        method: spec.method.clone(),
        pretrain: spec.pretrain.clone(),
        task: spec.tasks[task].clone(),
        classes: heads[task].1,
        model: spec.model.clone(),
        image_size: spec.data.image_size,
        normalize: spec.data.normalize,
        data_kind: spec.data.kind.as_str().to_string(),
        code_version: spec.code_version.clone(),
        tsn,
    };
    write(a.out, &tensors, &info)?;

    // Read the file back and compare with the unmerged expert on the task's test images.
    let plain = PlainExpert::load(a.out, &device)?;
    let view = TaskView {
        dataset: &data,
        tasks: vec![data
            .tasks
            .iter()
            .position(|t| t.key == info.task)
            .unwrap_or(0)],
        normalize: spec.data.normalize,
    };
    let n = view.split(0, SplitName::Test).len().min(64);
    let (checked_images, max_rel_diff) = if n == 0 {
        (0, 0.0)
    } else {
        let items: Vec<Item> = (0..n).map(|i| (0, i)).collect();
        let x = view.batch(&items, SplitName::Test, &device)?.x;
        // LoRKD: x∗W0 + x∗ΔW_t, the experts kept apart, against the merged W0 + ΔW_t.
        model.set_eks_form(EksForm::LoraStyle);
        let unmerged = model.expert_logits(&x, task)?;
        let merged = plain.logits(&x)?;
        (n, relative_difference(&merged, &unmerged)?)
    };
    if max_rel_diff > MERGE_TOLERANCE || !max_rel_diff.is_finite() {
        let _ = std::fs::remove_file(a.out);
        return Err(Error::Failed(format!(
            "the exported expert's logits differ from the run's by {max_rel_diff:.3e} (relative) on {checked_images} test images; nothing was written"
        )));
    }
    let foundation = match &spec.teacher {
        Some(t) => {
            let teacher = load_teacher(a.ctx, &t.run_id, &data, &device)?;
            Some((
                t.name.clone(),
                teacher.cost(&info.task, info.image_size, &device)?,
            ))
        }
        None => None,
    };
    Ok(Exported {
        expert: plain.cost(&device)?,
        plain_student_params: plain_student_params(&info, &device)?,
        info,
        foundation,
        checked_images,
        max_rel_diff,
    })
}

/// `max |a − b| / max |b|`.
pub fn relative_difference(a: &Tensor, b: &Tensor) -> Result<f64> {
    let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    let scale = b.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    Ok(diff / scale.max(1e-12))
}

/// The report `harness export` prints.
pub fn render(e: &Exported, out: &Path) -> String {
    let mut s = String::new();
    let synthetic = if e.info.data_kind == "synthetic" {
        " [SYNTHETIC data: not a paper reproduction]"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "wrote {}: {} expert for task `{}` of run {} ({} classes, {}×{} input){synthetic}",
        out.display(),
        method::display_name(&e.info.method),
        e.info.task,
        e.info.run_id,
        e.info.classes,
        e.info.image_size,
        e.info.image_size
    );
    let _ = writeln!(
        s,
        "merge check: max relative logit difference {:.2e} on {} test images (tolerance {:.0e})",
        e.max_rel_diff, e.checked_images, MERGE_TOLERANCE
    );
    let same = if e.expert.params == e.plain_student_params {
        "= plain student + head, no extra parameters"
    } else if e.info.tsn.is_some() {
        "> plain student + head: the task-specific network is extra"
    } else {
        "≠ plain student + head"
    };
    let _ = writeln!(
        s,
        "{:<28} {:>12} {:>12} {:>12}",
        "model", "params", "MACs", "FLOPs"
    );
    let row = |s: &mut String, name: &str, c: &Cost| {
        let _ = writeln!(
            s,
            "{:<28} {:>12} {:>12} {:>12}",
            name,
            c.params,
            human(c.macs),
            human(c.flops())
        );
    };
    row(&mut s, "expert", &e.expert);
    let _ = writeln!(
        s,
        "  ({} params {same}: {})",
        e.expert.params, e.plain_student_params
    );
    if let Some((name, f)) = &e.foundation {
        row(&mut s, &format!("foundation `{name}` + head"), f);
        let _ = writeln!(
            s,
            "expert / foundation: {:.2}% of the parameters, {:.2}% of the MACs",
            100.0 * e.expert.params as f64 / f.params.max(1) as f64,
            100.0 * e.expert.macs as f64 / f.macs.max(1) as f64
        );
    }
    s
}
