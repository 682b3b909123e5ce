//! CSV rendering of [`Table`]s in long ("tidy") form: one line per (row, column) with the
//! mean and the spread in separate columns and no emphasis. Long form lets the tables of
//! several pre-training sets (with different task columns) share one header and one file,
//! and loads straight into a data frame. A cell's mark (`†`, `(k/N)`) goes to the trailing
//! `mark` column rather than into the number. Comparison tables have rows of their own
//! shape (foundation model, group, series), so they get their own header
//! ([`COMPARISON_HEADER`]) and file.

use super::table::{Quantity, Row, Table};

/// The header line (without newline) of accuracy, transfer and task-weight tables.
pub const HEADER: &str =
    "experiment,pretrain,profile,data_kind,method,method_name,task,task_name,mean,std,n_seeds,mark";

/// The header line (without newline) of comparison tables: `series` is `paper`, `ours` or
/// `delta`; `group` the reference's method key (`best` or a method); `method` the method
/// behind our numbers (the chosen best baseline).
pub const COMPARISON_HEADER: &str = "experiment,pretrain,profile,data_kind,source,foundation,\
group,method,series,row_name,column,column_name,mean,std,n_seeds,mark";

/// The header of tables of `quantity`.
pub fn header(quantity: Quantity) -> &'static str {
    match quantity {
        Quantity::Comparison(_) => COMPARISON_HEADER,
        Quantity::Accuracy | Quantity::TaskWeight | Quantity::TransferAccuracy => HEADER,
    }
}

/// Renders the data lines of one table (no header), each ending with a newline. Means and
/// standard deviations carry two more decimals than the Markdown table (accuracy in percent
/// with 4, task weights with 5); `std` is empty for a single seed, `mean`/`std` are empty
/// with `n_seeds` 0 for a missing cell, and the paper's numbers have `n_seeds` 0.
pub fn render_rows(table: &Table) -> String {
    let d = table.decimals() + 2;
    let mut out = String::new();
    for row in &table.rows {
        for (c, (column, cell)) in table.columns.iter().zip(&row.cells).enumerate() {
            let (mean, std, n) = match cell {
                Some(s) => (
                    format!("{:.d$}", s.mean),
                    s.std.map(|v| format!("{v:.d$}")).unwrap_or_default(),
                    s.n,
                ),
                None => (String::new(), String::new(), 0),
            };
            let mut fields = vec![
                field(&table.key.experiment),
                field(&table.key.pretrain),
                field(&table.key.profile),
                field(table.data_kind()),
            ];
            fields.extend(row_fields(table, row));
            fields.extend([
                field(&column.key),
                field(&column.name),
                mean,
                std,
                n.to_string(),
                field(&row.mark(c).map(|m| m.text()).unwrap_or_default()),
            ]);
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// The fields that say which row a line belongs to.
fn row_fields(table: &Table, row: &Row) -> Vec<String> {
    match (table.quantity, &row.group) {
        (Quantity::Comparison(_), Some(g)) => vec![
            field(table.source.as_deref().unwrap_or_default()),
            field(&g.foundation),
            field(&g.group),
            field(&g.method),
            g.series.as_str().to_owned(),
            field(&row.name),
        ],
        (Quantity::Comparison(_), None) => vec![
            field(table.source.as_deref().unwrap_or_default()),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            field(&row.name),
        ],
        _ => vec![field(&row.key), field(&row.name)],
    }
}

/// Quotes a field when it contains a comma, quote or line break (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
