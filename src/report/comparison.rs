//! The comparison with the paper (the shape of supplement Tables 3 and 4): for every
//! experiment whose manifest carries a `[reference]`, our numbers beside the paper's, per
//! foundation model of the reference rows (in their order) in groups: the best baseline,
//! then each method the reference names (LoRKD).
//!
//! The paper does not say which method its "best baseline" is, so ours is chosen at report
//! time, per teacher: among the methods of the experiment other than the ones the
//! reference names, those that distil from that teacher or use none (STL, MTL, MoCo-MTL,
//! Aligned-MTL), the one with the highest `Avg` of ours (rows covering more columns first,
//! then the first in paper order on a tie). Foundation-model and from-scratch rows are not
//! candidates. A teacher-free best baseline is the same run for every teacher, so its rows
//! are identical across teachers, which is what the supplement's two identical best-baseline
//! rows show; the caption says so when it happens.
//!
//! Each group has a `(paper)` row (a reference row, quoting the paper), an `(ours)` row,
//! and on real data a `Δ` row (ours − paper, signed). On synthetic data there is no `Δ`: the
//! numbers are not comparable. Nothing is marked best: this table compares, it does not
//! rank. Columns and cells are those of the decomposition table (`reference.stage =
//! "decompose"`: the pre-training set's tasks) or of the transfer table (`"transfer"`: the
//! downstream sets, with their † and `(k/N)` marks), so the numbers agree with theirs.

use std::collections::{BTreeMap, BTreeSet};

use super::decomposition::{
    cells, display, order_methods, order_tasks, pool, row_kind, split_key, table_of, total_head,
    Sample, Total,
};
use super::table::{
    ColumnHead, Mark, Quantity, Row, RowGroup, RowKind, Series, Summary, Table, TableKey,
};
use super::transfer;
use super::ReportOptions;
use crate::spec::reference::{Reference, AVG, BEST_BASELINE};
use crate::spec::run::Stage;
use crate::store::manifest::Manifest;

/// One comparison table per (manifest with a reference, pre-training set with results of
/// the reference's stage).
pub fn build_comparison_tables(
    decomposition: &[Sample],
    transfer: &[Sample],
    opts: &ReportOptions,
    manifests: &[Manifest],
) -> Vec<Table> {
    let mut tables = Vec::new();
    for m in manifests {
        let Some(reference) = &m.reference else {
            continue;
        };
        let samples = match reference.stage {
            Stage::Decompose => decomposition,
            Stage::Transfer => transfer,
            Stage::Foundation | Stage::Analysis => continue,
        };
        let mine: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.key.experiment == m.experiment && s.key.profile == m.profile)
            .collect();
        let pretrains: BTreeSet<&str> = mine
            .iter()
            .map(|s| s.key.pretrain.as_str())
            .filter(|p| !p.is_empty())
            .collect();
        let sets: Vec<&str> = pretrains.iter().copied().collect();
        for pretrain in pretrains {
            let here: Vec<&Sample> = mine
                .iter()
                .copied()
                .filter(|s| s.key.pretrain == pretrain)
                .collect();
            let key = TableKey {
                experiment: m.experiment.clone(),
                pretrain: pretrain.to_owned(),
                profile: m.profile.clone(),
            };
            let mut table = build_table(&key, &here, opts, m, reference);
            if sets.len() > 1 {
                // A transfer reference is validated against the downstream sets only.
                table.notes.push(format!(
                    "The reference names no pre-training set; this experiment has several ({}), \
                     and each gets this comparison.",
                    sets.join(", ")
                ));
            }
            tables.push(table);
        }
    }
    tables.sort_by(|a, b| a.key.cmp(&b.key));
    tables
}

/// A row of ours: its cells (then `Avg`) and their marks.
type Laid = (Vec<Option<Summary>>, Vec<Option<Mark>>);

