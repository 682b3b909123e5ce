//! The transfer table (the paper's transferability tables, supplement section C): last-epoch
//! test accuracy after fine-tuning on each downstream set, one table per (experiment,
//! pre-training set, profile).
//!
//! Rows: the methods in paper order (distilling methods once per teacher, as in the
//! decomposition table), then the foundation models fine-tuned as they are, then the student
//! trained from scratch; the last two are reference rows, never marked best. From-scratch
//! runs have no pre-training set (`pretrain = ""`), so they appear in every pre-training
//! set's table of their experiment. Columns: the manifest's downstream sets in its order
//! (sets of older stores that it does not list come after), then `Avg`.
//!
//! What the cells say, decided here and repeated in every caption:
//! - "–": no result. STL and STL-KD (methods whose [`TransferRule`] is `MatchingStudent`)
//!   fine-tune only the student whose task matches the set, so a set without a match has no
//!   run, as in the paper; elsewhere it is a run that has not finished.
//! - `†` after a number: the method's rule is `ExpertOrShared` (KF, LoRKD) and the
//!   manifest's `expert_for[pretrain][set]` is none, so the shared network was fine-tuned
//!   instead of an expert (the paper's †). Without a manifest nothing is marked: the report
//!   cannot know.
//! - `Avg`: per seed, the mean over the sets the row has (its cells that are not "–"), over
//!   the seeds that have all of those; the mean ± std of that over seeds. A row with fewer
//!   sets than the table carries `(k/N)` after its `Avg`, and such an `Avg` is never marked
//!   best, since it averages other sets than the full rows do.

use std::collections::{BTreeMap, BTreeSet};

use super::decomposition::{
    cells, display, order_methods, order_tasks, pool, row_kind, row_name, shown_key, split_key,
    table_of, teachers, total_head, PerSeed, Sample, Total,
};
use super::table::{ColumnHead, Mark, Quantity, Row, RowKind, Summary, Table, TableKey};
use super::ReportOptions;
use crate::spec::catalog::TransferRule;
use crate::store::manifest::Manifest;

/// The registry's key of the data set that holds the downstream sets (its tasks); their
/// display names are under it in [`ReportOptions::task_order`].
pub const DOWNSTREAM_SET: &str = "downstream";

/// Transfer tables of `samples` (transfer-stage test accuracies), in key order.
pub fn build_transfer_tables(
    samples: &[Sample],
    opts: &ReportOptions,
    manifests: &[Manifest],
) -> Vec<Table> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups
            .entry((s.key.experiment.as_str(), s.key.profile.as_str()))
            .or_default()
            .push(s);
    }
    let mut tables = Vec::new();
    for ((experiment, profile), group) in groups {
        let manifest = find_manifest(manifests, experiment, profile);
        let mut pretrains: BTreeSet<&str> = group
            .iter()
            .map(|s| s.key.pretrain.as_str())
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(m) = manifest.filter(|m| !m.downstream.is_empty()) {
            pretrains.extend(m.expert_for.keys().map(String::as_str));
        }
        if pretrains.is_empty() {
            // Only from-scratch runs: one table under no pre-training set.
            pretrains.insert("");
        }
        for pretrain in pretrains {
            let key = TableKey {
                experiment: experiment.to_owned(),
                pretrain: pretrain.to_owned(),
                profile: profile.to_owned(),
            };
            let mine: Vec<&Sample> = group
                .iter()
                .copied()
                .filter(|s| s.key.pretrain == pretrain || s.key.pretrain.is_empty())
                .collect();
            tables.push(build_table(&key, &mine, opts, manifest));
        }
    }
    tables
}

/// The manifest of (experiment, profile), if the store has one.
pub(super) fn find_manifest<'a>(
    manifests: &'a [Manifest],
    experiment: &str,
    profile: &str,
) -> Option<&'a Manifest> {
    manifests
        .iter()
        .find(|m| m.experiment == experiment && m.profile == profile)
}

/// The downstream columns, (key, name): the manifest's sets in its order, then sets of the
/// samples it does not list (a store from before manifests) in registry order.
pub(super) fn columns<'a>(
    manifest: Option<&Manifest>,
    present: impl Iterator<Item = &'a str>,
    opts: &ReportOptions,
) -> Vec<(String, String)> {
    let registry: &[(String, String)] = opts
        .task_order
        .get(DOWNSTREAM_SET)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let listed: &[String] = manifest.map_or(&[], |m| m.downstream.as_slice());
    let mut out: Vec<(String, String)> = listed
        .iter()
        .map(|set| {
            let name = registry
                .iter()
                .find(|(k, _)| k == set)
                .map_or(set.clone(), |(_, n)| n.clone());
            (set.clone(), name)
        })
        .collect();
    let extra: Vec<&str> = present.filter(|s| !listed.iter().any(|l| l == s)).collect();
    out.extend(order_tasks(extra.into_iter(), registry));
    out
}

