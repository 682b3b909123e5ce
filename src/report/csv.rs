//! CSV rendering of [`Table`]s in long ("tidy") form: one line per (method, column) with the
//! mean and the spread in separate columns and no emphasis. Long form lets the tables of
//! several pre-training sets (with different task columns) share one header and one file,
//! and loads straight into a data frame.

use super::table::Table;

/// The header line (without newline).
pub const HEADER: &str =
    "experiment,pretrain,profile,data_kind,method,method_name,task,task_name,mean,std,n_seeds";

/// Renders the data lines of one table (no header), each ending with a newline. Means and
/// standard deviations carry two more decimals than the Markdown table (accuracy in percent
/// with 4, task weights with 5); `std` is empty for a single seed, and `mean`/`std` are empty
/// with `n_seeds` 0 for a missing cell.
pub fn render_rows(table: &Table) -> String {
    let d = table.decimals() + 2;
    let mut out = String::new();
    for row in &table.rows {
        for (column, cell) in table.columns.iter().zip(&row.cells) {
            let (mean, std, n) = match cell {
                Some(s) => (
                    format!("{:.d$}", s.mean),
                    s.std.map(|v| format!("{v:.d$}")).unwrap_or_default(),
                    s.n,
                ),
                None => (String::new(), String::new(), 0),
            };
            let fields = [
                field(&table.key.experiment),
                field(&table.key.pretrain),
                field(&table.key.profile),
                field(table.data_kind()),
                field(&row.key),
                field(&row.name),
                field(&column.key),
                field(&column.name),
                mean,
                std,
                n.to_string(),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// Quotes a field when it contains a comma, quote or line break (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