fn build_table(
    key: &TableKey,
    samples: &[&Sample],
    opts: &ReportOptions,
    manifest: &Manifest,
    reference: &Reference,
) -> Table {
    let stage = reference.stage;
    let present = samples.iter().map(|s| s.task.as_str());
    let columns = match stage {
        // The paper's table has every task of the set, in registry order.
        Stage::Decompose => match opts.task_order.get(&key.pretrain) {
            Some(registry) => order_tasks(
                registry.iter().map(|(k, _)| k.as_str()).chain(present),
                registry,
            ),
            None => order_tasks(present, &[]),
        },
        _ => transfer::columns(Some(manifest), present, opts),
    };
    let n = columns.len();
    let values = pool(samples);
    let expert_for = manifest.expert_for.get(&key.pretrain);
    let lay = |row_key: &str| -> Laid {
        let per_seed = &values[row_key];
        match stage {
            Stage::Decompose => (cells(per_seed, &columns, Total::Mean).0, vec![None; n + 1]),
            _ => transfer::lay_row(row_key, per_seed, &columns, expert_for),
        }
    };
    let order = order_methods(values.keys().copied(), &opts.method_order);
    let mut named: Vec<&str> = Vec::new();
    let mut teachers: Vec<&str> = Vec::new();
    for r in &reference.rows {
        if r.method != BEST_BASELINE && !named.contains(&r.method.as_str()) {
            named.push(&r.method);
        }
        if !teachers.contains(&r.foundation.as_str()) {
            teachers.push(&r.foundation);
        }
    }
    let synthetic = samples.iter().any(|s| s.synthetic);

    let mut rows = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut teacher_free: Vec<(&str, String)> = Vec::new();
    for &t in &teachers {
        // The best baseline of teacher `t`: the candidate with the most columns, then the
        // highest Avg; the first in paper order wins a tie (strictly greater replaces).
        let mut best: Option<(&str, Laid, (usize, f64))> = None;
        for k in &order {
            let (method, teacher) = split_key(k);
            if row_kind(k) != RowKind::Measured
                || named.contains(&method)
                || teacher.is_some_and(|x| x != t)
            {
                continue;
            }
            let laid = lay(k);
            let covered = laid.0[..n].iter().filter(|c| c.is_some()).count();
            let avg = laid.0[n].map_or(f64::NEG_INFINITY, |s| s.mean);
            if best.as_ref().is_none_or(|(_, _, r)| (covered, avg) > *r) {
                best = Some((k, laid, (covered, avg)));
            }
        }
        let mut groups: Vec<(&str, Option<(String, Laid)>)> =
            vec![(BEST_BASELINE, best.map(|(k, laid, _)| (k.to_owned(), laid)))];
        for &m in &named {
            let with_teacher = format!("{m}@{t}");
            let ours = [with_teacher.as_str(), m]
                .into_iter()
                .find(|k| values.contains_key(k))
                .map(|k| (k.to_owned(), lay(k)));
            groups.push((m, ours));
        }
        for (group, ours) in groups {
            if let Some((k, _)) = &ours {
                used.insert(k.clone());
                if group == BEST_BASELINE && split_key(k).1.is_none() {
                    teacher_free.push((t, k.clone()));
                }
            }
            rows.extend(group_rows(
                t, group, ours, &columns, reference, synthetic, opts,
            ));
        }
    }

    let shown: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| used.contains(&s.method))
        .collect();
    let mut table = table_of(key, Quantity::Comparison(stage), &shown);
    table.synthetic = synthetic;
    table.source = Some(reference.source.clone());
    table.columns = columns
        .into_iter()
        .map(|(key, name)| ColumnHead { key, name })
        .collect();
    table.columns.push(total_head(Total::Mean));
    table.rows = rows;
    let named_names: Vec<String> = named.iter().map(|m| display(m, opts)).collect();
    table.notes = notes(&table, reference, &named_names, &teacher_free, opts);
    table
}

