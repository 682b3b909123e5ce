//! End-to-end tests of the decomposition report: metrics written to a temporary run store,
//! rendered in every format, compared with numbers worked out by hand.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::store::metrics::{write_metrics, MetricRow};
use crate::store::task_weights::{write_task_weights, WeightRow};

fn row(
    experiment: &str,
    run_id: &str,
    method: &str,
    seed: u64,
    task: &str,
    epoch: u32,
    value: f64,
) -> MetricRow {
    MetricRow {
        experiment: experiment.into(),
        run_id: run_id.into(),
        stage: "decompose".into(),
        method: method.into(),
        pretrain: "medmnist".into(),
        downstream: None,
        foundation: Some("resnet50".into()),
        task: task.into(),
        seed,
        epoch,
        split: "test".into(),
        metric: "accuracy".into(),
        value,
        profile: "smoke".into(),
        code_version: "0.1.0+train.1".into(),
        data_kind: "real".into(),
        device: "cpu".into(),
        threads: 2,
        wall_time_s: 1.5 * epoch as f64,
        provenance: Default::default(),
    }
}

/// Last-epoch test accuracies (fractions) by method, seed, then task (colon, derma, chest).
///
/// Expected cells (percent), worked out by hand; std is the sample std, |a − b| / √2 for two
/// seeds:
/// - stl:   colon 60, 70 → 65.00 ± 7.07; derma 50, 52 → 51.00 ± 1.41; chest 80, 80 → 80.00 ± 0.00;
///   Avg: seed 0 (60+50+80)/3 = 63.333, seed 1 (70+52+80)/3 = 67.333 → 65.33 ± 2.83
/// - lorkd: colon 72, 74 → 73.00 ± 1.41; derma 40, 50 → 45.00 ± 7.07; chest 90, 86 → 88.00 ± 2.83;
///   Avg: seed 0 67.333, seed 1 70.000 → 68.67 ± 1.89
const FINAL: [(&str, u64, [f64; 3]); 4] = [
    ("stl", 0, [0.60, 0.50, 0.80]),
    ("stl", 1, [0.70, 0.52, 0.80]),
    ("lorkd", 0, [0.72, 0.40, 0.90]),
    ("lorkd", 1, [0.74, 0.50, 0.86]),
];
const TASKS: [&str; 3] = ["colon", "derma", "chest"];

/// Writes the 2 methods × 3 tasks × 2 seeds × 2 epochs fixture (plus rows the report must
/// ignore) into `<root>/results`, one run folder per (method, seed).
fn write_fixture(root: &Path, experiment: &str, kind_of: impl Fn(&str, u64) -> &'static str) {
    for (method, seed, values) in FINAL {
        let run_id = format!("{experiment}-{method}-s{seed}");
        let mut rows = Vec::new();
        for (task, value) in TASKS.iter().zip(values) {
            // Epoch 1 has a different accuracy: picking it would change every cell.
            let first = row(experiment, &run_id, method, seed, task, 1, 0.10);
            let last = row(experiment, &run_id, method, seed, task, 2, value);
            // Seed 1 writes the last epoch first, so row order cannot stand in for epochs.
            if seed == 1 {
                rows.extend([last, first]);
            } else {
                rows.extend([first, last]);
            }
            let mut val = row(experiment, &run_id, method, seed, task, 2, 0.99);
            val.split = "val".into();
            let mut loss = row(experiment, &run_id, method, seed, task, 2, 0.01);
            loss.metric = "loss".into();
            let mut transfer = row(experiment, &run_id, method, seed, task, 2, 0.98);
            transfer.stage = "transfer".into();
            rows.extend([val, loss, transfer]);
        }
        rows.push(row(experiment, &run_id, method, seed, "all", 2, 0.97));
        for r in &mut rows {
            r.data_kind = kind_of(method, seed).into();
        }
        let path = root.join("results").join(&run_id).join("metrics.parquet");
        write_metrics(&path, &rows).unwrap();
    }
}

