//! The transfer stage: which runs the rules of supplement section C and Table 1 give for
//! each pre-training set (through the public parse and expand functions), overrides of the
//! correspondence, and a tiny experiment run end to end through the binary.

use std::collections::BTreeMap;
use std::path::Path;

use kdbench::data::registry::Registry;
use kdbench::method::CATALOG;
use kdbench::spec::expand::expand;
use kdbench::spec::run::{RunSpec, Stage};
use kdbench::spec::validate::parse;

use crate::common::{assert_bad_input, repo_file, stderr, stdout, Workspace, TINY_PROFILE};

const ALL_METHODS: &str =
    r#"["stl", "mtl", "mocomtl", "alignedmtl", "stlkd", "mtlkd", "kf", "lorkd"]"#;
const DOWNSTREAM: &str = r#"["covid", "btc", "ad", "mura_shoulder", "auitd", "ham10000", "det10"]"#;

/// A transfer experiment over every method on `pretrain`, with a foundation model, the
/// scratch baseline and `extra` appended.
fn experiment(pretrain: &str, extra: &str) -> String {
    format!(
        "name = \"t\"\nseeds = [0]\nstages = [\"foundation\", \"decompose\", \"transfer\"]\n\n\
         [grid]\nmethod = {ALL_METHODS}\npretrain = [\"{pretrain}\"]\ndownstream = {DOWNSTREAM}\n\
         foundation = [\"teacher\"]\n\n[transfer]\nscratch = true\n{TINY_PROFILE}\n\
         [profile.smoke.foundation.teacher.model]\narch = \"resnet\"\nwidths = [4, 8]\n\
         depths = [1, 1]\n{extra}"
    )
}

fn plan(src: &str) -> Vec<RunSpec> {
    let registry = Registry::load(&repo_file("datasets.toml")).expect("registry");
    let exp = parse(src, Path::new("t.toml"), &registry, &CATALOG).expect("valid experiment");
    expand(&exp, "smoke", &registry, Path::new("data"), &CATALOG).expect("expands")
}

/// Per method: (transfer runs, of them from the shared network).
fn transfer_counts(runs: &[RunSpec]) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.stage == Stage::Transfer) {
        let t = r.transfer.as_ref().expect("transfer settings");
        let e = out.entry(r.method.clone()).or_default();
        e.0 += 1;
        if t.source.is_some() && t.expert.is_none() {
            e.1 += 1;
        }
    }
    out
}

/// Supplement Table 1, row by row: RadImageNet matches 6 of the 7 sets (HAM10000 †),
/// MedMNIST 4 (BTC, AD, Mura_s †), Med-MT 1 (HAM10000). STL-style methods fine-tune only
/// matched students; MTL-style encoders every set (always the shared network); KF and
/// LoRKD every set, from the shared network where there is no match; the foundation model
/// and the scratch baseline every set.
#[test]
fn transfer_runs_follow_table_1_for_every_pretraining_set() {
    for (pretrain, matched) in [("radimagenet", 6), ("medmnist", 4), ("medmt", 1)] {
        let counts = transfer_counts(&plan(&experiment(pretrain, "")));
        let unmatched = 7 - matched;
        let want: BTreeMap<String, (usize, usize)> = [
            ("stl", (matched, 0)),
            ("stlkd", (matched, 0)),
            ("mtl", (7, 7)),
            ("mocomtl", (7, 7)),
            ("alignedmtl", (7, 7)),
            ("mtlkd", (7, 7)),
            ("kf", (7, unmatched)),
            ("lorkd", (7, unmatched)),
            ("foundation", (7, 7)),
            ("scratch", (7, 0)),
        ]
        .into_iter()
        .map(|(m, c)| (m.to_string(), c))
        .collect();
        assert_eq!(counts, want, "{pretrain}");
    }
}

#[test]
fn matched_runs_start_from_the_table_1_expert_and_depend_on_their_source() {
    let runs = plan(&experiment("medmnist", ""));
    let by_id: BTreeMap<String, &RunSpec> = runs.iter().map(|r| (r.run_id(), r)).collect();
    let find = |method: &str, down: &str| {
        runs.iter()
            .find(|r| {
                r.stage == Stage::Transfer
                    && r.method == method
                    && r.downstream.as_deref() == Some(down)
            })
            .unwrap_or_else(|| panic!("no {method} → {down}"))
    };
    // MedMNIST Table 1: COVID ← Expert_10 (chest), HAM10000 ← Expert_7 (skin), BTC †.
    let stl = find("stl", "covid");
    let source = by_id[stl.transfer.as_ref().unwrap().source.as_ref().unwrap()];
    assert_eq!(source.stage, Stage::Decompose);
    assert_eq!(source.tasks, ["chest"]);
    let lorkd = find("lorkd", "ham10000").transfer.as_ref().unwrap();
    assert_eq!(lorkd.expert.as_deref(), Some("skin"));
    assert_eq!(find("lorkd", "btc").transfer.as_ref().unwrap().expert, None);
    let teacher = find("foundation", "btc");
    let source = by_id[teacher.transfer.as_ref().unwrap().source.as_ref().unwrap()];
    assert_eq!(source.stage, Stage::Foundation);
    assert_eq!(teacher.model, source.model);
    let scratch = find("scratch", "covid").transfer.as_ref().unwrap();
    assert_eq!(
        (scratch.source.as_ref(), scratch.expert.as_ref()),
        (None, None)
    );
}

