//! `harness efficiency`: the parameter, MAC and cost-model columns from the networks alone
//! (the paper profile, with no data on disk), the speed columns from finished runs, and the
//! measured EKS forms from a `harness bench eks --json` file.

use crate::common::{assert_bad_input, repo_file, stderr, stdout, Workspace, TINY_PROFILE};

fn row<'a>(text: &'a str, method: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.starts_with(&format!("| {method} |")))
        .unwrap_or_else(|| panic!("no {method} row:\n{text}"))
        .split('|')
        .map(str::trim)
        .collect()
}

#[test]
fn the_paper_profile_needs_no_data() {
    let ws = Workspace::new();
    let file = repo_file("experiments/efficiency.toml");
    let o = ws.run(&["efficiency", file.to_str().unwrap(), "--profile", "paper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // ShuffleNetV2 1.0× with an 11-way head; 11 STL students; MTL one encoder, 11 heads;
    // LoRKD trains W0 + 11 rank-4 experts but deploys 11 merged students.
    assert_eq!(row(&text, "STL")[2..5], ["1.26 M", "13.96 M", "13.96 M"]);
    assert_eq!(row(&text, "MTL")[2..5], ["1.26 M", "1.42 M", "1.42 M"]);
    assert_eq!(row(&text, "LoRKD")[2..5], ["1.26 M", "13.58 M", "1.90 M"]);
    assert_eq!(
        row(&text, "LoRKD")[6..9],
        ["–", "–", "0"],
        "no runs, no speed"
    );
    assert!(text.contains("at b = 1024, T = 11, r = 4"), "{text}");
    assert!(text.contains("holds at 37 of 37 layers"), "{text}");
    assert!(!text.contains("SYNTHETIC"), "{text}");
    assert!(ws
        .path()
        .join("reports/efficiency/efficiency_paper.md")
        .is_file());
}

#[test]
fn speeds_come_from_the_runs_and_eks_times_from_the_bench() {
    let ws = Workspace::new();
    let src = format!(
        "name = \"ef\"\nseeds = [0]\nstages = [\"decompose\"]\n\n[grid]\n\
         method = [\"mtl\", \"lorkd\"]\npretrain = [\"medmnist\"]\n\n\
         [method.lorkd]\nkd = \"none\"\n{TINY_PROFILE}"
    );
    ws.write("ef.toml", &src);
    let before = stdout(&ws.run(&["efficiency", "ef.toml"]));
    assert_eq!(row(&before, "MTL")[8], "0", "{before}");
    let o = ws.run(&["run", "ef.toml", "--plain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    ws.write(
        "eks.json",
        r#"[{"tasks": 10, "batch": 64, "rank": 4, "threads": 2, "instruction_set": "AVX2+FMA"},
            [{"shape": "a", "seconds": [["task-grouped", 0.010], ["LoRA-style", 0.015]]},
             {"shape": "b", "seconds": [["task-grouped", 0.002], ["LoRA-style", 0.004]]}]]"#,
    );
    let o = ws.run(&["efficiency", "ef.toml", "--eks-bench", "eks.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("SYNTHETIC DATA"), "{text}");
    let mtl = row(&text, "MTL");
    assert_eq!(mtl[8], "1", "{text}");
    let images_per_s: f64 = mtl[7].parse().unwrap();
    let step_ms: f64 = mtl[6].parse().unwrap();
    // Step time at the profile's batch of 16.
    assert!((step_ms - 16e3 / images_per_s).abs() < 0.1, "{text}");
    assert!(text.contains("| task-grouped | 12.00 |"), "{text}");
    assert!(text.contains("| LoRA-style | 19.00 |"), "{text}");
    assert!(text.contains("AVX2+FMA"), "{text}");

    ws.write("bad.json", "{\"not\": \"a bench\"}");
    assert_bad_input(
        &ws.run(&["efficiency", "ef.toml", "--eks-bench", "bad.json"]),
        &["bad.json", "harness bench eks --json"],
    );
}
