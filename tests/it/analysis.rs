//! The analysis stage end to end through the binary: the CKA matrices of STL, MTL and
//! LoRKD experts on a tiny synthetic experiment, what holds by construction (a diagonal of
//! ones, MTL's one encoder giving 1 everywhere under `same-probe`, symmetric `cross-task`
//! matrices), the cache, and the settings' errors at their lines.

use std::collections::BTreeMap;

use kdbench::store::cka::{read_cka, CkaRow};

use crate::common::{assert_bad_input, stderr, stdout, Workspace, TINY_PROFILE};

fn experiment(extra: &str) -> String {
    format!(
        "name = \"ck\"\nseeds = [0]\nstages = [\"decompose\", \"analysis\"]\n\n[grid]\n\
         method = [\"stl\", \"mtl\", \"lorkd\"]\npretrain = [\"medmnist\"]\n\n\
         [method.lorkd]\nkd = \"none\"\n{TINY_PROFILE}{extra}"
    )
}

const BOTH: &str = "\n[analysis]\nprotocols = [\"same-probe\", \"cross-task\"]\n\n\
                    [profile.smoke.analysis]\nsamples = 12\n";

/// Every analysis run's rows, by method.
fn cka_rows(ws: &Workspace) -> BTreeMap<String, Vec<CkaRow>> {
    let mut out: BTreeMap<String, Vec<CkaRow>> = BTreeMap::new();
    for e in std::fs::read_dir(ws.path().join("results")).unwrap() {
        let p = e.unwrap().path().join("cka.parquet");
        if p.is_file() {
            for r in read_cka(&p).unwrap() {
                out.entry(r.method.clone()).or_default().push(r);
            }
        }
    }
    out
}

#[test]
fn cka_matrices_of_a_tiny_decomposition() {
    let ws = Workspace::new();
    ws.write("ck.toml", &experiment(BOTH));
    let plan = stdout(&ws.run(&["plan", "ck.toml"]));
    assert!(plan.contains("analysis   stl"), "{plan}");
    let o = ws.run(&["run", "ck.toml", "--plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 10 STL students, MTL, LoRKD, and one analysis run per method.
    assert!(
        stderr(&o).contains("15 trained, 0 cached, 0 failed"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("mean off-diagonal CKA (final)"),
        "{}",
        stderr(&o)
    );
    let rows = cka_rows(&ws);
    assert_eq!(
        rows.keys().cloned().collect::<Vec<_>>(),
        ["lorkd", "mtl", "stl"]
    );
    for (method, rows) in &rows {
        // 2 protocols × 2 layers (widths [4, 8]: stage1, final) × 10 × 10 tasks.
        assert_eq!(rows.len(), 2 * 2 * 100, "{method}");
        let layers: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.layer.as_str()).collect();
        assert_eq!(layers.into_iter().collect::<Vec<_>>(), ["final", "stage1"]);
        for r in rows {
            assert_eq!((r.n, r.data_kind.as_str()), (12, "synthetic"));
            assert_eq!(r.experiment, "ck");
            assert!(
                r.value.is_finite() && (-1e-9..=1.0 + 1e-9).contains(&r.value),
                "{r:?}"
            );
            if r.task_i == r.task_j {
                assert!((r.value - 1.0).abs() < 1e-9, "{r:?}");
            }
        }
        let cell = |p: &str, l: &str, i: &str, j: &str| {
            rows.iter()
                .find(|r| r.protocol == p && r.layer == l && r.task_i == i && r.task_j == j)
                .unwrap()
                .value
        };
        assert_eq!(
            cell("cross-task", "final", "chest", "skin"),
            cell("cross-task", "final", "skin", "chest")
        );
    }
    // MTL's experts are one encoder: the same images give the same features.
    for r in rows["mtl"].iter().filter(|r| r.protocol == "same-probe") {
        assert!((r.value - 1.0).abs() < 1e-9, "{r:?}");
    }
    // STL's students are ten different networks.
    let stl_off: Vec<f64> = rows["stl"]
        .iter()
        .filter(|r| r.protocol == "same-probe" && r.task_i != r.task_j)
        .map(|r| r.value)
        .collect();
    assert!(stl_off.iter().all(|&v| v < 0.999), "{stl_off:?}");

    let again = ws.run(&["run", "ck.toml", "--plain"]);
    assert!(
        stderr(&again).contains("0 trained, 15 cached"),
        "{}",
        stderr(&again)
    );

    // The figures: a heatmap and a per-stage plot per protocol, PNG and SVG, each with the
    // synthetic banner and its protocol drawn in.
    let report = ws.run(&["report", "--experiment", "ck", "--format", "markdown"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let dir = ws.path().join("reports/ck");
    for protocol in ["cross-task", "same-probe"] {
        for stem in [
            format!("cka_medmnist_{protocol}"),
            format!("cka_stages_medmnist_{protocol}"),
        ] {
            let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
            assert_eq!(&png[1..4], b"PNG", "{stem}");
            let img = image::load_from_memory(&png).unwrap();
            assert!(img.width() > 600 && img.height() > 400, "{stem}");
            let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
            assert!(svg.contains("SYNTHETIC DATA"), "{stem}");
            assert!(svg.contains(&format!("Protocol {protocol}")), "{stem}");
        }
    }
    let heatmap = std::fs::read_to_string(dir.join("cka_medmnist_same-probe.svg")).unwrap();
    assert!(
        heatmap.contains("MTL  (mean off-diagonal 1.000)"),
        "MTL's panel title"
    );
    assert!(
        stderr(&report).contains("cka_medmnist_same-probe.png"),
        "{}",
        stderr(&report)
    );
}

#[test]
fn analysis_settings_are_checked_at_their_lines() {
    let ws = Workspace::new();
    let without = experiment(BOTH).replace(", \"analysis\"]", "]");
    ws.write("a.toml", &without);
    let line = without.lines().position(|l| l == "[analysis]").unwrap() + 1;
    assert_bad_input(
        &ws.run(&["plan", "a.toml"]),
        &[
            &format!("a.toml:{line}:"),
            "[analysis] applies to the analysis stage",
        ],
    );
    let small = experiment(BOTH).replace("samples = 12", "samples = 2");
    ws.write("b.toml", &small);
    let line = small.lines().position(|l| l == "samples = 2").unwrap() + 1;
    assert_bad_input(
        &ws.run(&["plan", "b.toml"]),
        &[&format!("b.toml:{line}:11"), "at least 4"],
    );
    let twice = experiment("\n[analysis]\nprotocols = [\"same-probe\", \"same-probe\"]\n");
    ws.write("c.toml", &twice);
    assert_bad_input(&ws.run(&["plan", "c.toml"]), &["listed twice"]);
    let unknown = experiment("\n[analysis]\nprotocols = [\"paired\"]\n");
    ws.write("d.toml", &unknown);
    assert_bad_input(
        &ws.run(&["plan", "d.toml"]),
        &["unknown variant `paired`", "cross-task", "same-probe"],
    );
}
