//! `harness report --format html`: one self-contained page (no other file, no network, no
//! script) with every table and figure of the selected experiments. Figures are inlined as
//! PNG data URIs; every number links to the provenance of the runs behind it (run id, code
//! version, data kind, what the run was), listed at the end of the page; synthetic data
//! carry the banner on the page, on every table and inside every figure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::decomposition::{shown_key, split_key, Sample};
use super::markdown::{cell_text, signed_text, MISSING};
use super::table::{Mark, RowKind, Series, Table, SYNTHETIC_BANNER};
use crate::error::Result;
use crate::spec::run::{RunSpec, Stage};
use crate::store::manifest::Manifest;
use crate::store::run_dir::RunDir;
use crate::util::base64;

/// A table with the samples its cells were computed from.
pub struct Sourced<'a> {
    pub table: &'a Table,
    pub samples: &'a [Sample],
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Run ids behind cell (`row`, `col`) of `t`: the samples of its table key and row, of the
/// cell's column (every column for the `Avg`/`Sum` one). The paper's rows have none.
fn cell_runs(t: &Sourced, row: usize, col: usize) -> Vec<String> {
    let table = t.table;
    let r = &table.rows[row];
    let last = col + 1 == table.columns.len();
    let column = &table.columns[col].key;
    let of_table: Vec<&Sample> = t.samples.iter().filter(|s| s.key == table.key).collect();
    let teachers = of_table
        .iter()
        .filter_map(|s| split_key(&s.method).1)
        .collect::<BTreeSet<_>>()
        .len();
    let of_row = |s: &Sample| match &r.group {
        Some(g) if g.series == Series::Paper => false,
        Some(g) => {
            let (m, teacher) = split_key(&s.method);
            m == g.method && teacher.is_none_or(|t| t == g.foundation)
        }
        None => shown_key(&s.method, teachers) == r.key,
    };
    let ids: BTreeSet<String> = of_table
        .iter()
        .filter(|s| of_row(s) && (last || &s.task == column))
        .map(|s| s.run_id.clone())
        .collect();
    ids.into_iter().collect()
}

