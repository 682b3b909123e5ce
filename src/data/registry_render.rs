//! Views of the registry for `harness datasets`: which files are present under the data
//! root (a plain aligned table), and the supplement's dataset tables (Figures 1–4) plus its
//! Table 1 (expert ↔ downstream correspondence) regenerated from `datasets.toml` as Markdown.
//!
//! Rendering the paper's tables from the registry keeps the two from drifting apart: where
//! the real files disagree with the paper, the table shows both numbers and a footnote.

use std::fmt::Write as _;
use std::path::Path;

use super::checksum;
use super::registry::{DatasetEntry, Format, Registry, Role, TaskEntry};

/// Whether a task's files are where the registry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Present,
    Missing,
    ChecksumMismatch { expected: String, actual: String },
}

impl Presence {
    pub fn label(&self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Missing => "missing",
            Presence::ChecksumMismatch { .. } => "checksum mismatch",
        }
    }
}

/// Checks one task: the path exists with the right kind (file for npz, directory for image
/// folders) and, where a sha256 is declared, matches it (through the checksum cache).
pub fn task_presence(_entry: &DatasetEntry, task: &TaskEntry, data_dir: &Path) -> Presence {
    let path = data_dir.join(&task.path);
    let right_kind = match task.format {
        Format::Npz => path.is_file(),
        Format::ImageFolder => path.is_dir(),
    };
    if !right_kind {
        return Presence::Missing;
    }
    match &task.sha256 {
        None => Presence::Present,
        Some(expected) => match checksum::cached_sha256(&path, data_dir) {
            Ok(actual) if actual.eq_ignore_ascii_case(expected) => Presence::Present,
            Ok(actual) => Presence::ChecksumMismatch {
                expected: expected.clone(),
                actual,
            },
            // Unreadable counts as not usable.
            Err(_) => Presence::Missing,
        },
    }
}

