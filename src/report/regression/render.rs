//! The regression report as Markdown (for people and CI artefacts) and JSON (for tools):
//! regressions first, then improvements, then what stayed within noise.

use std::fmt::Write as _;

use super::verdict::Verdict;
use super::{Cell, Comparison, Quantity};
use crate::report::table::SYNTHETIC_BANNER;

/// A value in its quantity's precision.
fn value(quantity: Quantity, v: f64) -> String {
    match quantity {
        Quantity::Accuracy => format!("{v:.2}"),
        Quantity::RelativeSpeed => format!("{v:.3}"),
        Quantity::Speed => format!("{v:.0}"),
    }
}

fn seeds(values: &[(u64, f64)], quantity: Quantity) -> String {
    values
        .iter()
        .map(|(s, v)| format!("{s}: {}", value(quantity, *v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mean(values: &[(u64, f64)]) -> f64 {
    values.iter().map(|(_, v)| v).sum::<f64>() / values.len().max(1) as f64
}

/// The change and its interval, in the cell's units.
fn change(c: &Cell) -> String {
    if c.verdict == Verdict::Failed {
        return "–".into();
    }
    match c.key.quantity {
        Quantity::Accuracy => format!(
            "{:+.2} pt [{:+.2}, {:+.2}]",
            c.change, c.change_low, c.change_high
        ),
        _ => format!(
            "{:+.1} % [{:+.1}, {:+.1}]",
            100.0 * (c.change - 1.0),
            100.0 * (c.change_low - 1.0),
            100.0 * (c.change_high - 1.0)
        ),
    }
}

fn table(out: &mut String, title: &str, cells: &[&Cell]) {
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(out, "### {title} ({})\n", cells.len());
    out.push_str("| cell | quantity | baseline mean | this sweep mean | change [CI] | baseline seeds | this sweep's seeds | note |\n");
    out.push_str("|:---|:---|---:|---:|:---|:---|:---|:---|\n");
    for c in cells {
        let q = c.key.quantity;
        let fmt = |v: f64| value(q, v);
        let current = if c.current.is_empty() {
            "–".to_string()
        } else {
            fmt(mean(&c.current))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.key.label(),
            q.label(),
            fmt(mean(&c.baseline)),
            current,
            change(c),
            seeds(&c.baseline, q),
            seeds(&c.current, q),
            c.note.as_deref().unwrap_or("")
        );
    }
    out.push('\n');
}

/// The Markdown report.
pub fn render_markdown(cmp: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Regression check · {} · profile {} · against {}\n",
        cmp.experiment,
        cmp.profile,
        cmp.baseline.display()
    );
    if cmp.data_kinds.iter().any(|k| k == "synthetic") {
        let _ = writeln!(out, "> {SYNTHETIC_BANNER}\n");
    }
    let s = &cmp.settings;
    let verdict = if cmp.regressed() {
        "**REGRESSION**"
    } else {
        "no regression"
    };
    let _ = writeln!(
        out,
        "Verdict: {verdict} · {} failed · {} regressed · {} improved · {} within noise ({} cells).\n",
        cmp.count(Verdict::Failed),
        cmp.count(Verdict::Regressed),
        cmp.count(Verdict::Improved),
        cmp.count(Verdict::WithinNoise),
        cmp.cells.len()
    );
    let judged = match (s.accuracy, s.speed) {
        (true, true) => "test accuracy per task and its mean over tasks (Avg), and training speed",
        (true, false) => {
            "test accuracy per task and its mean over tasks (Avg) only (--only accuracy)"
        }
        _ => "training speed only (--only speed)",
    };
    let _ = writeln!(
        out,
        "Judged: {judged}. Test: Welch's t, {:.0} % two-sided confidence interval of the difference of means (this sweep − baseline) with the seeds as replicates; a cell regressed (improved) when the whole interval is below (above) zero and the change is at least {:.1} accuracy points or {:.0} % speed. Speed: per method and data sets, the images of all its runs' last epochs over their seconds, divided by the reference throughput the runs measured after each epoch, compared as a ratio.\n",
        100.0 * s.confidence,
        s.min_accuracy_points,
        100.0 * s.min_speed_fraction
    );
    if !cmp.warnings.is_empty() {
        out.push_str("Warnings:\n\n");
        for w in &cmp.warnings {
            let _ = writeln!(out, "- {w}");
        }
        out.push('\n');
    }
    let of = |v: Verdict| {
        cmp.cells
            .iter()
            .filter(|c| c.verdict == v)
            .collect::<Vec<_>>()
    };
    table(&mut out, "Failed", &of(Verdict::Failed));
    table(&mut out, "Regressed", &of(Verdict::Regressed));
    table(&mut out, "Improved", &of(Verdict::Improved));
    table(&mut out, "Within noise", &of(Verdict::WithinNoise));
    out
}

/// The JSON report: the whole comparison (NaN becomes null).
pub fn render_json(cmp: &Comparison) -> String {
    let mut s =
        serde_json::to_string_pretty(cmp).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