fn options(root: &Path, format: Format, experiment: Option<&str>) -> ReportOptions {
    let method_order = [
        "stl",
        "mtl",
        "mocomtl",
        "alignedmtl",
        "stlkd",
        "mtlkd",
        "kf",
        "lorkd",
    ];
    let display = [
        ("stl", "STL"),
        ("lorkd", "LoRKD"),
        ("mtl", "MTL"),
        ("mocomtl", "MoCo-MTL"),
    ];
    ReportOptions {
        results_dir: root.join("results"),
        reports_dir: root.join("reports"),
        experiment: experiment.map(str::to_owned),
        format,
        task_order: BTreeMap::from([(
            "medmnist".to_string(),
            vec![
                ("colon".to_string(), "Colon".to_string()),
                ("derma".to_string(), "Derma".to_string()),
                ("chest".to_string(), "Chest".to_string()),
            ],
        )]),
        method_order: method_order.iter().map(|m| m.to_string()).collect(),
        method_display: display
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn all_real(_: &str, _: u64) -> &'static str {
    "real"
}

fn no_tmp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            no_tmp_files(&path);
        } else {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".tmp"),
                "temporary file left behind: {path:?}"
            );
        }
    }
}

#[test]
fn markdown_table_matches_hand_computed_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "table3", all_real);
    let text = render_reports(&options(dir.path(), Format::Markdown, None), None)
        .unwrap()
        .stdout;

    assert!(text.contains("## table3 · decomposition accuracy (%) on medmnist · profile smoke"));
    assert!(!text.contains("SYNTHETIC"), "all data were real:\n{text}");
    assert!(text.contains("Seeds 0, 1 (n = 2 seeds"), "{text}");
    assert!(text.contains("· 4 runs ·"), "{text}");
    assert!(
        text.contains("last epoch 2"),
        "only the last epoch is shown:\n{text}"
    );
    assert!(
        text.contains("| Method | Colon | Derma | Chest | Avg |"),
        "{text}"
    );
    assert!(
        text.contains("| STL | 65.00 ± 7.07 | **51.00 ± 1.41** | 80.00 ± 0.00 | 65.33 ± 2.83 |"),
        "{text}"
    );
    assert!(
        text.contains(
            "| LoRKD | **73.00 ± 1.41** | 45.00 ± 7.07 | **88.00 ± 2.83** | **68.67 ± 1.89** |"
        ),
        "{text}"
    );
    // Rows follow the method order, not the alphabet.
    assert!(text.find("| STL |").unwrap() < text.find("| LoRKD |").unwrap());

    let written = dir.path().join("reports/table3/decomposition.md");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), text);
    no_tmp_files(&dir.path().join("reports"));
}

#[test]
fn synthetic_rows_put_a_banner_before_the_table() {
    let dir = tempfile::tempdir().unwrap();
    // A single synthetic run is enough to mark the table.
    write_fixture(dir.path(), "table3", |m, s| {
        if m == "lorkd" && s == 1 {
            "synthetic"
        } else {
            "real"
        }
    });
    let text = render_reports(&options(dir.path(), Format::Markdown, None), None)
        .unwrap()
        .stdout;
    let banner = "> **SYNTHETIC DATA** — these numbers come from synthetic stand-ins generated by \
                  kdbench, not from the real data sets; they are NOT a reproduction of the paper.";
    let at = text.find(banner).expect("banner missing");
    assert!(at < text.find("| Method |").unwrap());
}

#[test]
fn csv_is_long_with_separate_mean_and_std() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "table3", |_, _| "synthetic");
    let text = render_reports(&options(dir.path(), Format::Csv, None), None)
        .unwrap()
        .stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], csv::HEADER);
    // 2 methods × (3 tasks + Avg)
    assert_eq!(lines.len(), 1 + 8, "{text}");
    // The trailing `mark` column is empty: decomposition cells carry no marks.
    assert!(
        lines.contains(&"table3,medmnist,smoke,synthetic,stl,STL,colon,Colon,65.0000,7.0711,2,")
    );
    assert!(
        lines.contains(&"table3,medmnist,smoke,synthetic,lorkd,LoRKD,avg,Avg,68.6667,1.8856,2,")
    );
    assert!(!text.contains("**"), "no bold in csv");
    let written = dir.path().join("reports/table3/decomposition.csv");
    assert_eq!(std::fs::read_to_string(written).unwrap(), text);
}

#[test]
fn latex_has_booktabs_bold_best_and_synthetic_notes() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "table3", |_, _| "synthetic");
    let text = render_reports(&options(dir.path(), Format::Latex, None), None)
        .unwrap()
        .stdout;
    assert!(text.contains("% SYNTHETIC DATA — these numbers come from synthetic stand-ins"));
    assert!(text.contains("\\textit{Synthetic data:"));
    assert!(text.contains("\\begin{tabular}{lcccc}"));
    assert!(text.contains("Method & Colon & Derma & Chest & Avg \\\\"));
    assert!(text.contains(
        "LoRKD & \\textbf{73.00 $\\pm$ 1.41} & 45.00 $\\pm$ 7.07 & \\textbf{88.00 $\\pm$ 2.83} \
         & \\textbf{68.67 $\\pm$ 1.89} \\\\"
    ));
    assert!(text.contains("decomposition accuracy (\\%)"));
    assert!(text.trim_end().ends_with("\\end{table}"));
    assert!(dir
        .path()
        .join("reports/table3/decomposition.tex")
        .is_file());

    let real = tempfile::tempdir().unwrap();
    write_fixture(real.path(), "table3", all_real);
    let text = render_reports(&options(real.path(), Format::Latex, None), None)
        .unwrap()
        .stdout;
    assert!(!text.contains("SYNTHETIC") && !text.contains("Synthetic"));
}

