//! End-to-end tests of the transfer table (and of the new tables in CSV and LaTeX): the
//! fixtures of [`super::test_support`] rendered, compared with the numbers worked out there.

use super::test_support::{options, section, write_table4};
use super::*;

#[test]
fn transfer_table_has_dashes_daggers_baselines_and_partial_averages() {
    let dir = tempfile::tempdir().unwrap();
    write_table4(dir.path(), "real");
    let rendered = render_reports(&options(dir.path(), Format::Markdown), None).unwrap();
    let text = &rendered.stdout;
    let table = section(
        text,
        "## table4 · transfer accuracy (%) from medmnist · profile smoke",
    );
    assert!(!table.contains("SYNTHETIC"), "{table}");
    assert!(
        table.contains("| Method | HAM10000 | COVID | BTC | Avg |"),
        "manifest order, registry names:\n{table}"
    );
    for line in [
        "| STL | 70.00 ± 0.00 | 81.00 ± 1.41 | – | 75.50 ± 0.71 (2/3) |",
        "| MTL | 73.00 ± 1.41 | 79.00 ± 1.41 | 61.00 ± 1.41 | 71.00 ± 1.41 |",
        "| MTL-KD ← biomedclip | 76.00 ± 0.00 | 82.00 ± 0.00 | 64.00 ± 0.00 | 74.00 ± 0.00 |",
        "| MTL-KD ← lvmmed | 70.00 ± 0.00 | 76.00 ± 0.00 | 58.00 ± 0.00 | 68.00 ± 0.00 |",
        "| LoRKD ← biomedclip | **80.00 ± 0.00** | **85.00 ± 0.00** | 65.00 ± 0.00† | **76.67 ± 0.00** |",
        "| LoRKD ← lvmmed | 78.00 ± 0.00 | 84.00 ± 0.00 | **66.00 ± 1.41**† | 76.00 ± 0.47 |",
        "| Foundation model (lvmmed) | 75.00 ± 0.00 | 83.00 ± 0.00 | 67.00 ± 0.00 | 75.00 ± 0.00 |",
        "| From scratch | 50.00 ± 0.00 | 60.00 ± 0.00 | 40.00 ± 0.00 | 50.00 ± 0.00 |",
    ] {
        assert!(table.contains(line), "missing `{line}` in:\n{table}");
    }
    // Paper order, then the foundation model, then from scratch.
    let at = |s: &str| table.find(s).unwrap();
    assert!(at("| STL |") < at("| MTL |") && at("| MTL |") < at("| MTL-KD ← biomedclip |"));
    assert!(
        at("| LoRKD ← lvmmed |") < at("| Foundation model")
            && at("| Foundation model") < at("| From scratch |")
    );
    for note in [
        "Seeds 0, 1 (n = 2 seeds; cells show mean ± sample std)",
        "Avg: per seed, the mean over the downstream sets a row has",
        "shows (k/3) after its Avg, which is then never marked best",
        "–: no result; STL: only the student of the pre-training task that matches the set is fine-tuned",
        "†: no expert of the pre-training set matches the downstream set (supplement Table 1), so LoRKD fine-tuned its shared network",
        "From scratch (the student trained on the set alone) are baselines, never marked best",
    ] {
        assert!(table.contains(note), "caption lacks `{note}`:\n{table}");
    }
    // The runs behind the rows: STL 4, MTL 6, 4 distilled rows × 6, foundation 6, scratch 6.
    assert!(table.contains("· 46 runs ·"), "{table}");

    // The from-scratch runs (pretrain "") are in every pre-training set's table.
    let rad = section(
        text,
        "## table4 · transfer accuracy (%) from radimagenet · profile smoke",
    );
    assert!(
        rad.contains("| MTL | – | 90.00 | – | 90.00 (1/3) |"),
        "{rad}"
    );
    assert!(
        rad.contains(
            "| From scratch | 50.00 ± 0.00 | 60.00 ± 0.00 | 40.00 ± 0.00 | 50.00 ± 0.00 |"
        ),
        "{rad}"
    );
    assert!(!rad.contains('†'), "MTL never carries †:\n{rad}");
    // Its measured row has seed 0 only; seed 1 is only in the from-scratch row.
    assert!(rad.contains("Seeds 0, 1 (n = 1 seeds per cell:"), "{rad}");

    let file = dir.path().join("reports/table4/transfer.md");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains(table) && written.contains(rad));
    assert!(rendered.files.contains(&file));
    assert!(rendered
        .files
        .contains(&dir.path().join("reports/table4/comparison.md")));
}