/// The rows of one group: the paper's, ours, and (real data) their difference.
fn group_rows(
    teacher: &str,
    group: &str,
    ours: Option<(String, Laid)>,
    columns: &[(String, String)],
    reference: &Reference,
    synthetic: bool,
    opts: &ReportOptions,
) -> Vec<Row> {
    let n = columns.len();
    let label = if group == BEST_BASELINE {
        "best baseline".to_owned()
    } else {
        display(group, opts)
    };
    let quoted = reference
        .rows
        .iter()
        .find(|r| r.foundation == teacher && r.method == group);
    let paper: Vec<Option<Summary>> = columns
        .iter()
        .map(|(k, _)| k.as_str())
        .chain([AVG])
        .map(|k| {
            quoted
                .and_then(|r| r.values.get(k))
                .map(|v| Summary::quoted(*v))
        })
        .collect();
    let method = ours
        .as_ref()
        .map_or(String::new(), |(k, _)| split_key(k).0.to_owned());
    let (ours_cells, ours_marks) = ours.map_or((vec![None; n + 1], vec![None; n + 1]), |o| o.1);
    let ours_name = match (group == BEST_BASELINE, method.is_empty()) {
        (true, true) => format!("{teacher} · best baseline: no run (ours)"),
        (true, false) => format!(
            "{teacher} · best baseline: {} (ours)",
            display(&method, opts)
        ),
        (false, _) => format!("{teacher} · {label} (ours)"),
    };
    let row = |series: Series, name: String, cells: Vec<Option<Summary>>, kind: RowKind| {
        let mut row = Row::new(
            format!("{teacher}/{group}/{}", series.as_str()),
            name,
            cells,
            kind,
        );
        row.group = Some(RowGroup {
            foundation: teacher.to_owned(),
            group: group.to_owned(),
            method: method.clone(),
            series,
        });
        row
    };
    let delta: Vec<Option<Summary>> = ours_cells
        .iter()
        .zip(&paper)
        .map(|(o, p)| match (o, p) {
            (Some(o), Some(p)) => Some(Summary {
                mean: o.mean - p.mean,
                std: None,
                n: o.n,
            }),
            _ => None,
        })
        .collect();
    // A difference of a partial Avg is partial too; † describes our run, not the difference.
    let delta_marks: Vec<Option<Mark>> = ours_marks
        .iter()
        .map(|m| m.filter(|m| matches!(m, Mark::Partial { .. })))
        .collect();
    let mut out = vec![
        row(
            Series::Paper,
            format!("{teacher} · {label} (paper)"),
            paper,
            RowKind::Reference,
        ),
        row(Series::Ours, ours_name, ours_cells, RowKind::Measured),
    ];
    out[1].marks = ours_marks;
    if !synthetic {
        let mut d = row(
            Series::Delta,
            format!("{teacher} · {label} Δ"),
            delta,
            RowKind::Delta,
        );
        d.marks = delta_marks;
        out.push(d);
    }
    out
}

/// The caption's sentences: the source, how the best baseline was chosen, teacher-free
/// best baselines, Δ, and the transfer marks present.
fn notes(
    table: &Table,
    reference: &Reference,
    named: &[String],
    teacher_free: &[(&str, String)],
    opts: &ReportOptions,
) -> Vec<String> {
    let others = if named.is_empty() {
        String::new()
    } else {
        format!(" other than {}", named.join(", "))
    };
    let mut notes = vec![
        format!(
            "Paper: {}. The (paper) rows quote its numbers, not ours; no cell is marked best, \
             since this table compares ours with the paper.",
            reference.source
        ),
        format!(
            "Best baseline (ours): per foundation model, of the methods{others} that distil from \
             that model or use no teacher, the one with the highest Avg of ours (rows with more \
             columns first, then the first in paper order); foundation-model and from-scratch \
             rows are not candidates."
        ),
    ];
    let mut by_method: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (t, k) in teacher_free {
        by_method.entry(k.as_str()).or_default().push(t);
    }
    for (k, ts) in by_method {
        let name = display(split_key(k).0, opts);
        notes.push(match ts.as_slice() {
            [t] => format!("The best baseline of {t}, {name}, uses no teacher."),
            _ => format!(
                "The best baseline of {} is {name}, which uses no teacher: one run serves them \
                 all, so their best-baseline (ours) rows are identical, which is what the \
                 supplement's two identical best-baseline rows show.",
                ts.join(" and ")
            ),
        });
    }
    notes.push(if table.synthetic {
        "No Δ rows: numbers from synthetic stand-ins are not comparable with the paper's."
            .to_owned()
    } else {
        "Δ = ours − paper, in percentage points.".to_owned()
    });
    let marks: Vec<Mark> = table
        .rows
        .iter()
        .flat_map(|r| r.marks.iter().flatten().copied())
        .collect();
    if marks.contains(&Mark::Shared) {
        notes.push(
            "†: no expert matches the set (supplement Table 1), so the shared network was \
             fine-tuned."
                .to_owned(),
        );
    }
    if marks.iter().any(|m| matches!(m, Mark::Partial { .. })) {
        notes.push("(k/N) after an Avg: the mean over the k sets the row has.".to_owned());
    }
    notes
}