fn render_table(t: &Sourced, out: &mut String, runs: &mut BTreeSet<String>) {
    let table = t.table;
    let _ = writeln!(out, "<h3>{}</h3>", escape(&table.title()));
    if table.synthetic {
        let _ = writeln!(
            out,
            "<p class=\"banner\">{}</p>",
            escape(&SYNTHETIC_BANNER.replace("**", ""))
        );
    }
    let _ = writeln!(out, "<p class=\"caption\">{}</p>", escape(&table.caption()));
    let _ = write!(
        out,
        "<table>\n<thead><tr><th>{}</th>",
        escape(table.row_heading())
    );
    for c in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(&c.name));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (ri, row) in table.rows.iter().enumerate() {
        let class = match row.kind {
            RowKind::Measured => "",
            RowKind::Reference => " class=\"reference\"",
            RowKind::Delta => " class=\"delta\"",
        };
        let _ = write!(out, "<tr{class}><th>{}</th>", escape(&row.name));
        for (ci, cell) in row.cells.iter().enumerate() {
            let Some(s) = cell else {
                let _ = write!(out, "<td>{MISSING}</td>");
                continue;
            };
            let number = if row.kind == RowKind::Delta {
                signed_text(s, table.decimals())
            } else {
                cell_text(s, table.decimals())
            };
            let mark = match row.mark(ci) {
                None => String::new(),
                Some(m @ Mark::Shared) => m.text(),
                Some(m) => format!(" {}", m.text()),
            };
            let text = format!("{}{}", escape(&number), escape(&mark));
            let text = if table.is_best(ri, ci) {
                format!("<b>{text}</b>")
            } else {
                text
            };
            let ids = cell_runs(t, ri, ci);
            if ids.is_empty() {
                let _ = write!(out, "<td>{text}</td>");
            } else {
                let short: Vec<&str> = ids.iter().map(|i| &i[..8.min(i.len())]).collect();
                let _ = write!(
                    out,
                    "<td><a href=\"#run-{}\" title=\"{} run{}: {}\">{text}</a></td>",
                    ids[0],
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    short.join(", ")
                );
                runs.extend(ids);
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn render_figure(path: &Path, out: &mut String) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption>{0} (also as PNG and SVG beside this page)</figcaption></figure>",
        escape(&name),
        base64::encode(&bytes)
    );
    Ok(())
}

fn provenance(results_dir: &Path, runs: &BTreeSet<String>, manifests: &[Manifest]) -> String {
    let mut out = String::from(
        "<section id=\"runs\"><h2>Runs</h2>\n<p class=\"caption\">Every run behind a number above (each number links here; hover it for all its runs). The run id is the hash of everything that decides the run's numbers, code version included.</p>\n<table>\n<thead><tr><th>run id</th><th>experiments</th><th>stage</th><th>method</th><th>foundation</th><th>pre-training</th><th>downstream</th><th>seed</th><th>profile</th><th>code version</th><th>data</th></tr></thead>\n<tbody>\n",
    );
    for id in runs {
        let spec: Option<RunSpec> = RunDir::new(results_dir, id).read_spec().ok();
        let experiments: Vec<&str> = manifests
            .iter()
            .filter(|m| m.runs.contains(id))
            .map(|m| m.experiment.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let cells: Vec<String> = match &spec {
            Some(s) => vec![
                s.stage.as_str().to_string(),
                s.method.clone(),
                s.foundation.clone().unwrap_or_default(),
                s.pretrain.clone(),
                s.downstream.clone().unwrap_or_default(),
                s.seed.to_string(),
                s.profile.clone(),
                s.code_version.clone(),
                s.data.kind.as_str().to_string(),
            ],
            None => vec!["(spec.json unreadable)".to_string()],
        };
        let _ = write!(
            out,
            "<tr id=\"run-{0}\"><td><code>{0}</code></td><td>{1}</td>",
            escape(id),
            escape(&experiments.join(", "))
        );
        for c in cells {
            let _ = write!(out, "<td>{}</td>", escape(&c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#111}\
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em}\
td{text-align:right;font-variant-numeric:tabular-nums}thead th{background:#f0f0f0}tbody th{text-align:left;font-weight:normal}\
tr.reference{color:#555;font-style:italic}tr.delta{color:#335}td a{color:inherit;text-decoration:none}td a:hover{text-decoration:underline}\
.banner{background:#b2182b;color:#fff;font-weight:bold;padding:.4em .8em}.caption{color:#333;font-size:.9em;max-width:75em}\
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}\
nav a{margin-right:1em}code{font-size:.95em}";

/// The page: per experiment its tables then its figures, then the runs behind them.
pub fn render_page(
    tables: &[Sourced],
    figures: &[PathBuf],
    results_dir: &Path,
    manifests: &[Manifest],
) -> Result<String> {
    let mut experiments: BTreeMap<&str, (Vec<&Sourced>, Vec<&PathBuf>)> = BTreeMap::new();
    for t in tables {
        experiments
            .entry(&t.table.key.experiment)
            .or_default()
            .0
            .push(t);
    }
    for f in figures
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let experiment = f
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(e) = experiments.get_mut(experiment) {
            e.1.push(f);
        }
    }
    let synthetic = tables.iter().any(|t| t.table.synthetic);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>kdbench report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>kdbench report</h1>\n",
        escape(&experiments.keys().copied().collect::<Vec<_>>().join(", "))
    );
    if synthetic {
        let _ = writeln!(
            out,
            "<p class=\"banner\">{}</p>",
            escape(&SYNTHETIC_BANNER.replace("**", ""))
        );
    }
    out.push_str("<nav>");
    for name in experiments.keys() {
        let _ = write!(out, "<a href=\"#exp-{0}\">{0}</a>", escape(name));
    }
    out.push_str("<a href=\"#runs\">runs</a></nav>\n");
    let mut runs = BTreeSet::new();
    for (name, (tables, figures)) in &experiments {
        let _ = writeln!(out, "<section id=\"exp-{0}\"><h2>{0}</h2>", escape(name));
        for t in tables {
            render_table(t, &mut out, &mut runs);
        }
        for f in figures {
            render_figure(f, &mut out)?;
        }
        out.push_str("</section>\n");
    }
    out.push_str(&provenance(results_dir, &runs, manifests));
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

/// Which samples a table's cells come from.
pub fn samples_of<'a>(
    table: &Table,
    decomposition: &'a [Sample],
    transfer: &'a [Sample],
    weights: &'a [Sample],
) -> &'a [Sample] {
    use super::table::Quantity;
    match table.quantity {
        Quantity::Accuracy | Quantity::Comparison(Stage::Decompose) => decomposition,
        Quantity::TransferAccuracy | Quantity::Comparison(Stage::Transfer) => transfer,
        Quantity::TaskWeight => weights,
        Quantity::Comparison(_) => &[],
    }
}
