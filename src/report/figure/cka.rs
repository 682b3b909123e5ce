//! The CKA figures of every experiment with analysis runs: per pre-training set and
//! protocol, one heatmap figure of the final layer with every method side by side (paper
//! order), and one line plot of the mean off-diagonal CKA per backbone stage.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::cka_heatmap::{CkaHeatmap, Panel};
use super::cka_stages::CkaStages;
use super::write_figure;
use crate::error::Result;
use crate::report::similarity::{task_labels, CkaMatrix};
use crate::report::ReportOptions;

/// How a protocol pairs samples, for captions.
pub fn protocol_text(protocol: &str, n: u64) -> String {
    match protocol {
        "cross-task" => format!(
            "Protocol cross-task: cell (i, j) = CKA of expert i on n = {n} test images of task i and expert j on n = {n} test images of task j, row k with row k (a seeded order)."
        ),
        "same-probe" => format!(
            "Protocol same-probe: cell (i, j) = CKA of expert i and expert j on the same n = {n} test images of task i (rows: the images' task)."
        ),
        other => format!("Protocol {other}, n = {n} test images per task."),
    }
}

fn estimator_text(estimator: &str) -> &'static str {
    match estimator {
        "minibatch" => "minibatch CKA from unbiased HSIC (Nguyen et al., 2021)",
        _ => "linear CKA (Kornblith et al., 2019)",
    }
}

/// A matrix's method name as the tables show it, with its teacher.
fn method_title(opts: &ReportOptions, m: &CkaMatrix) -> String {
    let name = opts
        .method_display
        .get(&m.method)
        .cloned()
        .unwrap_or_else(|| m.method.clone());
    match &m.foundation {
        Some(f) => format!("{name} ← {f}"),
        None => name,
    }
}

fn method_rank(opts: &ReportOptions, m: &CkaMatrix) -> (usize, String) {
    (
        opts.method_order
            .iter()
            .position(|k| k == &m.method)
            .unwrap_or(usize::MAX),
        method_title(opts, m),
    )
}

fn seeds_text(seeds: &[u64]) -> String {
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    match seeds.len() {
        1 => format!("seed {}", list[0]),
        k => format!("mean over {k} seeds ({})", list.join(", ")),
    }
}

/// Writes the CKA figures of `matrices` under `<reports_dir>/<experiment>/`.
pub fn write_cka_figures(opts: &ReportOptions, matrices: &[CkaMatrix]) -> Result<Vec<PathBuf>> {
    // (experiment, profile, pretrain) → protocol → matrices
    type Group<'a> = BTreeMap<String, Vec<&'a CkaMatrix>>;
    let mut groups: BTreeMap<(&str, &str, &str), Group> = BTreeMap::new();
    for m in matrices {
        groups
            .entry((&m.experiment, &m.profile, &m.pretrain))
            .or_default()
            .entry(m.protocol.clone())
            .or_default()
            .push(m);
    }
    let mut files = Vec::new();
    for ((experiment, profile, pretrain), by_protocol) in groups {
        let dir = opts.reports_dir.join(experiment);
        let names = opts.task_order.get(pretrain).cloned().unwrap_or_default();
        for (protocol, mut ms) in by_protocol {
            ms.sort_by_key(|m| method_rank(opts, m));
            let finals: Vec<&CkaMatrix> =
                ms.iter().copied().filter(|m| m.layer == "final").collect();
            if let Some(first) = finals.first() {
                let means: Vec<String> = finals
                    .iter()
                    .map(|m| format!("{} {:.3}", method_title(opts, m), m.mean_off_diagonal()))
                    .collect();
                let runs: Vec<String> = finals
                    .iter()
                    .flat_map(|m| m.run_ids.iter().map(|r| r[..8.min(r.len())].to_string()))
                    .collect();
                let heatmap = CkaHeatmap {
                    stem: format!("cka_{pretrain}_{protocol}"),
                    title: format!(
                        "CKA similarity of the experts' features · {pretrain} · {protocol} · final layer"
                    ),
                    labels: task_labels(&first.tasks, &names),
                    panels: finals
                        .iter()
                        .map(|m| Panel {
                            title: method_title(opts, m),
                            matrix: m,
                        })
                        .collect(),
                    caption: vec![
                        format!("Mean off-diagonal CKA: {}.", means.join(" · ")),
                        protocol_text(&protocol, first.n),
                        format!(
                            "Layer final: the globally pooled output of the last stage (the features the heads read) · {} · {} · profile {profile}.",
                            estimator_text(&first.estimator),
                            seeds_text(&first.seeds)
                        ),
                        format!(
                            "Experiment {experiment} · analysis runs {} (kdbench's protocol: the paper gives none, README \"CKA protocol\").",
                            runs.join(", ")
                        ),
                    ],
                };
                files.extend(write_figure(&dir, &heatmap)?);
            }
            let stages = CkaStages::new(
                format!("cka_stages_{pretrain}_{protocol}"),
                format!("Mean off-diagonal CKA per backbone stage · {pretrain} · {protocol}"),
                ms.iter()
                    .map(|m| (method_title(opts, m), *m))
                    .collect(),
                vec![
                    protocol_text(&protocol, ms[0].n),
                    format!(
                        "Each point: the mean over the T(T-1) off-diagonal cells of that stage's matrix · {} · {} · profile {profile} · experiment {experiment}.",
                        estimator_text(&ms[0].estimator),
                        seeds_text(&ms[0].seeds)
                    ),
                ],
            );
            if let Some(stages) = stages {
                files.extend(write_figure(&dir, &stages)?);
            }
        }
    }
    Ok(files)
}