/// Left-aligned columns separated by two spaces; numeric columns right-aligned.
fn aligned(header: &[&str], rows: &[Vec<String>], numeric: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if numeric[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(&mut out, &mut rule.iter().map(String::as_str));
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

/// The status table of every task of every data set under `data_dir`.
pub fn render_status(reg: &Registry, data_dir: &Path) -> String {
    let header = [
        "dataset", "id", "name", "modality", "labels", "images", "format", "path", "status",
    ];
    let numeric = [false, true, false, false, true, true, false, false, false];
    let mut rows = Vec::new();
    let (mut present, mut missing, mut mismatched) = (0usize, 0usize, 0usize);
    let mut mismatch_notes = Vec::new();
    for ds in &reg.datasets {
        for task in &ds.tasks {
            let presence = task_presence(ds, task, data_dir);
            match &presence {
                Presence::Present => present += 1,
                Presence::Missing => missing += 1,
                Presence::ChecksumMismatch { expected, actual } => {
                    mismatched += 1;
                    mismatch_notes.push(format!(
                        "  {}/{}: {}: expected sha256 {expected}, actual {actual}",
                        ds.key,
                        task.key,
                        data_dir.join(&task.path).display()
                    ));
                }
            }
            rows.push(vec![
                ds.key.clone(),
                task.id.to_string(),
                task.name.clone(),
                task.modality.clone(),
                task.labels.to_string(),
                task.images.to_string(),
                task.format.as_str().to_string(),
                task.path.clone(),
                presence.label().to_string(),
            ]);
        }
    }
    let mut out = format!(
        "Registry: {}\nData root: {}\n\n",
        reg.path.display(),
        data_dir.display()
    );
    out.push_str(&aligned(&header, &rows, &numeric));
    out.push('\n');
    let total = present + missing + mismatched;
    let _ = write!(
        out,
        "{present} of {total} task(s) present, {missing} missing"
    );
    if mismatched > 0 {
        let _ = write!(out, ", {mismatched} with a checksum mismatch");
    }
    out.push_str(".\n");
    for note in &mismatch_notes {
        out.push_str(note);
        out.push('\n');
    }
    if missing + mismatched > 0 {
        let _ = writeln!(
            out,
            "Paths are relative to the data root (--data-dir DIR or ${}, default {}/).\n\
             Without the real data, run experiments with --profile smoke (synthetic \
             stand-ins with the same tasks and label counts).",
            super::load::DATA_DIR_ENV,
            super::load::DEFAULT_DATA_DIR
        );
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The supplement's dataset tables and Table 1, as Markdown.
pub fn render_markdown(reg: &Registry) -> String {
    let mut out = String::new();
    let mut footnote = 0usize;
    for ds in &reg.datasets {
        let _ = writeln!(out, "### {}\n", md_cell(&ds.name));
        let _ = writeln!(
            out,
            "Key `{}`, {} set, {} tasks. Source: {}.\n",
            ds.key,
            ds.role.as_str(),
            ds.tasks.len(),
            ds.source
        );
        out.push_str("| Task ID | Name | Modality | Region | Labels | Number |\n");
        out.push_str("|---:|---|---|---|---:|---:|\n");
        let mut notes = Vec::new();
        for t in &ds.tasks {
            let labels = match t.paper_labels {
                Some(p) if p != t.labels => format!("{} (paper: {p})", t.labels),
                _ => t.labels.to_string(),
            };
            let images = match t.paper_images {
                Some(p) if p != t.images => format!("{} (paper: {p})", t.images),
                _ => t.images.to_string(),
            };
            let mut name = md_cell(&t.name);
            if let Some(note) = &t.note {
                footnote += 1;
                let _ = write!(name, " [^{footnote}]");
                notes.push(format!("[^{footnote}]: {}", note.trim()));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                t.id,
                name,
                md_cell(&t.modality),
                md_cell(&t.region),
                labels,
                images
            );
        }
        out.push('\n');
        if !notes.is_empty() {
            for n in notes {
                out.push_str(&n);
                out.push('\n');
            }
            out.push('\n');
        }
    }

    // Table 1: rows are pre-training sets, columns the downstream tasks.
    let downstream: Vec<&TaskEntry> = reg
        .datasets
        .iter()
        .filter(|d| d.role == Role::Downstream)
        .flat_map(|d| &d.tasks)
        .collect();
    let pretrain: Vec<&DatasetEntry> = reg
        .datasets
        .iter()
        .filter(|d| d.role == Role::Pretrain)
        .collect();
    if !downstream.is_empty() && !pretrain.is_empty() {
        out.push_str(
            "### Table 1. Correspondence between expert models and downstream datasets\n\n",
        );
        out.push_str("| Pre-trained data |");
        for t in &downstream {
            let _ = write!(out, " {} |", md_cell(&t.name));
        }
        out.push_str("\n|---|");
        for _ in &downstream {
            out.push_str(":---:|");
        }
        out.push('\n');
        for ds in &pretrain {
            let _ = write!(out, "| {} |", md_cell(&ds.name));
            for t in &downstream {
                match ds.expert_for.get(&t.key) {
                    Some(k) => {
                        let _ = write!(out, " Expert_{k} |");
                    }
                    None => out.push_str(" † |"),
                }
            }
            out.push('\n');
        }
        out.push_str(
            "\nExpert_k is the expert of pre-training task k. † means no corresponding \
             expert (task or modality mismatch); the shared backbone is fine-tuned instead.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Registry {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml");
        Registry::load(&path).unwrap()
    }

    #[test]
    fn markdown_has_every_table_and_table_1() {
        let md = render_markdown(&real());
        for h in [
            "### RadImageNet",
            "### MedMNIST",
            "### Med-MT",
            "### Downstream",
            "### Table 1.",
        ] {
            assert!(md.contains(h), "missing {h}");
        }
        assert!(md.contains("| Task ID | Name | Modality | Region | Labels | Number |"));
        assert!(md.contains("| 1 | Lung | CT | Chest | 6 | 152528 |"));
        assert!(md.contains("8 (paper: 3)"), "ISIC 2019 label count");
        assert!(md.contains("3 (paper: 8)"), "BUSI label count");
        assert!(md.contains("[^1]:"));
        let row = |name: &str| -> String {
            md.lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .unwrap_or_else(|| panic!("no Table 1 row {name}"))
                .to_string()
        };
        assert_eq!(
            row("RadImageNet"),
            "| RadImageNet | Expert_1 | Expert_10 | Expert_10 | Expert_6 | Expert_3 | † | Expert_1 |"
        );
        assert_eq!(
            row("MedMNIST"),
            "| MedMNIST | Expert_10 | † | † | † | Expert_5 | Expert_7 | Expert_10 |"
        );
        assert_eq!(
            row("Med-MT"),
            "| Med-MT | † | † | † | † | † | Expert_2 | † |"
        );
    }

    #[test]
    fn status_reports_present_missing_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"
[[dataset]]
key = "pre"
name = "Pre"
role = "pretrain"
source = "test"

[[dataset.task]]
id = 1
key = "a"
name = "A"
modality = "CT"
region = "Chest"
labels = 3
images = 10
format = "npz"
path = "a.npz"

[[dataset.task]]
id = 2
key = "b"
name = "B"
modality = "CT"
region = "Chest"
labels = 2
images = 10
format = "image_folder"
path = "b"

[[dataset.task]]
id = 3
key = "c"
name = "C"
modality = "CT"
region = "Chest"
labels = 2
images = 10
format = "npz"
path = "c.npz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;
        let reg = Registry::from_str(text, Path::new("reg.toml")).unwrap();
        std::fs::write(dir.path().join("a.npz"), b"x").unwrap();
        std::fs::write(dir.path().join("c.npz"), b"y").unwrap();
        let ds = &reg.datasets[0];
        assert_eq!(
            task_presence(ds, &ds.tasks[0], dir.path()),
            Presence::Present
        );
        assert_eq!(
            task_presence(ds, &ds.tasks[1], dir.path()),
            Presence::Missing
        );
        assert!(matches!(
            task_presence(ds, &ds.tasks[2], dir.path()),
            Presence::ChecksumMismatch { .. }
        ));
        let s = render_status(&reg, dir.path());
        assert!(
            s.contains("1 of 3 task(s) present, 1 missing, 1 with a checksum mismatch"),
            "{s}"
        );
        assert!(s.contains("--profile smoke"), "{s}");
        assert!(s.contains("checksum mismatch"), "{s}");
        let header = s.lines().find(|l| l.starts_with("dataset")).unwrap();
        assert!(header.contains("status"), "{header}");
        // Columns line up: every table row has `status` at the same offset.
        let col = header.find("status").unwrap();
        for l in s
            .lines()
            .skip_while(|l| !l.starts_with("dataset"))
            .skip(2)
            .take(3)
        {
            assert!(l.len() > col, "{l}");
            assert!(
                ["present", "missing", "checksum"]
                    .iter()
                    .any(|w| l[col..].starts_with(w)),
                "{l}"
            );
        }
    }
}
