//! Reports: results tables rendered from the run store.
//!
//! The pipeline is scan → relabel → select → lay out → render → write:
//! [`crate::store::metrics::scan_all`] scans every `metrics.parquet` lazily,
//! [`membership`] relabels the rows by the experiment manifests (a run shared by several
//! experiments shows in each of them), [`decomposition`] selects the rows a table needs and
//! lays them out as [`table::Table`]s, [`transfer`] and [`comparison`] do the same for the
//! fine-tuning results and for the paper's reference numbers, and one writer per format
//! ([`markdown`], [`csv`], [`latex`]) turns a table into text.
//! The task-weights tables of the gradient-balancing methods ([`task_weighting`]) go through
//! the same layout and writers.
//! The figures ([`figure`]: CKA heatmaps and per-stage plots from [`similarity`]'s
//! matrices) are written as PNG and SVG beside the tables.
//! Every table or figure built even partly from synthetic data carries a banner saying so,
//! in every format, so that smoke-profile numbers are never mistaken for a reproduction of
//! the paper.

pub mod comparison;
pub mod csv;
pub mod curves;
pub mod decomposition;
pub mod efficiency;
pub mod figure;
pub mod html;
pub mod latex;
pub mod markdown;
pub mod membership;
pub mod regression;
pub mod similarity;
pub mod table;
pub mod task_weighting;
pub mod transfer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::run::Stage;
use crate::store::manifest::read_manifests;
use crate::store::metrics::scan_all;
use crate::util::fs::write_atomic;

use table::{Quantity, Table};

/// Output format of `harness report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Csv,
    Latex,
    /// One self-contained page with every table and figure (`report.html`).
    Html,
}

impl Format {
    /// File extension of the written report.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Latex => "tex",
            Format::Html => "html",
        }
    }
}

/// Everything `render_reports` needs to know; built by the CLI from flags and the registries.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The run store, `results/`.
    pub results_dir: PathBuf,
    /// Where rendered files go: `<reports_dir>/<experiment>/{decomposition,transfer,comparison,
    /// task_weights}.<ext>`.
    pub reports_dir: PathBuf,
    /// Only this experiment, when given; an unknown name is bad input.
    pub experiment: Option<String>,
    pub format: Format,
    /// Data set key → `[(task key, task display name)]` in registry order (the downstream
    /// sets under [`transfer::DOWNSTREAM_SET`]). Columns follow it; tasks not listed go last,
    /// alphabetically, under their key.
    pub task_order: BTreeMap<String, Vec<(String, String)>>,
    /// Row order by method key (stl, mtl, mocomtl, alignedmtl, stlkd, mtlkd, kf, lorkd);
    /// unknown methods go last, alphabetically.
    pub method_order: Vec<String>,
    /// Method key → name shown, e.g. `"mocomtl"` → `"MoCo-MTL"`; unlisted keys show as is.
    pub method_display: BTreeMap<String, String>,
}

/// What `harness report` produced: the text for stdout and the files it wrote.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Markdown and LaTeX: the decomposition tables, the transfer tables, the comparisons
    /// with the paper, then the task-weights tables. CSV: the decomposition and transfer rows
    /// only (one header for the stream); comparisons and weights have columns of their own
    /// and are only in their files.
    pub stdout: String,
    pub files: Vec<PathBuf>,
}

