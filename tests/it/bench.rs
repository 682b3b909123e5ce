//! `harness bench train`: our measurements, the PyTorch reference protocol (driven by a
//! stand-in script so no Python is needed) and its failure modes.

use crate::common::{assert_bad_input, stderr, stdout, Workspace};

/// The fastest possible measurement: one timed step, no warm-up, no per-op timings.
const QUICK: &[&str] = &[
    "bench",
    "train",
    "--workload",
    "resnet18-narrow",
    "--steps",
    "1",
    "--warmup",
    "0",
    "--min-time",
    "0",
    "--rounds",
    "1",
    "--no-ops",
];

/// The stand-in reference `fake.sh` run by `sh`, everything kept in `b.json`.
const WITH_FAKE_REFERENCE: [&str; 6] = [
    "--python",
    "sh",
    "--reference-script",
    "fake.sh",
    "--json",
    "b.json",
];

fn json(ws: &Workspace, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(ws.path().join(name)).unwrap()).unwrap()
}

#[test]
fn bench_measures_speed_and_step_memory() {
    let ws = Workspace::new();
    let mut args = QUICK.to_vec();
    args.extend(["--no-reference", "--json", "bench.json"]);
    let o = ws.run(&args);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("resnet18-narrow"), "{out}");
    assert!(out.contains("no PyTorch reference: not requested"), "{out}");
    let v = json(&ws, "bench.json");
    let ours = &v["workloads"][0]["rounds"][0]["ours"];
    assert!(ours["images_per_s"].as_f64().unwrap() > 0.0);
    // The counting allocator sees at least the activations kept for the backward: the
    // first stage alone holds several 64×16×28×28 f32 tensors (3.1 MiB each).
    let peak = ours["peak_step_bytes"].as_u64().expect("peak counted");
    assert!(peak > 3 * 3_211_264, "peak {peak} bytes");
}

/// A stand-in for the reference script: reads the request and answers with fixed numbers,
/// so the ratio and memory columns can be checked exactly.
const FAKE_REFERENCE: &str = r#"cp "$1" request.json
cat <<'JSON'
{"torch_version": "fake-1.0", "step": {"images_per_s": 1000.0, "step_s_median": 0.064,
 "step_s_mean": 0.064, "steps": 3, "peak_step_bytes": 1048576, "resident_bytes": 0},
 "ops": {}}
JSON
"#;

#[test]
fn bench_reads_the_reference_answer_and_sends_the_workload() {
    let ws = Workspace::new();
    ws.write("fake.sh", FAKE_REFERENCE);
    let mut args = QUICK.to_vec();
    args.extend(WITH_FAKE_REFERENCE);
    let o = ws.run(&args);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("reference: PyTorch fake-1.0"), "{out}");
    assert!(out.contains("1000.0"), "{out}");
    // The request carries the full network description and the thread count.
    let req = json(&ws, "request.json");
    assert_eq!(
        req["workload"]["widths"],
        serde_json::json!([16, 32, 64, 128])
    );
    assert_eq!(req["threads"], 2);
    let v = json(&ws, "b.json");
    let round = &v["workloads"][0]["rounds"][0];
    assert_eq!(round["torch"]["images_per_s"], 1000.0);
    let ours = round["ours"]["images_per_s"].as_f64().unwrap();
    let ratio = format!("{:.2}×", ours / 1000.0);
    assert!(out.contains(&ratio), "ratio {ratio} missing:\n{out}");
}

#[test]
fn bench_without_a_reference_still_reports_and_says_why() {
    let ws = Workspace::new();
    let mut args = QUICK.to_vec();
    args.extend(["--reference-script", "missing.py"]);
    let o = ws.run(&args);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("reference script missing.py not found"),
        "{out}"
    );

    ws.write(
        "broken.sh",
        "echo 'Traceback: ModuleNotFoundError: torch' >&2\nexit 1\n",
    );
    let mut args = QUICK.to_vec();
    args.extend(["--python", "sh", "--reference-script", "broken.sh"]);
    let out = stdout(&ws.run(&args));
    assert!(out.contains("reference script failed"), "{out}");
    assert!(out.contains("ModuleNotFoundError: torch"), "{out}");
}

