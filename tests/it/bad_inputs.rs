//! The catalogue of bad inputs: experiment files, registries, weights, data passed to
//! `predict`, flags and environment variables that a user can get wrong. Every one must exit
//! 2 with a message naming where the problem is (file and line, or the flag), never panic.
//! The data files' cases are in `bad_inputs_data`.
//! `cargo test --release --test tests bad_inputs -- --nocapture` prints the table.

use crate::common::{distill_experiment, stderr, tiny_experiment, Workspace};

pub struct Case {
    pub name: &'static str,
    /// Files to write first: (path, contents).
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub args: Vec<&'static str>,
    pub env: Vec<(&'static str, &'static str)>,
    /// Must appear in stderr: the location (file:line:col, the file or the flag).
    pub at: &'static str,
}

fn case(name: &'static str, file: Option<String>, args: &[&'static str], at: &'static str) -> Case {
    Case {
        name,
        files: file
            .map(|f| vec![("exp.toml", f.into_bytes())])
            .unwrap_or_default(),
        args: args.to_vec(),
        env: Vec::new(),
        at,
    }
}

fn tiny() -> String {
    tiny_experiment("e", &["stl"], &[0])
}

fn plan(name: &'static str, text: String, at: &'static str) -> Case {
    case(name, Some(text), &["plan", "exp.toml"], at)
}