#[test]
fn unknown_experiment_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "table3", all_real);
    write_fixture(dir.path(), "table4", all_real);
    let err =
        render_reports(&options(dir.path(), Format::Markdown, Some("tabel3")), None).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("tabel3") && msg.contains("table3, table4"),
        "{msg}"
    );
}

#[test]
fn experiment_filter_and_one_file_per_experiment() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "table3", all_real);
    write_fixture(dir.path(), "table4", all_real);
    let all = render_reports(&options(dir.path(), Format::Markdown, None), None)
        .unwrap()
        .stdout;
    assert!(all.contains("## table3 ·") && all.contains("## table4 ·"));
    assert!(dir.path().join("reports/table4/decomposition.md").is_file());

    let only = render_reports(&options(dir.path(), Format::Markdown, Some("table4")), None)
        .unwrap()
        .stdout;
    assert!(!only.contains("## table3 ·") && only.contains("## table4 ·"));

    // Run ids restrict the scan.
    let ids = vec!["table3-stl-s0".to_string()];
    let one = render_reports(&options(dir.path(), Format::Markdown, None), Some(&ids))
        .unwrap()
        .stdout;
    assert!(
        one.contains("· 1 run ·") && !one.contains("table4"),
        "{one}"
    );
}

#[test]
fn single_seed_shows_mean_only_and_incomplete_methods_have_no_avg() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let stl: Vec<MetricRow> = TASKS
        .iter()
        .zip([0.60, 0.50, 0.80])
        .map(|(t, v)| row("fig", "stl-s3", "stl", 3, t, 5, v))
        .collect();
    // MTL never reports chest: its chest cell and its Avg are missing.
    let mtl: Vec<MetricRow> = [("colon", 0.64), ("derma", 0.55)]
        .iter()
        .map(|(t, v)| row("fig", "mtl-s3", "mtl", 3, t, 5, *v))
        .collect();
    write_metrics(&results.join("stl-s3/metrics.parquet"), &stl).unwrap();
    write_metrics(&results.join("mtl-s3/metrics.parquet"), &mtl).unwrap();

    let text = render_reports(&options(dir.path(), Format::Markdown, None), None)
        .unwrap()
        .stdout;
    assert!(text.contains("Seed 3 (n = 1 seed"), "{text}");
    assert!(text.contains("last epoch 5"), "{text}");
    // STL Avg = (60 + 50 + 80) / 3 = 63.33; one method has an Avg, so it is not marked best.
    assert!(
        text.contains("| STL | 60.00 | 50.00 | 80.00 | 63.33 |"),
        "{text}"
    );
    assert!(
        text.contains("| MTL | **64.00** | **55.00** | – | – |"),
        "{text}"
    );
    assert!(!text.contains('±'), "{text}");
}

#[test]
fn no_results_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let err = render_reports(&options(dir.path(), Format::Markdown, None), None).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("harness run FILE"), "{err}");
}

#[test]
fn experiment_names_cannot_escape_the_reports_dir() {
    let path = report_path(
        Path::new("reports"),
        "../x/y",
        "decomposition",
        Format::Latex,
    );
    assert_eq!(path, Path::new("reports/.._x_y/decomposition.tex"));
    let path = report_path(Path::new("reports"), "..", "decomposition", Format::Csv);
    assert_eq!(path, Path::new("reports/__/decomposition.csv"));
}