#[test]
fn bench_rejects_unknown_workloads_and_zero_counts() {
    let ws = Workspace::new();
    let o = ws.run(&["bench", "train", "--workload", "vgg"]);
    assert_bad_input(&o, &["unknown workload `vgg`", "resnet18-narrow"]);
    let o = ws.run(&["bench", "train", "--rounds", "0"]);
    assert_bad_input(&o, &["--rounds"]);
}

/// `harness bench eks` on a tiny mixed batch prints every shape, the total and both
/// ratios; bad sizes are bad input.
#[test]
fn eks_bench_prints_three_forms_and_ratios() {
    let ws = Workspace::new();
    let o = ws.run(&[
        "bench",
        "eks",
        "--tasks",
        "2",
        "--batch",
        "4",
        "--rank",
        "1",
        "--min-time",
        "0",
        "--rounds",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("batch 4 over 2 tasks, rank 1"), "{out}");
    // At rank 1 the cost model (T·r/(b·l) + 1 ≤ r) never merges, so the 1×1 layers
    // factorise; the 3×3 stem has no factorised form.
    for (row, ends) in [
        ("stem 3→24", "merged"),
        ("stage2 1×1", "factorised"),
        ("stage3 1×1", "factorised"),
        ("stage4 1×1", "factorised"),
        ("conv5 1×1", "factorised"),
        ("all shapes", "×"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} row:\n{out}"));
        assert!(line.trim_end().ends_with(ends), "{line}");
    }
    assert_bad_input(
        &ws.run(&["bench", "eks", "--tasks", "8", "--batch", "4"]),
        &["--batch at least --tasks"],
    );
}

/// A stand-in reference that answers a LoRKD workload with both forms' steps.
const FAKE_LORKD_REFERENCE: &str = r#"if grep -q '"lorkd"' "$1"; then cp "$1" lorkd-request.json
cat <<'JSON'
{"torch_version": "fake-1.0", "step": {"images_per_s": 100.0, "step_s_median": 0.64,
 "step_s_mean": 0.64, "steps": 3, "peak_step_bytes": 1048576, "resident_bytes": 0},
 "step_task_grouped": {"images_per_s": 250.0, "step_s_median": 0.256,
 "step_s_mean": 0.256, "steps": 3, "peak_step_bytes": 1048576, "resident_bytes": 0},
 "ops": {}}
JSON
else cat <<'JSON'
{"torch_version": "fake-1.0", "step": {"images_per_s": 1000.0, "step_s_median": 0.064,
 "step_s_mean": 0.064, "steps": 3, "peak_step_bytes": 1048576, "resident_bytes": 0},
 "ops": {}}
JSON
fi
"#;

/// The LoRKD workload brings its plain student along and prints what the experts cost:
/// ours, and PyTorch's reference and task-grouped forms, with each layer's form.
#[test]
fn lorkd_bench_prints_the_experts_cost_beside_the_plain_student() {
    let ws = Workspace::new();
    ws.write("fake.sh", FAKE_LORKD_REFERENCE);
    let mut args = QUICK.to_vec();
    args[3] = "shufflenetv2-lorkd";
    args.extend(WITH_FAKE_REFERENCE);
    let o = ws.run(&args);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    let v = json(&ws, "b.json");
    let keys: Vec<&str> = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["shufflenetv2", "shufflenetv2-lorkd"]);
    let ours = |i: usize| {
        v["workloads"][i]["rounds"][0]["ours"]["images_per_s"]
            .as_f64()
            .unwrap()
    };
    let line = out
        .lines()
        .find(|l| l.contains("LoRKD step / plain step"))
        .unwrap_or_else(|| panic!("no cost line:\n{out}"));
    assert!(
        line.contains(&format!("ours {:.2}×", ours(0) / ours(1))),
        "{line}"
    );
    // PyTorch: 1000 img/s plain, 100 in the reference form, 250 task-grouped.
    assert!(line.contains("groups = batch) 10.00×"), "{line}");
    assert!(line.contains("task-grouped 4.00×"), "{line}");
    // ShuffleNetV2 1.0× has 37 groups = 1 convolutions; at r = 4 all merge.
    assert!(
        out.contains("merged (task-grouped) on 37 and factorised on 0 of 37 layers"),
        "{out}"
    );
    let req = json(&ws, "lorkd-request.json");
    assert_eq!(req["workload"]["lorkd"]["tasks"], 10);
    assert_eq!(req["workload"]["lorkd"]["rank"], 4);
}
