//! A run's numbers do not depend on how many threads computed it: one worker on two
//! threads runs the kernels on candle's barrier pool (`util::parallel`), one on a single
//! thread runs them inline, and a teacher, an MTL student and a LoRKD student (whose
//! convolutions split each task's samples between the threads) come out the same bits.

use std::collections::BTreeMap;

use crate::common::{deterministic_metrics, distill_experiment, stderr, Workspace};

/// A run's metrics as `deterministic_metrics` gives them.
type Metrics = Vec<((u32, String, String, String), u64)>;

/// `(method, metrics)` of every run, after `harness run exp.toml --jobs 1 --threads N`.
fn metrics_at(threads: &str) -> BTreeMap<String, Metrics> {
    let ws = Workspace::new();
    ws.write(
        "exp.toml",
        &distill_experiment(
            "threads",
            &["mtl", "lorkd"],
            "[\"foundation\", \"decompose\"]",
            "",
        ),
    );
    let o = ws.run(&["run", "exp.toml", "--jobs", "1", "--threads", threads]);
    assert!(o.status.success(), "{}", stderr(&o));
    ws.metrics_files()
        .iter()
        .map(|m| {
            let spec = std::fs::read_to_string(m.with_file_name("spec.json")).unwrap();
            let method = ["foundation", "mtl", "lorkd"]
                .into_iter()
                .find(|k| spec.contains(&format!("\"method\": \"{k}\"")))
                .unwrap_or_else(|| panic!("a run of no known method: {}", m.display()));
            (method.to_string(), deterministic_metrics(m))
        })
        .collect()
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    let (one, two) = (metrics_at("1"), metrics_at("2"));
    assert_eq!(one.len(), 3, "runs: {:?}", one.keys());
    for (method, metrics) in &one {
        assert!(!metrics.is_empty(), "{method}: no metrics");
        assert_eq!(
            Some(metrics),
            two.get(method),
            "{method}: 1 thread against 2"
        );
    }
}