#[test]
fn csv_puts_marks_in_their_column_and_comparisons_in_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    write_table4(dir.path(), "real");
    let rendered = render_reports(&options(dir.path(), Format::Csv), None).unwrap();
    let out = &rendered.stdout;
    // One header for the stream (decomposition and transfer rows share it); the comparison
    // has its own columns and stays in its file.
    assert_eq!(out.matches("experiment,pretrain").count(), 1, "{out}");
    assert!(out.starts_with(&format!("{}\n", csv::HEADER)));
    assert!(!out.contains("paper"), "{out}");
    for line in [
        "table4,medmnist,smoke,real,lorkd@lvmmed,LoRKD ← lvmmed,btc,BTC,66.0000,1.4142,2,†",
        "table4,medmnist,smoke,real,lorkd@lvmmed,LoRKD ← lvmmed,covid,COVID,84.0000,0.0000,2,",
        "table4,medmnist,smoke,real,stl,STL,btc,BTC,,,0,",
        "table4,medmnist,smoke,real,stl,STL,avg,Avg,75.5000,0.7071,2,(2/3)",
        "table4,medmnist,smoke,real,scratch,From scratch,avg,Avg,50.0000,0.0000,2,",
        "table4,radimagenet,smoke,real,scratch,From scratch,covid,COVID,60.0000,0.0000,2,",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing `{line}` in:\n{out}"
        );
    }
    let transfer = std::fs::read_to_string(dir.path().join("reports/table4/transfer.csv")).unwrap();
    assert!(transfer.starts_with(&format!("{}\n", csv::HEADER)));

    let comparison =
        std::fs::read_to_string(dir.path().join("reports/table4/comparison.csv")).unwrap();
    let lines: Vec<&str> = comparison.lines().collect();
    assert_eq!(lines[0], csv::COMPARISON_HEADER);
    // Per pre-training set: 2 teachers × 2 groups × 3 series × (3 sets + Avg).
    let medmnist = lines
        .iter()
        .filter(|l| l.starts_with("table4,medmnist,"))
        .count();
    assert_eq!((lines.len(), medmnist), (1 + 2 * 48, 48), "{comparison}");
    for line in [
        "table4,medmnist,smoke,real,supplement Table 4,lvmmed,best,mtl,paper,lvmmed · best baseline (paper),covid,COVID,80.0000,,0,",
        "table4,medmnist,smoke,real,supplement Table 4,lvmmed,best,mtl,ours,lvmmed · best baseline: MTL (ours),covid,COVID,79.0000,1.4142,2,",
        "table4,medmnist,smoke,real,supplement Table 4,lvmmed,best,mtl,delta,lvmmed · best baseline Δ,covid,COVID,-1.0000,,2,",
        "table4,medmnist,smoke,real,supplement Table 4,biomedclip,lorkd,lorkd,ours,biomedclip · LoRKD (ours),btc,BTC,65.0000,0.0000,2,†",
    ] {
        assert!(lines.contains(&line), "missing `{line}` in:\n{comparison}");
    }
    assert_eq!(
        rendered.files,
        [
            dir.path().join("reports/table4/transfer.csv"),
            dir.path().join("reports/table4/comparison.csv"),
        ]
    );
}

#[test]
fn latex_marks_daggers_signs_deltas_and_bolds_no_paper_number() {
    let dir = tempfile::tempdir().unwrap();
    write_table4(dir.path(), "real");
    let text = render_reports(&options(dir.path(), Format::Latex), None)
        .unwrap()
        .stdout;
    assert!(text.contains("% table4 · transfer accuracy (%) from medmnist · profile smoke"));
    assert!(
        text.contains(
            "LoRKD $\\leftarrow$ lvmmed & 78.00 $\\pm$ 0.00 & 84.00 $\\pm$ 0.00 & \\textbf{66.00 \
         $\\pm$ 1.41}$^\\dagger$ & 76.00 $\\pm$ 0.47 \\\\"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "STL & 70.00 $\\pm$ 0.00 & 81.00 $\\pm$ 1.41 & -- & 75.50 $\\pm$ 0.71 (2/3) \\\\"
        ),
        "{text}"
    );
    assert!(text.contains("table4: transfer accuracy (\\%) from medmnist, profile smoke."));
    assert!(
        text.contains("$\\dagger$: no expert of the pre-training set"),
        "{text}"
    );

    let at = text
        .find("% table4 · Table 4 shape:")
        .expect("comparison table");
    let comparison = &text[at..];
    assert!(
        comparison.contains(
            "\\toprule\nFoundation model $\\cdot$ method & HAM10000 & COVID & BTC & Avg \\\\"
        ),
        "{comparison}"
    );
    assert!(
        comparison
            .contains("lvmmed $\\cdot$ best baseline (paper) & 72.00 & 80.00 & 60.00 & 70.00 \\\\"),
        "{comparison}"
    );
    assert!(
        comparison.contains(
            "biomedclip $\\cdot$ LoRKD $\\Delta$ & $-1.00$ & $+1.00$ & $-1.00$ & $-0.33$ \\\\"
        ),
        "{comparison}"
    );
    assert!(comparison.contains("Paper: supplement Table 4."));
    assert!(!comparison.contains("\\textbf"), "{comparison}");
    assert!(dir.path().join("reports/table4/comparison.tex").is_file());
    assert!(dir.path().join("reports/table4/transfer.tex").is_file());
}
