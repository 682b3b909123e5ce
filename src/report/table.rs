//! The data model of one rendered results table: rows (methods) × columns (tasks, then
//! `Avg`), each cell a [`Summary`] over seeds. Building a table (which numbers go where) and
//! writing it (Markdown, CSV, LaTeX) are separate, so every format shows the same numbers and
//! the same "best" marks.

use std::collections::BTreeSet;

/// Mean and spread of one cell over seeds, in the unit shown (percent for accuracy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` when there is a single seed.
    pub std: Option<f64>,
    /// Number of seeds the cell summarises.
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
}

/// A column heading: the machine key (task key, or `avg`) and the name shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnHead {
    pub key: String,
    pub name: String,
}

/// One row: a method and its cells, aligned with [`Table::columns`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub name: String,
    pub cells: Vec<Option<Summary>>,
    /// A reference shown for comparison (the foundation model), never marked best.
    pub reference: bool,
}

/// What the table is about; tables are grouped and ordered by this key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableKey {
    pub experiment: String,
    pub pretrain: String,
    pub profile: String,
}

/// What a table's cells measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Test accuracy in percent, higher is better (the paper's tables).
    Accuracy,
    /// The weight a gradient-balancing method gave each task, averaged over the steps of the
    /// run's last epoch: a description of the method, with no "best".
    TaskWeight,
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
}

/// Means closer than this count as a tie for "best" (both are marked).
const TIE: f64 = 1e-9;

impl Table {
    /// Whether the cell at (`row`, `col`) has the highest mean of its column. A column needs
    /// values in at least two rows before anything is marked best: a lone number is not a
    /// winner.
    pub fn is_best(&self, row: usize, col: usize) -> bool {
        let means: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| !r.reference)
            .filter_map(|r| r.cells.get(col).copied().flatten())
            .map(|s| s.mean)
            .collect();
        if self.quantity != Quantity::Accuracy
            || means.len() < 2
            || self.rows.get(row).is_some_and(|r| r.reference)
        {
            return false;
        }
        let best = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match self
            .rows
            .get(row)
            .and_then(|r| r.cells.get(col).copied().flatten())
        {
            Some(s) => s.mean >= best - TIE,
            None => false,
        }
    }

    /// "synthetic" when any row behind the table was synthetic, else "real".
    pub fn data_kind(&self) -> &'static str {
        if self.synthetic {
            "synthetic"
        } else {
            "real"
        }
    }

    /// What the cells are, for titles and captions.
    pub fn quantity_text(&self) -> &'static str {
        match self.quantity {
            Quantity::Accuracy => "decomposition accuracy (%)",
            Quantity::TaskWeight => "task weights (mean over the last epoch's steps)",
        }
    }

    /// Decimals shown in a cell: accuracies in percent need 2, weights near 1/T need 3.
    pub fn decimals(&self) -> usize {
        match self.quantity {
            Quantity::Accuracy => 2,
            Quantity::TaskWeight => 3,
        }
    }

    /// The title line, without any markup.
    pub fn title(&self) -> String {
        format!(
            "{} · {} on {} · profile {}",
            self.key.experiment,
            self.quantity_text(),
            self.key.pretrain,
            self.key.profile
        )
    }

    /// One caption line: seeds, number of runs and the epochs of the rows shown.
    pub fn caption(&self) -> String {
        let seeds = join(self.seeds.iter());
        let n = self.seeds.len();
        // Rows can have fewer seeds than the table (a method not yet run for every seed);
        // reference rows (the foundation model, trained once) do not count.
        let per_cell: Vec<usize> = self
            .rows
            .iter()
            .filter(|r| !r.reference)
            .flat_map(|r| r.cells.iter().flatten().map(|c| c.n))
            .collect();
        let (lo, hi) = (
            per_cell.iter().copied().min().unwrap_or(n),
            per_cell.iter().copied().max().unwrap_or(n),
        );
        let seed_part = if n == 1 {
            format!("Seed {seeds} (n = 1 seed; cells show the single value, no spread)")
        } else if lo != hi {
            format!("Seeds {seeds} (n = {lo}–{hi} seeds per cell: mean ± sample std where n > 1, the single value where n = 1)")
        } else {
            format!("Seeds {seeds} (n = {n} seeds; cells show mean ± sample std)")
        };
        let runs = if self.runs == 1 { "run" } else { "runs" };
        let epochs = if self.epochs.len() == 1 {
            "epoch"
        } else {
            "epochs"
        };
        format!(
            "{seed_part} · {} {runs} · last {epochs} {}",
            self.runs,
            join(self.epochs.iter())
        )
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
                Row {
                    key: "x".into(),
                    name: "X".into(),
                    cells: vec![cell(50.0), cell(1.0)],
                    reference: false,
                },
                Row {
                    key: "y".into(),
                    name: "Y".into(),
                    cells: vec![cell(50.0), None],
                    reference: false,
                },
            ],
            synthetic: false,
            seeds: BTreeSet::from([0]),
            runs: 2,
            epochs: BTreeSet::from([3]),
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