/// Two MoCo-MTL runs (seeds 0, 1) with accuracies and logged task weights, beside the STL and
/// LoRKD fixture. Expected weights, worked out by hand from the last epoch's steps only (the
/// first epoch's 0.9 on colon must not count):
/// - seed 0: colon (0.2 + 0.4)/2 = 0.3, derma 0.3, chest (0.5 + 0.3)/2 = 0.4; sum 1.0
/// - seed 1: colon (0.1 + 0.3)/2 = 0.2, derma (0.5 + 0.3)/2 = 0.4, chest 0.4 (one step: the
///   task was absent from step 4's batch); sum 1.0
/// - cells: colon 0.250 ± 0.1/√2 = 0.071, derma 0.350 ± 0.071, chest 0.400 ± 0.000, Sum
///   1.000 ± 0.000
fn write_weights_fixture(root: &Path) {
    let epoch1 = [(1, "colon", 0.9), (1, "derma", 0.05), (1, "chest", 0.05)];
    // (seed, the last epoch's (step, task, weight) rows)
    type Steps<'a> = Vec<(u64, &'a str, f64)>;
    let seeds: [(u64, Steps); 2] = [
        (
            0,
            vec![
                (3, "colon", 0.2),
                (3, "derma", 0.3),
                (3, "chest", 0.5),
                (4, "colon", 0.4),
                (4, "derma", 0.3),
                (4, "chest", 0.3),
            ],
        ),
        (
            1,
            vec![
                (3, "colon", 0.1),
                (3, "derma", 0.5),
                (3, "chest", 0.4),
                (4, "colon", 0.3),
                (4, "derma", 0.3),
            ],
        ),
    ];
    for (seed, last) in seeds {
        let run_id = format!("table3-mocomtl-s{seed}");
        let rows: Vec<MetricRow> = TASKS
            .iter()
            .map(|t| row("table3", &run_id, "mocomtl", seed, t, 2, 0.5))
            .collect();
        let dir = root.join("results").join(&run_id);
        write_metrics(&dir.join("metrics.parquet"), &rows).unwrap();
        let weights: Vec<WeightRow> = epoch1
            .iter()
            .map(|&(step, t, w)| (1, step, t, w))
            .chain(last.iter().map(|&(step, t, w)| (2, step, t, w)))
            .map(|(epoch, step, task, weight)| WeightRow {
                epoch,
                step,
                task: task.into(),
                weight,
            })
            .collect();
        write_task_weights(&dir.join("task_weights.parquet"), &run_id, &weights).unwrap();
    }
}

#[test]
fn task_weights_table_averages_the_last_epoch_and_pools_seeds() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "table3", all_real);
    write_weights_fixture(dir.path());
    let rendered = render_reports(&options(dir.path(), Format::Markdown, None), None).unwrap();
    let text = &rendered.stdout;

    let title =
        "## table3 · task weights (mean over the last epoch's steps) on medmnist · profile smoke";
    let at = text.find(title).unwrap_or_else(|| panic!("{text}"));
    assert!(
        at > text.find("decomposition accuracy").unwrap(),
        "accuracies first:\n{text}"
    );
    let weights = &text[at..];
    assert!(
        weights.contains("| Method | Colon | Derma | Chest | Sum |"),
        "{weights}"
    );
    assert!(
        weights.contains(
            "| MoCo-MTL | 0.250 ± 0.071 | 0.350 ± 0.071 | 0.400 ± 0.000 | 1.000 ± 0.000 |"
        ),
        "no bold, three decimals:\n{weights}"
    );
    assert!(
        !weights.contains("| STL |") && !weights.contains("| LoRKD |"),
        "equal weighting logs no weights:\n{weights}"
    );
    assert!(weights.contains("· 2 runs · last epoch 2"), "{weights}");
    let file = dir.path().join("reports/table3/task_weights.md");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), weights);
    let figures = ["curves_medmnist", "task_weights_medmnist"]
        .iter()
        .flat_map(|stem| {
            ["png", "svg"].map(|ext| dir.path().join(format!("reports/table3/{stem}.{ext}")))
        });
    let expected: Vec<_> = [dir.path().join("reports/table3/decomposition.md"), file]
        .into_iter()
        .chain(figures)
        .collect();
    assert_eq!(rendered.files, expected, "the tables, then the figures");

    // CSV: stdout keeps one header (accuracies only); the weights have their own file.
    let rendered = render_reports(&options(dir.path(), Format::Csv, None), None).unwrap();
    assert_eq!(rendered.stdout.matches("experiment,pretrain").count(), 1);
    assert!(!rendered.stdout.contains("sum"), "{}", rendered.stdout);
    let csv = std::fs::read_to_string(dir.path().join("reports/table3/task_weights.csv")).unwrap();
    assert!(
        csv.contains(
            "table3,medmnist,smoke,real,mocomtl,MoCo-MTL,colon,Colon,0.25000,0.07071,2,\n"
        ),
        "{csv}"
    );
    assert!(csv.contains(",sum,Sum,1.00000,0.00000,2,\n"), "{csv}");
    no_tmp_files(&dir.path().join("reports"));
}
