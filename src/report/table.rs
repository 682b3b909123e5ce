//! The data model of one rendered results table: rows (methods) × columns (tasks or
//! downstream sets, then `Avg`), each cell a [`Summary`] over seeds with an optional
//! [`Mark`]. Building a table (which numbers go where) and writing it (Markdown, CSV,
//! LaTeX) are separate, so every format shows the same numbers, the same marks and the same
//! "best" cells.

use std::collections::BTreeSet;

use crate::spec::run::Stage;

/// Mean and spread of one cell over seeds, in the unit shown (percent for accuracy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` when there is a single seed.
    pub std: Option<f64>,
    /// Number of seeds the cell summarises (0 for a number quoted from the paper).
    pub n: usize,
}

impl Summary {
    /// Summarises `values`; `None` for an empty slice.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        Some(Summary { mean, std, n })
    }

    /// A number quoted as it is (the paper's): no spread, no seeds of ours.
    pub fn quoted(value: f64) -> Summary {
        Summary {
            mean: value,
            std: None,
            n: 0,
        }
    }
}

/// A note attached to one cell, shown right after its number in every format (and in the
/// CSV's `mark` column), so a reader cannot take the number for what it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The paper's †: no expert matches the downstream set, so the method's shared network
    /// was fine-tuned instead (supplement section C, Table 1).
    Shared,
    /// An `Avg` over only `sets` of the table's `of` columns (the row has "–" elsewhere).
    Partial { sets: usize, of: usize },
}

impl Mark {
    /// The mark as plain text: `†`, `(2/7)`.
    pub fn text(self) -> String {
        match self {
            Mark::Shared => "†".to_owned(),
            Mark::Partial { sets, of } => format!("({sets}/{of})"),
        }
    }
}

/// A column heading: the machine key (task key, or `avg`) and the name shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnHead {
    pub key: String,
    pub name: String,
}

/// What a row is, which decides how it is shown and whether it can be best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// A method's results: ours, ranked.
    Measured,
    /// A reference shown for comparison (a foundation model, the from-scratch baseline, the
    /// paper's numbers), never marked best and not counted in the caption's seeds.
    Reference,
    /// A difference of two other rows (ours − paper), shown signed.
    Delta,
}

/// Which series of a comparison a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Paper,
    Ours,
    Delta,
}

impl Series {
    pub fn as_str(self) -> &'static str {
        match self {
            Series::Paper => "paper",
            Series::Ours => "ours",
            Series::Delta => "delta",
        }
    }
}

/// Where a row of a comparison table sits, for the comparison CSV's own columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroup {
    /// The foundation model (teacher) of the group.
    pub foundation: String,
    /// The reference's method key of the group: `best` or a method (`lorkd`).
    pub group: String,
    /// The method key behind our numbers (the chosen best baseline); empty when none ran.
    pub method: String,
    pub series: Series,
}

/// One row: a method and its cells, aligned with [`Table::columns`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub name: String,
    pub cells: Vec<Option<Summary>>,
    /// One per cell; `None` for an unmarked cell.
    pub marks: Vec<Option<Mark>>,
    pub kind: RowKind,
    /// Comparison tables only.
    pub group: Option<RowGroup>,
}

impl Row {
    /// A row of unmarked cells.
    pub fn new(key: String, name: String, cells: Vec<Option<Summary>>, kind: RowKind) -> Row {
        let marks = vec![None; cells.len()];
        Row {
            key,
            name,
            cells,
            marks,
            kind,
            group: None,
        }
    }

    /// The mark of cell `col`, if any.
    pub fn mark(&self, col: usize) -> Option<Mark> {
        self.marks.get(col).copied().flatten()
    }
}

/// What the table is about; tables are grouped and ordered by this key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableKey {
    pub experiment: String,
    /// The pre-training set; empty for the transfer table of a store that has only
    /// from-scratch runs.
    pub pretrain: String,
    pub profile: String,
}

/// What a table's cells measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Test accuracy in percent on the pre-training tasks, higher is better (the paper's
    /// decomposition tables).
    Accuracy,
    /// The weight a gradient-balancing method gave each task, averaged over the steps of the
    /// run's last epoch: a description of the method, with no "best".
    TaskWeight,
    /// Test accuracy in percent on the downstream sets after fine-tuning, higher is better.
    TransferAccuracy,
    /// Our accuracies beside the paper's (supplement Tables 3 and 4 for `Decompose` and
    /// `Transfer`): a comparison, with no "best".
    Comparison(Stage),
}

