//! Markdown rendering of a [`Table`]: a `##` title, the synthetic-data banner where needed, a
//! caption line, and a pipe table with the best cell of each column in bold, each cell's
//! mark (†, `(k/N)`) after its number, and differences signed.

use super::table::{Mark, RowKind, Summary, Table, SYNTHETIC_BANNER};

/// Shown for a cell without data.
pub const MISSING: &str = "–";

/// Renders one table as Markdown, ending with a newline.
pub fn render(table: &Table) -> String {
    let mut out = format!("## {}\n\n", table.title());
    if table.synthetic {
        out.push_str(&format!("> {SYNTHETIC_BANNER}\n\n"));
    }
    out.push_str(&format!("{}\n\n", table.caption()));

    out.push_str(&format!("| {} |", table.row_heading()));
    for column in &table.columns {
        out.push_str(&format!(" {} |", escape(&column.name)));
    }
    out.push_str("\n|:---|");
    for _ in &table.columns {
        out.push_str("---:|");
    }
    out.push('\n');
    for (r, row) in table.rows.iter().enumerate() {
        out.push_str(&format!("| {} |", escape(&row.name)));
        for (c, cell) in row.cells.iter().enumerate() {
            let text = match cell {
                Some(s) => {
                    let number = if row.kind == RowKind::Delta {
                        signed_text(s, table.decimals())
                    } else {
                        cell_text(s, table.decimals())
                    };
                    let number = if table.is_best(r, c) {
                        format!("**{number}**")
                    } else {
                        number
                    };
                    format!("{number}{}", mark_text(row.mark(c)))
                }
                None => MISSING.to_owned(),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    out
}

/// `61.23 ± 1.05`, or just `61.23` for a single seed (with 2 `decimals`).
pub fn cell_text(s: &Summary, decimals: usize) -> String {
    match s.std {
        Some(std) => format!("{:.d$} ± {:.d$}", s.mean, std, d = decimals),
        None => format!("{:.d$}", s.mean, d = decimals),
    }
}

/// A difference with its sign: `+1.50`, `-0.25`.
pub fn signed_text(s: &Summary, decimals: usize) -> String {
    format!("{:+.d$}", s.mean, d = decimals)
}

/// What follows a number: `†` right after it, ` (k/N)` after a space.
fn mark_text(mark: Option<Mark>) -> String {
    match mark {
        None => String::new(),
        Some(Mark::Shared) => Mark::Shared.text(),
        Some(m @ Mark::Partial { .. }) => format!(" {}", m.text()),
    }
}

/// Keeps a name from breaking the pipe table.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}