/// Whether rows of the method behind `row_key` fine-tune a shared network where no expert
/// matches (and so can carry †).
fn may_use_shared(row_key: &str) -> bool {
    crate::method::lookup(split_key(row_key).0)
        .is_some_and(|m| m.transfer_rule() == TransferRule::ExpertOrShared)
}

/// Whether the method behind `row_key` fine-tunes only matching students (and so has "–"
/// by design).
fn matching_only(row_key: &str) -> bool {
    crate::method::lookup(split_key(row_key).0)
        .is_some_and(|m| m.transfer_rule() == TransferRule::MatchingStudent)
}

/// One row's cells over `columns` (then `Avg`) and their marks: † on the cells of a method
/// that fine-tuned its shared network there (`expert_for`: the manifest's row of the table's
/// pre-training set), `(k/N)` on an `Avg` over fewer sets than the table has.
pub(super) fn lay_row(
    row_key: &str,
    per_seed: &PerSeed,
    columns: &[(String, String)],
    expert_for: Option<&BTreeMap<String, Option<String>>>,
) -> (Vec<Option<Summary>>, Vec<Option<Mark>>) {
    let (cells, covered) = cells(per_seed, columns, Total::MeanOfPresent);
    let shared_row = may_use_shared(row_key);
    let mut marks: Vec<Option<Mark>> = columns
        .iter()
        .zip(&cells)
        .map(|((set, _), cell)| {
            let shared = expert_for.is_some_and(|row| row.get(set).cloned().flatten().is_none());
            (shared_row && shared && cell.is_some()).then_some(Mark::Shared)
        })
        .collect();
    let partial = cells.last().copied().flatten().is_some() && covered < columns.len();
    marks.push(partial.then_some(Mark::Partial {
        sets: covered,
        of: columns.len(),
    }));
    (cells, marks)
}

fn build_table(
    key: &TableKey,
    samples: &[&Sample],
    opts: &ReportOptions,
    manifest: Option<&Manifest>,
) -> Table {
    let columns = columns(manifest, samples.iter().map(|s| s.task.as_str()), opts);
    let expert_for = manifest.and_then(|m| m.expert_for.get(&key.pretrain));
    let teachers = teachers(samples);
    let values = pool(samples);
    let mut table = table_of(key, Quantity::TransferAccuracy, samples);
    let methods = order_methods(
        samples.iter().map(|s| s.method.as_str()),
        &opts.method_order,
    );
    for method in &methods {
        let (cells, marks) = lay_row(method, &values[method.as_str()], &columns, expert_for);
        let mut row = Row::new(
            shown_key(method, teachers),
            row_name(method, opts, teachers),
            cells,
            row_kind(method),
        );
        row.marks = marks;
        table.rows.push(row);
    }
    table.columns = columns
        .iter()
        .map(|(key, name)| ColumnHead {
            key: key.clone(),
            name: name.clone(),
        })
        .collect();
    table.columns.push(total_head(Total::MeanOfPresent));
    table.notes = notes(&table, &methods, opts);
    table
}

/// The caption's sentences on "–", †, `Avg` and the reference rows, as far as the table
/// shows them.
fn notes(table: &Table, methods: &[String], opts: &ReportOptions) -> Vec<String> {
    let sets = table.columns.len() - 1;
    let names = |pick: fn(&str) -> bool| {
        let mut names: Vec<String> = methods
            .iter()
            .filter(|m| pick(m))
            .map(|m| display(split_key(m).0, opts))
            .collect();
        names.dedup();
        names.join(", ")
    };
    let mut notes = vec![format!(
        "Avg: per seed, the mean over the downstream sets a row has (its cells that are not –), \
         then mean ± std over seeds; a row with only k of the {sets} sets shows (k/{sets}) after \
         its Avg, which is then never marked best."
    )];
    let missing = table
        .rows
        .iter()
        .any(|r| r.cells[..sets].iter().any(Option::is_none));
    if missing {
        let matching = names(matching_only);
        notes.push(if matching.is_empty() {
            "–: no finished run.".to_owned()
        } else {
            format!(
                "–: no result; {matching}: only the student of the pre-training task that \
                 matches the set is fine-tuned (supplement Table 1), so a set without a match \
                 has no run."
            )
        });
    }
    let shared = table
        .rows
        .iter()
        .any(|r| r.marks.contains(&Some(Mark::Shared)));
    if shared {
        notes.push(format!(
            "†: no expert of the pre-training set matches the downstream set (supplement Table \
             1), so {} fine-tuned its shared network instead (supplement section C).",
            names(may_use_shared)
        ));
    }
    if table.rows.iter().any(|r| r.kind == RowKind::Reference) {
        notes.push(
            "Foundation-model rows (the teacher fine-tuned as it is) and From scratch (the \
             student trained on the set alone) are baselines, never marked best."
                .to_owned(),
        );
    }
    notes
}