/// One results table, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub key: TableKey,
    pub quantity: Quantity,
    pub columns: Vec<ColumnHead>,
    pub rows: Vec<Row>,
    /// True when any row behind the table came from synthetic data.
    pub synthetic: bool,
    /// Seeds present in the table.
    pub seeds: BTreeSet<u64>,
    /// Number of distinct runs behind the table.
    pub runs: usize,
    /// Epochs of the rows that were kept (the last epoch of every run and task).
    pub epochs: BTreeSet<u32>,
    /// Sentences the caption adds after the seeds and runs: what `Avg`, `†` and the rows
    /// mean where that is not obvious.
    pub notes: Vec<String>,
    /// Comparison tables: where the paper's numbers are printed.
    pub source: Option<String>,
}

/// Means closer than this count as a tie for "best" (both are marked).
const TIE: f64 = 1e-9;

impl Table {
    /// A table without notes or source.
    pub fn new(key: TableKey, quantity: Quantity) -> Table {
        Table {
            key,
            quantity,
            columns: Vec::new(),
            rows: Vec::new(),
            synthetic: false,
            seeds: BTreeSet::new(),
            runs: 0,
            epochs: BTreeSet::new(),
            notes: Vec::new(),
            source: None,
        }
    }

    /// The mean of cell (`row`, `col`) when it competes for "best": a measured row's value,
    /// not an `Avg` over fewer sets than the table has (it averages other sets).
    fn contender(&self, row: usize, col: usize) -> Option<f64> {
        let r = self.rows.get(row)?;
        if r.kind != RowKind::Measured || matches!(r.mark(col), Some(Mark::Partial { .. })) {
            return None;
        }
        r.cells.get(col).copied().flatten().map(|s| s.mean)
    }

    /// Whether the tables of this quantity mark a best cell per column.
    fn ranks(&self) -> bool {
        matches!(
            self.quantity,
            Quantity::Accuracy | Quantity::TransferAccuracy
        )
    }

    /// Whether the cell at (`row`, `col`) has the highest mean of its column. A column needs
    /// contenders in at least two rows before anything is marked best: a lone number is not
    /// a winner.
    pub fn is_best(&self, row: usize, col: usize) -> bool {
        if !self.ranks() {
            return false;
        }
        let means: Vec<f64> = (0..self.rows.len())
            .filter_map(|r| self.contender(r, col))
            .collect();
        if means.len() < 2 {
            return false;
        }
        let best = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        self.contender(row, col)
            .is_some_and(|mean| mean >= best - TIE)
    }

    /// "synthetic" when any row behind the table was synthetic, else "real".
    pub fn data_kind(&self) -> &'static str {
        if self.synthetic {
            "synthetic"
        } else {
            "real"
        }
    }

    /// What the cells are, for CSV consumers and captions.
    pub fn quantity_text(&self) -> &'static str {
        match self.quantity {
            Quantity::Accuracy | Quantity::Comparison(Stage::Decompose) => {
                "decomposition accuracy (%)"
            }
            Quantity::TaskWeight => "task weights (mean over the last epoch's steps)",
            Quantity::TransferAccuracy | Quantity::Comparison(_) => "transfer accuracy (%)",
        }
    }

    /// What the table shows of which data, e.g. `transfer accuracy (%) from medmnist`.
    pub fn subject(&self) -> String {
        let what = self.quantity_text();
        let set = &self.key.pretrain;
        match self.quantity {
            Quantity::Accuracy | Quantity::TaskWeight => format!("{what} on {set}"),
            Quantity::TransferAccuracy if set.is_empty() => {
                format!("{what} of the from-scratch baseline")
            }
            Quantity::TransferAccuracy => format!("{what} from {set}"),
            Quantity::Comparison(Stage::Decompose) => {
                format!("Table 3 shape: {what} on {set} vs the paper")
            }
            Quantity::Comparison(_) => format!("Table 4 shape: {what} from {set} vs the paper"),
        }
    }

    /// Decimals shown in a cell: accuracies in percent need 2, weights near 1/T need 3.
    pub fn decimals(&self) -> usize {
        match self.quantity {
            Quantity::TaskWeight => 3,
            Quantity::Accuracy | Quantity::TransferAccuracy | Quantity::Comparison(_) => 2,
        }
    }

    /// The heading of the row-label column.
    pub fn row_heading(&self) -> &'static str {
        match self.quantity {
            Quantity::Comparison(_) => "Foundation model · method",
            _ => "Method",
        }
    }

    /// The title line, without any markup.
    pub fn title(&self) -> String {
        format!(
            "{} · {} · profile {}",
            self.key.experiment,
            self.subject(),
            self.key.profile
        )
    }

    /// One caption line: seeds, number of runs and the epochs of the rows shown, then the
    /// table's notes.
    pub fn caption(&self) -> String {
        let seeds = join(self.seeds.iter());
        let n = self.seeds.len();
        // Rows can have fewer seeds than the table (a method not yet run for every seed);
        // reference rows (the foundation model, trained once; the paper) and differences
        // do not count.
        let per_cell: Vec<usize> = self
            .rows
            .iter()
            .filter(|r| r.kind == RowKind::Measured)
            .flat_map(|r| r.cells.iter().flatten().map(|c| c.n))
            .collect();
        let (lo, hi) = (
            per_cell.iter().copied().min().unwrap_or(n),
            per_cell.iter().copied().max().unwrap_or(n),
        );
        let seed_part = if n == 1 {
            format!("Seed {seeds} (n = 1 seed; cells show the single value, no spread)")
        } else if lo != hi || lo != n {
            // Also when every cell has the same, smaller count (the other seeds are only in
            // reference rows).
            let range = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}–{hi}")
            };
            format!("Seeds {seeds} (n = {range} seeds per cell: mean ± sample std where n > 1, the single value where n = 1)")
        } else {
            format!("Seeds {seeds} (n = {n} seeds; cells show mean ± sample std)")
        };
        let runs = if self.runs == 1 { "run" } else { "runs" };
        let epochs = if self.epochs.len() == 1 {
            "epoch"
        } else {
            "epochs"
        };
        let mut caption = format!(
            "{seed_part} · {} {runs} · last {epochs} {}",
            self.runs,
            join(self.epochs.iter())
        );
        if !self.notes.is_empty() {
            caption.push_str(". ");
            caption.push_str(&self.notes.join(" "));
        }
        caption
    }
}
/// Prominent warning shown before a table built (even partly) from synthetic data.
pub const SYNTHETIC_BANNER: &str = "**SYNTHETIC DATA** — these numbers come from synthetic \
stand-ins generated by kdbench, not from the real data sets; they are NOT a reproduction of \
the paper.";