fn cases() -> Vec<Case> {
    let t = tiny;
    let teacher = |extra: &str| {
        distill_experiment("d", &["lorkd"], "[\"foundation\", \"decompose\"]", "").replace(
            "[profile.smoke.foundation.teacher.model]",
            &format!("[profile.smoke.foundation.teacher]\n{extra}\n\n[profile.smoke.foundation.teacher.model]"),
        )
    };
    let mut v = vec![
        plan(
            "TOML syntax error",
            "name = \"x\"\nseeds = [0\nstages = [\"decompose\"]\n".into(),
            "exp.toml:3:1:",
        ),
        plan(
            "unknown key",
            t().replace("epochs = 2", "epochs = 2\nepoch = 3"),
            "exp.toml:",
        ),
        plan(
            "unknown method",
            tiny_experiment("e", &["mtll"], &[0]),
            "exp.toml:6:",
        ),
        plan(
            "unknown data set",
            t().replace("\"medmnist\"", "\"medmnistt\""),
            "exp.toml:7:",
        ),
        plan(
            "zero epochs",
            t().replace("epochs = 2", "epochs = 0"),
            "exp.toml:12:10:",
        ),
        plan(
            "negative epochs",
            t().replace("epochs = 2", "epochs = -3"),
            "exp.toml:12:10:",
        ),
        plan(
            "zero batch",
            t().replace("batch_size = 16", "batch_size = 0"),
            "exp.toml:13:14:",
        ),
        plan(
            "absurd image size",
            t().replace("image_size = 16", "image_size = 1000000"),
            "exp.toml:11:14:",
        ),
        plan(
            "string where a number goes",
            t().replace("lr = 0.05", "lr = \"fast\""),
            "exp.toml:",
        ),
        plan(
            "negative weight decay",
            t().replace("weight_decay = 1e-4", "weight_decay = -1.0"),
            "exp.toml:",
        ),
        plan(
            "unknown stage",
            t().replace("stages = [\"decompose\"]", "stages = [\"decompse\"]"),
            "exp.toml:3:",
        ),
        plan(
            "unknown optimiser",
            t().replace("name = \"sgd\"", "name = \"sgdd\""),
            "exp.toml:",
        ),
        plan(
            "unknown schedule",
            t().replace("schedule = \"cosine\"", "schedule = \"cosin\""),
            "exp.toml:",
        ),
        plan("empty file", String::new(), "exp.toml"),
        plan(
            "duplicate key",
            t().replace("epochs = 2", "epochs = 2\nepochs = 3"),
            "exp.toml:",
        ),
        plan(
            "distilling without a teacher",
            tiny_experiment("e", &["lorkd"], &[0]),
            "exp.toml:6:11:",
        ),
        plan(
            "LoRKD rank above the channels",
            tiny_experiment("e", &["lorkd"], &[0])
                + "\n[method.lorkd]\nkd = \"none\"\nrank = 100000\n",
            "exp.toml:6:",
        ),
        plan(
            "a grid of 30,000 runs",
            tiny_experiment("e", &["mtl"], &(0..30_000).collect::<Vec<u64>>()),
            "exp.toml: the grid expands",
        ),
        Case {
            name: "teacher weights that are not a PyTorch pickle",
            files: vec![
                ("exp.toml", teacher("weights = \"t.pth\"").into_bytes()),
                ("t.pth", b"PK\x03\x04 not a checkpoint".to_vec()),
            ],
            args: vec!["run", "exp.toml"],
            env: vec![],
            at: "t.pth",
        },
        Case {
            name: "teacher safetensors cut short",
            files: vec![
                (
                    "exp.toml",
                    teacher("weights = \"t.safetensors\"").into_bytes(),
                ),
                ("t.safetensors", vec![200, 0, 0, 0, 0, 0, 0, 0, b'{']),
            ],
            args: vec!["run", "exp.toml"],
            env: vec![],
            at: "t.safetensors",
        },
        plan(
            "teacher weights that do not exist",
            teacher("weights = \"nowhere.pth\""),
            "nowhere.pth",
        ),
        case(
            "unknown profile",
            Some(t()),
            &["plan", "exp.toml", "--profile", "paperr"],
            "paperr",
        ),
        case(
            "missing experiment file",
            None,
            &["plan", "nope.toml"],
            "nope.toml",
        ),
        Case {
            name: "Latin-1 experiment file",
            files: vec![("exp.toml", b"name = \"x\"\n# caf\xe9\n".to_vec())],
            args: vec!["plan", "exp.toml"],
            env: vec![],
            at: "exp.toml:2:6: byte 0xe9",
        },
        Case {
            name: "binary file as experiment",
            files: vec![("exp.toml", b"\x7fELF\x02\x01\x01\x00\x00".to_vec())],
            args: vec!["plan", "exp.toml"],
            env: vec![],
            at: "exp.toml:1:8: a NUL byte",
        },
        Case {
            name: "100 MB experiment file",
            files: vec![("exp.toml", vec![b'#'; 100 << 20])],
            args: vec!["plan", "exp.toml"],
            env: vec![],
            at: "exp.toml: over 4 MiB",
        },
        Case {
            name: "registry not found",
            files: vec![("exp.toml", t().into_bytes())],
            args: vec!["--registry", "nope.toml", "plan", "exp.toml"],
            env: vec![],
            at: "nope.toml",
        },
        Case {
            name: "registry syntax error",
            files: vec![
                ("exp.toml", t().into_bytes()),
                ("reg.toml", b"[[dataset]\nkey = 1\n".to_vec()),
            ],
            args: vec!["--registry", "reg.toml", "plan", "exp.toml"],
            env: vec![],
            at: "reg.toml:1:",
        },
        Case {
            name: "registry in Latin-1",
            files: vec![
                ("exp.toml", t().into_bytes()),
                ("reg.toml", b"[[dataset]]\nkey = \"m\xf6\"\n".to_vec()),
            ],
            args: vec!["--registry", "reg.toml", "plan", "exp.toml"],
            env: vec![],
            at: "reg.toml:2:9:",
        },
        Case {
            name: "registry with an unknown field",
            files: vec![
                ("exp.toml", t().into_bytes()),
                (
                    "reg.toml",
                    b"[[dataset]]\nkey = \"m\"\nnmae = \"x\"\n".to_vec(),
                ),
            ],
            args: vec!["--registry", "reg.toml", "plan", "exp.toml"],
            env: vec![],
            at: "reg.toml:",
        },
        Case {
            name: "predict with an expert that is not safetensors",
            files: vec![
                ("expert.safetensors", b"not a safetensors file".to_vec()),
                ("x.npz", vec![1, 2, 3]),
            ],
            args: vec!["predict", "expert.safetensors", "x.npz"],
            env: vec![],
            at: "expert.safetensors",
        },
        Case {
            name: "predict with a missing expert",
            files: vec![],
            args: vec!["predict", "none.safetensors", "x.png"],
            env: vec![],
            at: "none.safetensors",
        },
        case(
            "--threads 0",
            Some(t()),
            &["run", "exp.toml", "--threads", "0"],
            "--threads",
        ),
        case(
            "--jobs 0",
            Some(t()),
            &["run", "exp.toml", "--jobs", "0"],
            "--jobs",
        ),
        case(
            "--jobs two",
            Some(t()),
            &["run", "exp.toml", "--jobs", "two"],
            "`two` is neither a number of workers nor `auto`",
        ),
        case(
            "more CPU workers than threads",
            Some(t()),
            &["run", "exp.toml", "--jobs", "3", "--threads", "2"],
            "--threads 3",
        ),
        case(
            "--device cuda:x",
            Some(t()),
            &["run", "exp.toml", "--device", "cuda:x"],
            "--device cuda:x",
        ),
        case(
            "--device tpu",
            Some(t()),
            &["run", "exp.toml", "--device", "tpu"],
            "--device tpu",
        ),
        case(
            "--device cuda:0 on a CPU build",
            Some(t()),
            &["run", "exp.toml", "--device", "cuda:0"],
            "--device cuda:0",
        ),
        case(
            "Slurm --time 2h",
            Some(t()),
            &[
                "run",
                "exp.toml",
                "--executor",
                "slurm",
                "--time",
                "2h",
                "--dry-run",
            ],
            "--time 2h",
        ),
        case(
            "--dry-run without Slurm",
            Some(t()),
            &["run", "exp.toml", "--dry-run"],
            "--executor slurm",
        ),
        case(
            "--checkpoint-interval=-1",
            Some(t()),
            &["--checkpoint-interval=-1", "run", "exp.toml"],
            "--checkpoint-interval",
        ),
        case(
            "--checkpoint-every 0",
            Some(t()),
            &["--checkpoint-every", "0", "run", "exp.toml"],
            "--checkpoint-every",
        ),
        case(
            "unknown flag",
            Some(t()),
            &["run", "exp.toml", "--thread", "2"],
            "--thread",
        ),
        case(
            "exec of a run never submitted",
            None,
            &["exec", "0123456789abcdef"],
            "0123456789abcdef",
        ),
        case(
            "regress against a missing baseline",
            None,
            &["regress", "--baseline", "nope"],
            "nope",
        ),
        case(
            "export of an unknown run",
            None,
            &["export", "fedcba9876543210"],
            "results: no run store",
        ),
        Case {
            name: "HARNESS_CLAIM_TIMEOUT_S=soon",
            files: vec![("exp.toml", t().into_bytes())],
            args: vec!["run", "exp.toml"],
            env: vec![("HARNESS_CLAIM_TIMEOUT_S", "soon")],
            at: "HARNESS_CLAIM_TIMEOUT_S",
        },
    ];
    v.push(case(
        "a batch that cannot fit in memory",
        Some(t().replace("batch_size = 16", "batch_size = 100000000")),
        &["run", "exp.toml"],
        "set batch_size to",
    ));
    // Two CPU workers each hold a step: the estimate counts both and offers fewer --jobs.
    v.push(case(
        "a batch that cannot fit in memory twice over (--jobs 2)",
        Some(t().replace("batch_size = 16", "batch_size = 100000000")),
        &["run", "exp.toml", "--jobs", "2", "--threads", "2"],
        "× 2 workers), more than the",
    ));
    v.extend(crate::bad_inputs_data::data_cases());
    v.sort_by_key(|c| c.name);
    v
}

#[test]
fn every_bad_input_is_exit_2_with_a_location_and_no_panic() {
    let all = cases();
    assert!(all.len() >= 40, "{} cases", all.len());
    let mut failures = Vec::new();
    eprintln!("| bad input | exit | message |\n|---|---|---|");
    for c in &all {
        let ws = Workspace::new();
        for (path, bytes) in &c.files {
            let path = ws.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let mut cmd = ws.cmd();
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        let o = cmd.args(&c.args).output().unwrap();
        let err = stderr(&o);
        let first = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or_else(|| err.lines().next().unwrap_or(""));
        eprintln!(
            "| {} | {} | {} |",
            c.name,
            o.status.code().unwrap_or(-1),
            first.chars().take(160).collect::<String>()
        );
        if o.status.code() != Some(2) || !err.contains(c.at) || err.contains("panicked") {
            failures.push(format!(
                "{}: exit {:?}, wanted `{}` in:\n{err}",
                c.name,
                o.status.code(),
                c.at
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