/// Renders the tables of the scanned runs (all runs, or only `run_ids`) and writes, per
/// experiment, `<reports_dir>/<experiment>/decomposition.<md|csv|tex>`, `transfer.<ext>`
/// when transfer runs have results, `comparison.<ext>` when the experiment's manifest has
/// the paper's numbers (`[reference]`) and we have results of its stage, and
/// `task_weights.<ext>` when gradient-balancing runs logged task weights (atomically,
/// creating folders). Runs are shown under the experiments whose manifests list them.
///
/// Returns empty text, and writes nothing, when no run has test accuracies yet. Errors: no
/// metrics at all, an unreadable manifest, or an unknown `experiment`, are bad input.
pub fn render_reports(opts: &ReportOptions, run_ids: Option<&[String]>) -> Result<Rendered> {
    let manifests = read_manifests(&opts.results_dir)?;
    let metrics = membership::relabel(scan_all(&opts.results_dir, run_ids)?, &manifests)?;
    if let Some(wanted) = &opts.experiment {
        let known = decomposition::experiments(metrics.clone())?;
        if !known.contains(wanted) {
            let list = known.into_iter().collect::<Vec<_>>().join(", ");
            return Err(Error::input(format!(
                "unknown experiment `{wanted}`: the results in {} hold {list}",
                opts.results_dir.display()
            )));
        }
    }
    let experiment = opts.experiment.as_deref();
    let decompose = [Stage::Decompose, Stage::Foundation];
    let samples = decomposition::load_samples(metrics.clone(), experiment, &decompose)?;
    let accuracy = decomposition::build_tables(&samples, opts, Quantity::Accuracy);
    let transfer_samples =
        decomposition::load_samples(metrics.clone(), experiment, &[Stage::Transfer])?;
    let transfer = transfer::build_transfer_tables(&transfer_samples, opts, &manifests);
    let comparison =
        comparison::build_comparison_tables(&samples, &transfer_samples, opts, &manifests);
    let weight_runs =
        task_weighting::load_weight_runs(&opts.results_dir, metrics.clone(), experiment)?;
    let weight_samples = task_weighting::weight_samples(&weight_runs);
    let curves = curves::load_curves(metrics, experiment)?;
    let weights = decomposition::build_tables(&weight_samples, opts, Quantity::TaskWeight);

    let mut rendered = Rendered::default();
    let mut on_stdout = |text: &str| {
        let separator = opts.format != Format::Csv && !rendered.stdout.is_empty();
        if separator {
            rendered.stdout.push('\n');
        }
        rendered.stdout.push_str(text);
    };
    // (file stem, tables, whether its CSV rows share the stdout stream's header)
    let outputs = [
        ("decomposition", &accuracy, true),
        ("transfer", &transfer, true),
        ("comparison", &comparison, false),
        ("task_weights", &weights, false),
    ];
    if opts.format == Format::Csv
        && outputs
            .iter()
            .any(|(_, t, shared)| *shared && !t.is_empty())
    {
        on_stdout(&format!("{}\n", csv::HEADER));
    }
    let mut files = Vec::new();
    if opts.format != Format::Html {
        for (stem, tables, shared) in outputs {
            for (path, body) in write_per_experiment(opts, tables, stem)? {
                if opts.format != Format::Csv || shared {
                    on_stdout(&body);
                }
                files.push(path);
            }
        }
    }
    let matrices =
        similarity::load_matrices(&opts.results_dir, &manifests, experiment, &opts.task_order)?;
    let mut figures = figure::cka::write_cka_figures(opts, &matrices)?;
    figures.extend(figure::training::write_training_figures(
        opts,
        curves,
        &weight_runs,
    )?);
    if opts.format == Format::Html {
        let sourced: Vec<html::Sourced> = outputs
            .iter()
            .flat_map(|(_, tables, _)| tables.iter())
            .map(|t| html::Sourced {
                table: t,
                samples: html::samples_of(t, &samples, &transfer_samples, &weight_samples),
            })
            .collect();
        if !sourced.is_empty() {
            let page = html::render_page(&sourced, &figures, &opts.results_dir, &manifests)?;
            let path = match experiment {
                Some(name) => opts.reports_dir.join(name).join("report.html"),
                None => opts.reports_dir.join("report.html"),
            };
            write_atomic(&path, page.as_bytes())?;
            files.push(path);
        }
    }
    files.extend(figures);
    rendered.files = files;
    Ok(rendered)
}

/// Writes `<reports_dir>/<experiment>/<stem>.<ext>` for every experiment of `tables` and
/// returns (path, rendered body without the CSV header) in experiment order.
fn write_per_experiment(
    opts: &ReportOptions,
    tables: &[Table],
    stem: &str,
) -> Result<Vec<(PathBuf, String)>> {
    let mut by_experiment: BTreeMap<&str, Vec<&Table>> = BTreeMap::new();
    for table in tables {
        by_experiment
            .entry(table.key.experiment.as_str())
            .or_default()
            .push(table);
    }
    let mut out = Vec::new();
    for (experiment, tables) in by_experiment {
        let body = render_tables(&tables, opts.format);
        let file_text = match opts.format {
            // The tables of one stem share a quantity, so the first one's header fits all.
            Format::Csv => format!("{}\n{body}", csv::header(tables[0].quantity)),
            Format::Markdown | Format::Latex | Format::Html => body.clone(),
        };
        let path = report_path(&opts.reports_dir, experiment, stem, opts.format);
        write_atomic(&path, file_text.as_bytes())?;
        out.push((path, body));
    }
    Ok(out)
}

/// The tables of one experiment in one format (CSV without its header).
fn render_tables(tables: &[&Table], format: Format) -> String {
    let rendered: Vec<String> = tables
        .iter()
        .map(|t| match format {
            // HTML pages are rendered whole (`html::render_page`); Markdown stands in here.
            Format::Markdown | Format::Html => markdown::render(t),
            Format::Latex => latex::render(t),
            Format::Csv => csv::render_rows(t),
        })
        .collect();
    match format {
        Format::Csv => rendered.concat(),
        Format::Markdown | Format::Latex | Format::Html => rendered.join("\n"),
    }
}

/// `<reports_dir>/<experiment>/<stem>.<ext>`. The experiment name becomes a folder, so
/// characters that could escape `reports_dir` or trouble a file system are replaced.
fn report_path(reports_dir: &Path, experiment: &str, stem: &str, format: Format) -> PathBuf {
    let mut folder: String = experiment
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if folder.is_empty() || folder.chars().all(|c| c == '.') {
        folder = "_".repeat(folder.len().max(1));
    }
    reports_dir
        .join(folder)
        .join(format!("{stem}.{}", format.extension()))
}

#[cfg(test)]
mod comparison_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;