/// The banner without Markdown emphasis, for formats that have their own.
pub const SYNTHETIC_PLAIN: &str = "SYNTHETIC DATA — these numbers come from synthetic \
stand-ins generated by kdbench, not from the real data sets; they are NOT a reproduction of \
the paper.";

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_sample_std() {
        // 60 and 70: mean 65, sample std sqrt(50) = 7.0710678…
        let s = Summary::of(&[60.0, 70.0]).unwrap();
        assert!((s.mean - 65.0).abs() < 1e-12);
        assert!((s.std.unwrap() - 7.0710678118654755).abs() < 1e-12);
        assert_eq!(s.n, 2);
        let one = Summary::of(&[42.0]).unwrap();
        assert_eq!(one.std, None);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn best_needs_two_values_and_marks_ties() {
        let cell = |m| {
            Some(Summary {
                mean: m,
                std: None,
                n: 1,
            })
        };
        let table = Table {
            key: TableKey {
                experiment: "e".into(),
                pretrain: "p".into(),
                profile: "smoke".into(),
            },
            quantity: Quantity::Accuracy,
            columns: vec![
                ColumnHead {
                    key: "a".into(),
                    name: "A".into(),
                },
                ColumnHead {
                    key: "b".into(),
                    name: "B".into(),
                },
            ],
            rows: vec![
                Row::new(
                    "x".into(),
                    "X".into(),
                    vec![cell(50.0), cell(1.0)],
                    RowKind::Measured,
                ),
                Row::new(
                    "y".into(),
                    "Y".into(),
                    vec![cell(50.0), None],
                    RowKind::Measured,
                ),
            ],
            synthetic: false,
            seeds: BTreeSet::from([0]),
            runs: 2,
            epochs: BTreeSet::from([3]),
            notes: Vec::new(),
            source: None,
        };
        assert!(table.is_best(0, 0) && table.is_best(1, 0));
        assert!(
            !table.is_best(0, 1),
            "a single value in a column is not marked"
        );
        assert!(!table.is_best(1, 1));
        assert!(table.caption().contains("n = 1 seed"));

        // Three seeds in the table, one row with only one of them: the caption says so.
        let mut mixed = table.clone();
        mixed.seeds = BTreeSet::from([0, 1, 2]);
        mixed.rows[0].cells[0] = Some(Summary {
            mean: 50.0,
            std: Some(1.0),
            n: 3,
        });
        assert!(
            mixed.caption().contains("n = 1–3 seeds per cell"),
            "{}",
            mixed.caption()
        );
        mixed.rows[0].cells[1] = None;
        mixed.rows[1].cells[0] = mixed.rows[0].cells[0];
        assert!(mixed
            .caption()
            .contains("(n = 3 seeds; cells show mean ± sample std)"));
    }
}
