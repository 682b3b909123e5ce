//! The training figures of every experiment: per pre-training set, the training curves of
//! its decomposition and foundation runs, and the task weights of its gradient-balancing
//! runs over the steps.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::curves::{CurveSeries, TrainingCurves};
use super::task_weights::{mean_lines, smooth, smoothing_window, TaskWeights, WeightPanel};
use super::write_figure;
use crate::error::Result;
use crate::report::curves::{CurveQuantity, Curves};
use crate::report::decomposition::{row_name, split_key};
use crate::report::similarity::task_labels;
use crate::report::table::TableKey;
use crate::report::task_weighting::WeightRun;
use crate::report::ReportOptions;
use crate::spec::run::FOUNDATION_METHOD;

/// Methods in paper order, each method's teachers by name, foundation models last.
fn row_rank(opts: &ReportOptions, key: &str) -> (bool, usize, String) {
    let (method, teacher) = split_key(key);
    (
        method == FOUNDATION_METHOD,
        opts.method_order
            .iter()
            .position(|m| m == method)
            .unwrap_or(usize::MAX),
        teacher.unwrap_or_default().to_string(),
    )
}

fn teachers<'a>(keys: impl Iterator<Item = &'a String>) -> usize {
    let mut names: Vec<&str> = keys.filter_map(|k| split_key(k).1).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

fn seeds_text(n: usize) -> String {
    match n {
        1 => "1 seed (no band)".to_string(),
        k => format!("mean ± std over {k} seeds (band)"),
    }
}

/// Writes `curves_<pretrain>` and `task_weights_<pretrain>` figures under each experiment.
pub fn write_training_figures(
    opts: &ReportOptions,
    curves: BTreeMap<TableKey, (Curves, bool)>,
    weights: &[WeightRun],
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (key, (mut by_row, synthetic)) in curves {
        let mut rows: Vec<String> = by_row.keys().cloned().collect();
        rows.sort_by_key(|r| row_rank(opts, r));
        let shown_teachers = teachers(rows.iter());
        let seeds = by_row
            .values()
            .flat_map(|q| q.values())
            .flat_map(|c| c.by_epoch.values().map(|s| s.len()))
            .max()
            .unwrap_or(1);
        let series = rows
            .iter()
            .map(|r| {
                let mut q = by_row.remove(r).unwrap_or_default();
                CurveSeries {
                    name: row_name(r, opts, shown_teachers),
                    dashed: split_key(r).0 == FOUNDATION_METHOD,
                    loss: q.remove(&CurveQuantity::TrainLoss).unwrap_or_default(),
                    accuracy: q.remove(&CurveQuantity::ValAccuracy).unwrap_or_default(),
                }
            })
            .collect();
        let figure = TrainingCurves {
            stem: format!("curves_{}", key.pretrain),
            title: format!("Training curves · {} · profile {}", key.pretrain, key.profile),
            series,
            caption: vec![
                format!(
                    "Per epoch, each run's mean over its tasks (STL-style methods: over their per-task runs) of the training loss and of the validation top-1 accuracy; {}.",
                    seeds_text(seeds)
                ),
                "The loss is each method's own training objective per task (with its distillation and auxiliary terms), so its level differs between methods; foundation models (dashed) train for their own epochs.".to_string(),
                format!("Experiment {} · profile {}.", key.experiment, key.profile),
            ],
            synthetic,
        };
        files.extend(write_figure(
            &opts.reports_dir.join(&key.experiment),
            &figure,
        )?);
    }

    // (experiment, pretrain, profile) → row key → runs
    let mut groups: BTreeMap<&TableKey, BTreeMap<&str, Vec<&WeightRun>>> = BTreeMap::new();
    for w in weights {
        groups
            .entry(&w.run.key)
            .or_default()
            .entry(&w.run.method)
            .or_default()
            .push(w);
    }
    for (key, by_row) in groups {
        let names = opts
            .task_order
            .get(&key.pretrain)
            .cloned()
            .unwrap_or_default();
        let mut tasks: Vec<String> = Vec::new();
        for r in by_row.values().flatten().flat_map(|w| &w.rows) {
            if !tasks.contains(&r.task) {
                tasks.push(r.task.clone());
            }
        }
        tasks.sort_by_key(|t| names.iter().position(|(k, _)| k == t).unwrap_or(usize::MAX));
        let mut rows: Vec<&str> = by_row.keys().copied().collect();
        rows.sort_by_key(|r| row_rank(opts, r));
        let shown_teachers = teachers(
            by_row
                .keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .iter(),
        );
        let synthetic = by_row.values().flatten().any(|w| w.run.synthetic);
        let seeds = by_row.values().map(|v| v.len()).max().unwrap_or(1);
        let mut window = 1;
        let panels = rows
            .iter()
            .map(|r| {
                let runs: Vec<&[crate::store::task_weights::WeightRow]> =
                    by_row[r].iter().map(|w| w.rows.as_slice()).collect();
                let lines = mean_lines(&tasks, &runs);
                let steps = lines.iter().map(Vec::len).max().unwrap_or(0);
                window = window.max(smoothing_window(steps));
                WeightPanel {
                    title: row_name(r, opts, shown_teachers),
                    lines: lines
                        .iter()
                        .map(|l| smooth(l, smoothing_window(steps)))
                        .collect(),
                }
            })
            .collect();
        let figure = TaskWeights {
            stem: format!("task_weights_{}", key.pretrain),
            title: format!("Task weights over training · {} · profile {}", key.pretrain, key.profile),
            tasks: task_labels(&tasks, &names),
            panels,
            caption: vec![
                format!(
                    "The weight each task's loss gradient got at the optimiser steps (MoCo-MTL: λ on the simplex, sum 1; Aligned-MTL: α, whose sum is its step scale), each point the mean of the last {window} steps; {}.",
                    match seeds {
                        1 => "1 seed".to_string(),
                        k => format!("mean over {k} seeds at each step"),
                    }
                ),
                format!("Experiment {} · profile {}.", key.experiment, key.profile),
            ],
            synthetic,
        };
        files.extend(write_figure(
            &opts.reports_dir.join(&key.experiment),
            &figure,
        )?);
    }
    Ok(files)
}