#[test]
fn expert_for_overrides_the_registry() {
    let runs = plan(&experiment(
        "medmnist",
        "\n[expert_for.medmnist]\ncovid = \"none\"\nbtc = 3\nad = \"organa\"\n",
    ));
    let expert = |method: &str, down: &str| {
        runs.iter()
            .filter(|r| r.method == method && r.downstream.as_deref() == Some(down))
            .map(|r| r.transfer.as_ref().unwrap().expert.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(expert("lorkd", "covid"), [None]);
    assert!(expert("stl", "covid").is_empty(), "no match, no STL run");
    assert_eq!(expert("lorkd", "btc"), [Some("organc".to_string())]);
    assert_eq!(expert("stl", "ad"), [Some("organa".to_string())]);
}

#[test]
fn a_bad_expert_for_key_is_bad_input_at_its_line() {
    let ws = Workspace::new();
    let src = experiment("medmnist", "\n[expert_for.medmnist]\ncovid = \"lungs\"\n");
    let line = src.lines().position(|l| l.starts_with("covid = ")).unwrap() + 1;
    ws.write("t.toml", &src);
    assert_bad_input(
        &ws.run(&["plan", "t.toml"]),
        &[
            &format!("t.toml:{line}:9:"),
            "expert_for.medmnist.covid: `medmnist` has no task `lungs`",
        ],
    );
    let src = experiment("medmnist", "\n[expert_for.medmnist]\ncorona = 1\n");
    ws.write("u.toml", &src);
    assert_bad_input(
        &ws.run(&["plan", "u.toml"]),
        &["u.toml:", "unknown downstream set `corona`"],
    );
}

/// Decompose → transfer → report on a tiny synthetic experiment, then a re-run that trains
/// nothing.
#[test]
fn a_tiny_transfer_experiment_runs_end_to_end_and_is_cached() {
    let ws = Workspace::new();
    let src = format!(
        "name = \"tx\"\nseeds = [0]\nstages = [\"decompose\", \"transfer\"]\n\n[grid]\n\
         method = [\"stl\", \"lorkd\"]\npretrain = [\"medmnist\"]\n\
         downstream = [\"covid\", \"btc\"]\n\n[transfer]\nscratch = true\n\n\
         [method.lorkd]\nkd = \"none\"\n{TINY_PROFILE}\n[profile.smoke.transfer]\nepochs = 1\n"
    );
    ws.write("tx.toml", &src);
    let o = ws.run(&["run", "tx.toml", "--plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 10 STL students + 1 LoRKD; transfer: STL chest → covid, LoRKD covid (chest expert)
    // and btc (†), scratch on both.
    assert!(
        stderr(&o).contains("16 trained, 0 cached, 0 failed"),
        "{}",
        stderr(&o)
    );
    assert!(ws
        .path()
        .join("results/experiments/tx/smoke.json")
        .is_file());
    let again = ws.run(&["run", "tx.toml", "--plain"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 trained, 16 cached"),
        "{}",
        stderr(&again)
    );
    let plan = stdout(&ws.run(&["plan", "tx.toml"]));
    assert!(plan.contains("0 to run, 16 cached"), "{plan}");
    assert!(
        plan.contains("chest → covid") && plan.contains("shared → btc"),
        "{plan}"
    );

    let report = ws.run(&["report", "--experiment", "tx", "--format", "markdown"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let md = stdout(&report);
    assert!(
        md.contains("tx · transfer accuracy (%) from medmnist"),
        "{md}"
    );
    assert!(md.contains("| Method | COVID | BTC | Avg |"), "{md}");
    let transfer = &md[md.find("transfer accuracy").unwrap()..];
    let row = |name: &str| {
        transfer
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no {name} row:\n{transfer}"))
            .to_string()
    };
    // STL has no BTC match ("–"); LoRKD's BTC cell is its shared network (†).
    assert!(row("STL").contains("| – |"), "{}", row("STL"));
    assert!(row("LoRKD").contains('†'), "{}", row("LoRKD"));
    assert!(md.contains("| From scratch |"), "{md}");
    assert!(md.contains("SYNTHETIC DATA"), "{md}");
    assert!(ws.path().join("reports/tx/transfer.md").is_file());
}
